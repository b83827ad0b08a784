"""Per-caller budgets across sessions: live sessions, disk, and a uid of its own per session."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from code_interpreter import budgets, sandbox
from code_interpreter.auth import Caller
from code_interpreter.cleanup import sessions_cleanup
from code_interpreter.models import CodeSession
from tests.code_interpreter.conftest import BASE, OTHER_USER, USER, KeyPair, post_exec

MiB = 1024**2
WRITE = "import sys\nwith open(sys.argv[1], 'wb') as f:\n    f.write(b'x' * int(sys.argv[2]))"


def write(api: Client, name: str, size: int, **body: Any) -> dict[str, Any]:
    response = post_exec(
        api, {"lang": "py", "code": WRITE, "args": [name, str(size)], "user_id": USER, **body}
    )
    assert response.status_code == 200, response.content
    result: dict[str, Any] = response.json()
    return result


def upload(api: Client, size: int, user: str = USER) -> Any:
    return api.post(
        f"{BASE}/upload",
        {"kind": "user", "id": user, "file": SimpleUploadedFile("data.bin", b"x" * size)},
    )


# -- whose budget ------------------------------------------------------------------------------


def test_budget_keys() -> None:
    assert Caller("jwt", USER, verified=True).budget_key == f"user:{USER}"
    keyed = Caller("api_key", None, key_id="0123456789abcdef")
    assert keyed.budget_key == "key:0123456789abcdef"
    assert keyed.named(USER).budget_key == f"key:0123456789abcdef/user:{USER}"
    assert Caller("none", None).budget_key == "anonymous"
    assert Caller("none", None).named(USER).budget_key == f"anonymous/user:{USER}"


def test_an_api_key_is_a_budget_of_its_own_and_never_stored(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_AUTH = ["api_key"]
    code_settings.CODE_INTERPRETER_API_KEYS = ["first-secret-key", "second-secret-key"]
    for key in ("first-secret-key", "second-secret-key"):
        response = post_exec(api, {"lang": "bash", "code": "true"}, **{"X-API-Key": key})
        assert response.status_code == 200
    callers = set(CodeSession.objects.values_list("caller", flat=True))
    assert len(callers) == 2
    assert all(caller.startswith("key:") and "secret" not in caller for caller in callers)


def test_a_jwt_caller_cannot_escape_by_naming_someone_else(
    api: Client, jwt_auth: KeyPair, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER = 1
    bearer = {"Authorization": f"Bearer {jwt_auth.token()}"}
    assert post_exec(api, {"lang": "bash", "code": "true"}, **bearer).status_code == 200
    again = post_exec(api, {"lang": "bash", "code": "true", "user_id": OTHER_USER}, **bearer)
    assert again.status_code == 429


# -- live sessions -------------------------------------------------------------------------------


def test_live_sessions_are_capped_per_caller(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER = 2
    first = write(api, "a", 10)
    write(api, "b", 10)
    refused = post_exec(api, {"lang": "py", "code": "print(1)", "user_id": USER})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "too_many_sessions"
    assert "Too many sessions" in error["message"]
    assert int(refused["Retry-After"]) > 23 * 3600  # when the oldest expires
    assert upload(api, 10).status_code == 429  # an upload opens a session too
    # A session of theirs is still usable, and another caller is not affected.
    assert write(api, "c", 10, session_id=first["session_id"])["status"] == "ok"
    other = post_exec(api, {"lang": "py", "code": "print(1)", "user_id": OTHER_USER})
    assert other.status_code == 200
    # Once one expires, there is room again.
    CodeSession.objects.filter(pk=first["session_id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert write(api, "d", 10)["status"] == "ok"


@pytest.mark.parametrize("leases", ["database", "redis"])
def test_a_new_session_is_written_once_under_one_lock_of_its_caller(
    api: Client, code_settings: Settings, request: pytest.FixtureRequest, leases: str
) -> None:
    code_settings.REDIS_URL = request.getfixturevalue("redis_server") if leases == "redis" else ""
    with CaptureQueriesContext(connection) as queries:
        response = post_exec(api, {"lang": "py", "code": "print(1)", "user_id": USER})
    assert response.status_code == 200
    session = CodeSession.objects.get(pk=response.json()["session_id"])
    assert (session.disk_bytes, session.last_used_at) == (0, session.created_at)
    statements = [query["sql"] for query in queries.captured_queries]
    table = CodeSession._meta.db_table
    assert [sql for sql in statements if sql.startswith("UPDATE") and table in sql] == []
    locks = [sql for sql in statements if "pg_advisory_xact_lock" in sql]
    assert len(locks) == (1 if connection.vendor == "postgresql" else 0)
    # A run that leaves a file in it updates the row.
    written = write(api, "a", 10, session_id=session.pk)
    assert CodeSession.objects.get(pk=written["session_id"]).disk_bytes > 0


# -- disk ----------------------------------------------------------------------------------------


def test_an_execution_gets_what_the_callers_other_sessions_leave(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES = 3 * MiB
    first = write(api, "one", 2 * MiB)
    assert first["status"] == "ok"  # 2 MiB in its directory, 2 MiB stored: 4 MiB held
    assert budgets.committed_bytes(f"anonymous/user:{USER}") > 3 * MiB
    second = write(api, "two", MiB)
    assert (second["status"], second["message"]) == ("disk_quota", "Disk quota exceeded")
    sessions = Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR)
    assert sandbox.disk_usage(sessions / second["session_id"]) == 0  # the write was cut
    # Another caller has a quota of their own.
    response = post_exec(
        api, {"lang": "py", "code": WRITE, "args": ["x", str(MiB)], "user_id": OTHER_USER}
    )
    assert response.json()["status"] == "ok"


def test_files_of_failed_runs_count_until_they_expire(api: Client, code_settings: Settings) -> None:
    code = "with open('left', 'wb') as f:\n    f.write(b'x' * 2**20)\nraise SystemExit(1)"
    failed = post_exec(api, {"lang": "py", "code": code, "user_id": USER}).json()
    assert (failed["status"], failed["files"]) == ("error", [])
    session = CodeSession.objects.get(pk=failed["session_id"])
    assert session.disk_bytes == MiB
    caller = f"anonymous/user:{USER}"
    assert budgets.committed_bytes(caller) == MiB
    CodeSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert budgets.committed_bytes(caller) == 0
    sessions_cleanup()
    assert not (Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR) / session.pk).exists()


def test_uploads_stop_at_the_callers_quota(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES = 10_000
    assert upload(api, 6_000).status_code == 200
    refused = upload(api, 6_000)
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert error["code"] == "disk_quota_exceeded"
    assert error["message"].startswith("Disk quota exceeded")
    assert upload(api, 6_000, user=OTHER_USER).status_code == 200


def test_a_reservation_held_elsewhere_is_not_granted_twice(
    code_settings: Settings, db: None
) -> None:
    code_settings.REDIS_URL = ""
    code_settings.CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES = 100 * MiB
    store = budgets.lease_store()
    running = store.acquire("user:a", running=True, limit=4, reserved=500 * MiB)
    assert running is not None
    assert budgets.grant(running, session_quota=500 * MiB, session_bytes=0, session_id="x") == (
        100 * MiB
    )
    second = store.acquire("user:a", running=True, limit=4, reserved=500 * MiB)
    assert second is not None
    assert budgets.grant(second, session_quota=500 * MiB, session_bytes=0, session_id="y") == 0
    third = store.acquire("user:a", running=True, limit=4, reserved=500 * MiB)
    assert third is not None
    assert third.others_reserved == 100 * MiB  # the first's grant; the second holds nothing
    store.release(running)
    fourth = store.acquire("user:a", running=True, limit=4, reserved=500 * MiB)
    assert fourth is not None
    # The third still holds its first, oversized reservation until it is shrunk: never less.
    assert budgets.grant(fourth, session_quota=500 * MiB, session_bytes=0, session_id="z") == 0


# -- a uid per live session (root-run service) --------------------------------------------------


@pytest.fixture
def root_mode() -> None:
    if sandbox.session_uids() is None:
        pytest.skip("uids are allocated by a root-run service only")


@pytest.mark.usefixtures("root_mode")
def test_every_live_session_has_a_uid_of_its_own(api: Client, code_settings: Settings) -> None:
    bodies = [write(api, f"f{n}", 10) for n in range(5)]
    uids = [CodeSession.objects.get(pk=body["session_id"]).uid for body in bodies]
    span = sandbox.session_uids()
    assert span is not None
    assert len(set(uids)) == 5
    assert all(uid in span for uid in uids)
    sessions = Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR)
    for body, uid in zip(bodies, uids, strict=True):
        assert (sessions / body["session_id"]).stat().st_uid == uid


@pytest.mark.usefixtures("root_mode")
def test_a_uid_is_free_again_once_its_session_expires(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_SANDBOX_UID_SPAN = 1  # one uid for everyone
    first = write(api, "a", 10)
    uid = CodeSession.objects.get(pk=first["session_id"]).uid
    refused = post_exec(api, {"lang": "py", "code": "print(1)", "user_id": OTHER_USER})
    assert refused.status_code == 503
    assert "No free sandbox uid" in refused.json()["error"]["message"]
    # The first session goes on with its uid.
    assert write(api, "b", 10, session_id=first["session_id"])["status"] == "ok"
    CodeSession.objects.filter(pk=first["session_id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    sessions_cleanup()
    again = post_exec(api, {"lang": "py", "code": "print(1)", "user_id": OTHER_USER})
    assert again.status_code == 200
    assert CodeSession.objects.get(pk=again.json()["session_id"]).uid == uid
