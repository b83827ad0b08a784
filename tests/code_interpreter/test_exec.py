"""POST /exec: what LibreChat's bash_tool and execute_code send, and every way it can go wrong."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings

from code_interpreter import limits
from code_interpreter.models import CodeFile, CodeSession
from tests.code_interpreter.conftest import BASE, USER, post_exec

ID = re.compile(r"[A-Za-z0-9_-]{21}")


def test_bash_tool_request_runs_and_answers_like_the_official_server(api: Client) -> None:
    # Exactly what bash_tool sent in transcript f: no user_id, no files.
    response = post_exec(api, {"lang": "bash", "code": "python3 -c 'print(6*7)'"})
    assert response.status_code == 200
    body = response.json()
    assert ID.fullmatch(body["session_id"])
    assert body["stdout"] == "42\n"
    assert body["stderr"] == ""
    assert body["files"] == []
    assert body["code"] == 0
    assert body["signal"] is None
    assert body["status"] == "ok"
    assert body["message"] is None
    assert isinstance(body["wall_time"], int)
    assert CodeSession.objects.filter(pk=body["session_id"], owner="").exists()


def test_execute_code_request_with_user_id_and_empty_files(api: Client) -> None:
    response = post_exec(
        api, {"lang": "py", "code": "print('hi')", "user_id": USER, "files": [], "args": []}
    )
    assert response.status_code == 200, response.content
    assert response.json()["stdout"] == "hi\n"
    session = CodeSession.objects.get(pk=response.json()["session_id"])
    assert session.owner == f"user:{USER}"


@pytest.mark.parametrize(
    ("lang", "code", "stdout"),
    [
        ("python", "print(2 + 2)", "4\n"),
        ("js", "console.log(5)", "5\n"),
        ("node", "console.log('n')", "n\n"),
        ("ts", "const x: number = 6; console.log(x)", "6\n"),
        ("sh", "echo $((3 * 3))", "9\n"),
    ],
)
def test_languages_and_aliases(api: Client, lang: str, code: str, stdout: str) -> None:
    response = post_exec(api, {"lang": lang, "code": code})
    assert response.status_code == 200, response.content
    assert response.json()["stdout"] == stdout


def test_args_reach_the_program(api: Client) -> None:
    response = post_exec(
        api, {"lang": "py", "code": "import sys; print(sys.argv[1:])", "args": ["a b", "c"]}
    )
    assert response.json()["stdout"] == "['a b', 'c']\n"


def test_written_files_are_listed_stored_and_described(api: Client) -> None:
    code = "open('/mnt/data/out.txt', 'w').write('hello'); print('done')"
    body = post_exec(api, {"lang": "py", "code": code}).json()
    [entry] = body["files"]
    assert entry["name"] == "out.txt"
    assert entry["path"] == "/mnt/data/out.txt"
    assert entry["storage_session_id"] == body["session_id"]
    assert "inherited" not in entry
    assert ID.fullmatch(entry["id"])
    record = CodeFile.objects.get(pk=entry["id"])
    assert (record.size, record.content_type, record.origin) == (5, "text/plain", "output")
    assert record.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_nested_output_keeps_its_path_and_caches_are_skipped(api: Client) -> None:
    code = (
        "import os; os.makedirs('/mnt/data/report/img'); "
        "open('/mnt/data/report/img/a.csv','w').write('x'); "
        "os.makedirs('/mnt/data/__pycache__'); open('/mnt/data/__pycache__/m.pyc','w').write('x'); "
        "open('/mnt/data/.hidden','w').write('x')"
    )
    body = post_exec(api, {"lang": "py", "code": code}).json()
    assert [entry["name"] for entry in body["files"]] == ["report/img/a.csv"]


def test_a_failed_execution_registers_no_files(api: Client) -> None:
    body = post_exec(
        api, {"lang": "bash", "code": "echo partial > /mnt/data/p.txt; echo boom >&2; exit 3"}
    ).json()
    assert body["code"] == 3
    assert body["status"] == "error"
    assert body["stderr"] == "boom\n"
    assert body["files"] == []
    assert not CodeFile.objects.exists()


def test_files_persist_in_the_session_and_unchanged_ones_are_inherited(api: Client) -> None:
    first = post_exec(api, {"lang": "bash", "code": "echo 1 > /mnt/data/a.txt"}).json()
    session_id = first["session_id"]
    [a] = first["files"]
    second = post_exec(
        api,
        {
            "lang": "bash",
            "code": "cat /mnt/data/a.txt; echo 2 > /mnt/data/b.txt",
            "session_id": session_id,
        },
    ).json()
    assert second["session_id"] == session_id
    assert second["stdout"] == "1\n"
    by_name = {entry["name"]: entry for entry in second["files"]}
    assert by_name["a.txt"] == {**a, "inherited": True}
    assert "inherited" not in by_name["b.txt"]
    # Rewriting a file gives it a new id; the old one is gone.
    third = post_exec(
        api, {"lang": "bash", "code": "echo 3 > /mnt/data/a.txt", "session_id": session_id}
    ).json()
    new_a = next(entry for entry in third["files"] if entry["name"] == "a.txt")
    assert new_a["id"] != a["id"]
    assert "inherited" not in new_a
    assert not CodeFile.objects.filter(pk=a["id"]).exists()


def test_a_lost_session_directory_is_rebuilt_from_storage(
    api: Client, code_settings: Settings
) -> None:
    first = post_exec(api, {"lang": "bash", "code": "echo kept > /mnt/data/k.txt"}).json()
    shutil.rmtree(Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR) / first["session_id"])
    again = post_exec(
        api, {"lang": "bash", "code": "cat /mnt/data/k.txt", "session_id": first["session_id"]}
    ).json()
    assert again["stdout"] == "kept\n"
    # Mounted again from storage, unchanged by the run: the same file, inherited.
    assert again["files"] == [{**first["files"][0], "inherited": True}]


def test_a_run_that_leaves_no_file_unchanged_reads_no_file_records(api: Client) -> None:
    """The session's stored files are read only when the run left one of them unchanged (or its
    directory had to be rebuilt): ``print(1)`` in a session without files does not ask."""
    session_id = post_exec(api, {"lang": "py", "code": "print(1)"}).json()["session_id"]
    record_reads = 'SELECT "code_interpreter_codefile"."id"'
    with CaptureQueriesContext(connection) as queries:
        body = post_exec(api, {"lang": "py", "code": "print(1)", "session_id": session_id})
    assert body.json()["stdout"] == "1\n"
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith(record_reads)]
    # A file the next run writes is stored, counted and listed; the one after inherits it.
    wrote = post_exec(
        api, {"lang": "bash", "code": "echo hi > /mnt/data/n.txt", "session_id": session_id}
    ).json()
    [made] = wrote["files"]
    assert CodeSession.objects.get(pk=session_id).disk_bytes > 0
    with CaptureQueriesContext(connection) as queries:
        kept = post_exec(api, {"lang": "py", "code": "print(2)", "session_id": session_id})
    assert kept.json()["files"] == [{**made, "inherited": True}]
    assert [q for q in queries.captured_queries if q["sql"].startswith(record_reads)]


def test_input_files_from_other_sessions_are_mounted_by_name(api: Client) -> None:
    made = post_exec(api, {"lang": "bash", "code": "printf 'x,y\\n1,2\\n' > /mnt/data/d.csv"})
    [d] = made.json()["files"]
    ref = {
        "id": d["id"],
        "storage_session_id": d["storage_session_id"],
        "name": "inputs/data.csv",
        "kind": "user",
        "resource_id": USER,
    }
    body = post_exec(
        api, {"lang": "bash", "code": "cat /mnt/data/inputs/data.csv", "files": [ref]}
    ).json()
    assert body["stdout"] == "x,y\n1,2\n"
    assert body["session_id"] != d["storage_session_id"]
    assert body["files"] == [
        {
            "id": d["id"],
            "name": "inputs/data.csv",
            "path": "/mnt/data/inputs/data.csv",
            "storage_session_id": d["storage_session_id"],
            "kind": "user",  # made by no user in particular: no resource_id
            "inherited": True,
        }
    ]
    # The legacy `session_id` key of a file reference works too; a modified input is new.
    legacy_ref = {"id": d["id"], "session_id": d["storage_session_id"], "name": "d.csv"}
    changed = post_exec(
        api, {"lang": "bash", "code": "echo 3,4 >> /mnt/data/d.csv", "files": [legacy_ref]}
    ).json()
    [modified] = changed["files"]
    assert modified["id"] != d["id"]
    assert "inherited" not in modified


def test_missing_or_expired_input_file_is_a_clear_404(api: Client) -> None:
    ghost = {"id": "A" * 21, "storage_session_id": "B" * 21, "name": "gone.csv"}
    response = post_exec(api, {"lang": "bash", "code": "ls", "files": [ghost]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "file_not_found"
    assert "gone.csv" in error["message"]


def test_unknown_session_id_is_404(api: Client) -> None:
    response = post_exec(api, {"lang": "py", "code": "print(1)", "session_id": "Z" * 21})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# -- limits reach the model in LibreChat's words -----------------------------------------------


def test_timeout_is_reported_as_time_limit_exceeded(api: Client) -> None:
    body = post_exec(
        api, {"lang": "py", "code": "import time; time.sleep(30)", "timeout": 500}
    ).json()
    assert body_status(body) == ("timeout", "Time limit exceeded")
    assert "Time limit exceeded" in body["stderr"]
    assert body["signal"] == "SIGKILL"


def test_huge_output_is_reported_as_stdout_length_exceeded(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_MAX_OUTPUT_BYTES = 10_000
    body = post_exec(api, {"lang": "py", "code": "print('x' * 100_000)"}).json()
    # OL: the runner's word for it, which LibreChat v0.8.8's image reader acts on.
    assert body_status(body) == ("OL", "stdout length exceeded")
    assert body["stdout_truncated"] is True
    assert len(body["stdout"]) <= 10_000


def test_huge_error_output_is_reported_as_stderr_length_exceeded(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_MAX_OUTPUT_BYTES = 10_000
    body = post_exec(api, {"lang": "bash", "code": "head -c 100000 /dev/zero >&2"}).json()
    assert body_status(body) == ("EL", "stderr length exceeded")
    assert (body["stderr_truncated"], body["stdout_truncated"]) == (True, False)


def test_memory_hog_is_reported_as_out_of_memory(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MEMORY_BYTES = 200 * 1024 * 1024
    body = post_exec(api, {"lang": "py", "code": "x = bytearray(1024 ** 3)"}).json()
    assert body_status(body) == ("oom", "Out of memory")
    assert "Out of memory" in body["stderr"]


def body_status(body: dict[str, Any]) -> tuple[str, str | None]:
    return body["status"], body["message"]


# -- bad input: a clear 4xx, never a 500 -------------------------------------------------------


def test_unknown_language(api: Client) -> None:
    response = post_exec(api, {"lang": "cobol", "code": "DISPLAY 'X'."})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_language"
    assert error["message"] == "Unsupported language: cobol"
    assert "py" in error["supported_languages"]


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"code": "print(1)"}, "invalid", "lang is required"),
        ({"lang": "py"}, "invalid", "code is required"),
        ({"lang": "py", "code": "   "}, "invalid", "code is empty"),
        ({"lang": "py", "code": 5}, "invalid", "code is required"),
        ({"lang": "py", "code": "1", "args": "x"}, "invalid", "args"),
        ({"lang": "py", "code": "1", "args": ["a\x00"]}, "invalid", "args"),
        ({"lang": "py", "code": "1", "timeout": -5}, "invalid", "timeout"),
        ({"lang": "py", "code": "1", "timeout": "fast"}, "invalid", "timeout"),
        ({"lang": "py", "code": "1", "session_id": "short"}, "invalid_id", "session_id"),
        ({"lang": "py", "code": "1", "files": {}}, "invalid", "files"),
        ({"lang": "py", "code": "1", "files": ["x"]}, "invalid", "files[0]"),
        ({"lang": "py", "code": "1", "files": [{"id": "x"}]}, "invalid_id", "files[0].id"),
        (
            {"lang": "py", "code": "1", "files": [{"id": "A" * 21, "name": "a"}]},
            "invalid_id",
            "storage_session_id",
        ),
        (
            {
                "lang": "py",
                "code": "1",
                "files": [
                    {"id": "A" * 21, "storage_session_id": "B" * 21, "name": "a", "kind": "x"}
                ],
            },
            "invalid",
            "kind",
        ),
    ],
)
def test_malformed_exec_bodies(api: Client, body: dict[str, Any], code: str, needle: str) -> None:
    response = post_exec(api, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert needle in error["message"]


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "./a",
        "bad\nname.txt",
        "nul\x00.txt",
        "back\\slash.txt",
        "",
        "x" * 600,
    ],
)
def test_path_traversal_and_odd_names_in_input_files(api: Client, name: str) -> None:
    ref = {"id": "A" * 21, "storage_session_id": "B" * 21, "name": name}
    response = post_exec(api, {"lang": "bash", "code": "ls", "files": [ref]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_file_name"


def test_malformed_json(api: Client) -> None:
    response = api.post(f"{BASE}/exec", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    response = api.post(f"{BASE}/exec", "[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_oversized_body(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_REQUEST_BYTES = 2048
    body = json.dumps({"lang": "py", "code": "#" + "x" * 5000})
    response = api.post(f"{BASE}/exec", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_wrong_method(api: Client) -> None:
    response = api.get(f"{BASE}/exec")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_programmatic_tool_calling_is_refused_clearly(api: Client) -> None:
    response = post_exec(api, {"lang": "bash", "code": "x"})  # sanity: /exec itself works
    assert response.status_code == 200
    response = api.post(f"{BASE}/exec/programmatic", "{}", content_type="application/json")
    assert response.status_code == 501
    # The word LibreChat's client turns into "permanent capability mismatch, do not retry".
    assert response.json()["error"] == "unsupported_capability"
    assert "Programmatic tool calling" in response.json()["message"]


# -- concurrency -------------------------------------------------------------------------------


def test_over_the_concurrency_limit_is_429_with_retry_after(
    api: Client, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_MAX_CONCURRENT = 1
    code_settings.CODE_INTERPRETER_QUEUE_WAIT_S = 0.2
    with limits.execution_slots.slot("user:someone-else"):  # this process's one slot
        response = post_exec(api, {"lang": "py", "code": "print(1)"})
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert error["retry_after_seconds"] == 1
    assert response["Retry-After"] == "1"
    assert post_exec(api, {"lang": "py", "code": "print(1)"}).status_code == 200
