"""LibreChat v0.8.8's Code API contract: execution profiles, the stateful runtime session of a
``runtime_session_hint`` (prewarm, shared /mnt/data, busy), and the files' descriptors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django import Settings

from code_interpreter import warm_sessions
from code_interpreter.models import CodeSession
from code_interpreter.sandbox import warm
from tests.code_interpreter.conftest import BASE, USER, KeyPair

pytestmark = pytest.mark.usefixtures("sandbox_ready")

STATEFUL = "/api/code/stateful/v1"
# What LibreChat v0.8.8 derives for a user's own environment (execution.ts: v2:user:<32 hex>).
HINT = "v2:user:b5729fb0e3ca12e7a61ff6857b99d98e"
CALLER = f"anonymous/user:{USER}"  # the warm pool's key for this caller
SCOPE = "anonymous"  # its runtime scope: no JWT, no API key


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    warm.pool.clear()
    yield
    warm.pool.clear()


def exec_at(api: Client, base: str, body: dict[str, Any], profile: str | None = None) -> Any:
    headers = {"User-Agent": "LibreChat/1.0"}
    if profile:
        headers["X-CodeAPI-Expected-Profile"] = profile
    return api.post(
        f"{base}/exec", json.dumps(body), content_type="application/json", headers=headers
    )


def stateful(api: Client, code: str, **body: Any) -> Any:
    response = exec_at(
        api,
        STATEFUL,
        {"lang": "bash", "code": code, "user_id": USER, "runtime_session_hint": HINT, **body},
        "stateful",
    )
    assert response.status_code == 200, response.content
    assert response["X-CodeAPI-Execution-Profile"] == "stateful"
    return response.json()


# -- profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "profile"), [(BASE, "default"), (STATEFUL, "stateful")])
def test_each_base_url_names_its_profile_on_every_reply(
    api: Client, base: str, profile: str
) -> None:
    ran = exec_at(api, base, {"lang": "bash", "code": "echo hi"}, profile)
    assert (ran.status_code, ran.json()["stdout"]) == (200, "hi\n")
    health = api.get(f"{base}/health")
    refused = exec_at(api, base, {"lang": "rs", "code": "fn main() {}"}, profile)
    missing = api.get(f"{base}/download/{'a' * 21}/{'b' * 21}")
    wrong_method = api.get(f"{base}/exec")
    statuses = [r.status_code for r in (health, refused, missing, wrong_method)]
    assert statuses == [200, 400, 404, 405]
    for response in (ran, health, refused, missing, wrong_method):
        assert response["X-CodeAPI-Execution-Profile"] == profile
    assert refused.json()["error"]["code"] == "unsupported_language"  # our one error shape


def test_a_refused_caller_still_learns_the_profile(api: Client, jwt_auth: KeyPair) -> None:
    response = exec_at(api, STATEFUL, {"lang": "bash", "code": "true"}, "stateful")
    assert response.status_code == 401
    assert response["X-CodeAPI-Execution-Profile"] == "stateful"


@pytest.mark.parametrize(
    ("base", "expected", "actual"),
    [(BASE, "stateful", "default"), (STATEFUL, "default", "stateful")],
)
def test_a_request_for_the_other_profile_is_refused_before_anything_runs(
    api: Client, base: str, expected: str, actual: str
) -> None:
    response = exec_at(api, base, {"lang": "bash", "code": "touch /mnt/data/x"}, expected)
    assert response.status_code == 409
    assert response["X-CodeAPI-Execution-Profile"] == actual
    body = response.json()
    # The official service's body; LibreChat's client reads `error` as a capability mismatch.
    assert body.pop("message").startswith(
        f"Expected the {expected} execution profile, but reached {actual}."
    )
    assert body == {
        "error": "execution_profile_mismatch",
        "expected_profile": expected,
        "actual_profile": actual,
    }
    assert not CodeSession.objects.exists()
    upload = api.post(f"{base}/upload", headers={"X-CodeAPI-Expected-Profile": expected})
    assert (upload.status_code, upload.json()["error"]) == (409, "execution_profile_mismatch")


def test_an_unknown_profile_is_400(api: Client) -> None:
    response = exec_at(api, BASE, {"lang": "bash", "code": "true"}, "turbo")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_execution_profile",
        "message": "Invalid execution profile: turbo",
        "expected_profile": "turbo",
        "actual_profile": "default",
    }


def test_without_an_expected_profile_both_serve(api: Client) -> None:
    """LibreChat v0.8.7 sends no profile header: either base URL serves it."""
    for base in (BASE, STATEFUL):
        response = exec_at(api, base, {"lang": "py", "code": "print(6 * 7)"})
        assert (response.status_code, response.json()["stdout"]) == (200, "42\n")


# -- the stateful runtime session --------------------------------------------------------------


def test_prewarm_starts_the_hints_sandbox_and_the_next_calls_share_mnt_data(api: Client) -> None:
    prewarm = stateful(api, "true")  # exactly what LibreChat v0.8.8 sends (prewarm.ts)
    assert (prewarm["stdout"], prewarm["stderr"], prewarm["files"]) == ("", "", [])
    assert warm.pool.alive(CALLER) == 1
    wrote = stateful(api, "echo 'from call 1' > /mnt/data/note.txt; echo done")
    read = stateful(api, "cat /mnt/data/note.txt")
    assert read["stdout"] == "from call 1\n"
    assert prewarm["session_id"] == wrote["session_id"] == read["session_id"]
    assert warm.pool.alive(CALLER) == 1  # one runtime session per hint and caller
    other = stateful(api, "ls /mnt/data", runtime_session_hint="v2:user:" + "0" * 32)
    assert (other["stdout"], other["session_id"] != read["session_id"]) == ("", True)


def test_a_busy_runtime_session_is_409_runtime_session_busy(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S = 0.2
    with warm_sessions.runtime_session(SCOPE, HINT):  # an execution of this hint is running
        sessions = CodeSession.objects.count()
        response = exec_at(
            api,
            STATEFUL,
            {"lang": "bash", "code": "true", "user_id": USER, "runtime_session_hint": HINT},
            "stateful",
        )
        assert response.status_code == 409
        assert response["X-CodeAPI-Execution-Profile"] == "stateful"
        body = response.json()
        assert body["error"] == "runtime_session_busy"
        assert "runtime_session_hint" in body["message"]
        assert CodeSession.objects.count() == sessions  # refused before anything ran
        assert stateful(api, "echo free", runtime_session_hint=HINT + "x")["stdout"] == "free\n"
    assert stateful(api, "echo again")["stdout"] == "again\n"


def test_a_second_call_waits_for_the_first_within_the_wait(code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S = 5.0
    order: list[str] = []

    def first() -> None:
        with warm_sessions.runtime_session(SCOPE, HINT):
            order.append("first in")
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    while not order:
        time.sleep(0.01)
    with warm_sessions.runtime_session(SCOPE, HINT):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    with warm_sessions.runtime_session("another caller", HINT):  # hints are per caller
        pass


# -- files as LibreChat v0.8.8 describes them ----------------------------------------------------


def upload(api: Client, **fields: str) -> Any:
    response = api.post(
        f"{STATEFUL}/upload",
        {**fields, "file": _named_file("data.csv", b"a,b\n1,2\n")},
        headers={"User-Id": USER, "X-CodeAPI-Expected-Profile": "stateful"},
    )
    assert response.status_code == 200, response.content
    return response.json()


def _named_file(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


def test_files_carry_storage_session_kind_resource_and_version(api: Client) -> None:
    mine = upload(api, kind="user", id=USER)
    [entry] = mine["files"]
    assert entry == {
        "fileId": entry["fileId"],
        "filename": "data.csv",
        "kind": "user",
        "resource_id": USER,
        "storage_session_id": mine["storage_session_id"],
    }
    skill = upload(api, kind="skill", id="665f1c2e9b1e4a00aaaaaaaa", version="3")
    [skill_entry] = skill["files"]
    assert (skill_entry["kind"], skill_entry["version"]) == ("skill", 3)
    ref = {
        "id": skill_entry["fileId"],
        "storage_session_id": skill["storage_session_id"],
        "name": "skill/data.csv",
        "kind": "skill",
        "resource_id": "665f1c2e9b1e4a00aaaaaaaa",
        "version": 3,
    }
    ran = stateful(api, "cat /mnt/data/skill/data.csv > /mnt/data/out.csv", files=[ref])
    by_name = {f["name"]: f for f in ran["files"]}
    out, echoed = by_name["out.csv"], by_name["skill/data.csv"]
    assert (out["kind"], out["resource_id"], "inherited" in out) == ("user", USER, False)
    # Named again by LibreChat exactly as echoed: a skill's file stays the skill's.
    assert (echoed["kind"], echoed["resource_id"], echoed["version"]) == (
        "skill",
        "665f1c2e9b1e4a00aaaaaaaa",
        3,
    )
    assert echoed["inherited"] is True
    fresh = api.get(
        f"{STATEFUL}/sessions/{out['storage_session_id']}/objects/{out['id']}",
        {"kind": "user", "id": USER},
    ).json()
    assert (fresh["kind"], fresh["resource_id"], fresh["storage_session_id"]) == (
        "user",
        USER,
        out["storage_session_id"],
    )


def test_a_bad_version_is_a_clear_400(api: Client) -> None:
    response = api.post(
        f"{BASE}/upload",
        {"kind": "skill", "id": "s1", "version": "three", "file": _named_file("a.txt", b"a")},
    )
    assert response.status_code == 400
    assert "version must be a non-negative integer" in response.json()["error"]["message"]


def test_a_batch_upload_describes_each_stored_file(api: Client) -> None:
    response = api.post(
        f"{STATEFUL}/upload/batch",
        {
            "kind": "agent",
            "id": "agent_abcdefghijk",
            "read_only": "true",
            "file": [_named_file("a.csv", b"a"), _named_file("b.csv", b"b")],
        },
        headers={"User-Id": USER},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(f["filename"], f["kind"], f["resource_id"]) for f in body["files"]] == [
        ("a.csv", "agent", "agent_abcdefghijk"),
        ("b.csv", "agent", "agent_abcdefghijk"),
    ]
    assert {f["storage_session_id"] for f in body["files"]} == {body["storage_session_id"]}


def test_a_file_reference_with_a_bad_version_is_a_clear_400(api: Client) -> None:
    ref = {"id": "a" * 21, "storage_session_id": "b" * 21, "name": "x.txt", "version": -1}
    response = exec_at(api, BASE, {"lang": "bash", "code": "true", "files": [ref]})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "files[0].version must be a non-negative integer."
    )
