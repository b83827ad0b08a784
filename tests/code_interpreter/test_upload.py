"""POST /upload and /upload/batch: LibreChat's multipart shapes (contract C3)."""

from __future__ import annotations

import re

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django import Settings

from code_interpreter.models import CodeFile, CodeSession
from tests.code_interpreter.conftest import BASE, OTHER_USER, USER

ID = re.compile(r"[A-Za-z0-9_-]{21}")


def csv(name: str = "data.csv", content: bytes = b"x,y\n1,2\n3,4\n") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_librechat_upload_kind_id_user_id(api: Client) -> None:
    # Transcript g: fields kind, id, then file; the user in the User-Id header.
    response = api.post(
        f"{BASE}/upload",
        {"kind": "user", "id": USER, "file": csv()},
        headers={"User-Id": USER, "User-Agent": "LibreChat/1.0"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "success"
    assert ID.fullmatch(body["storage_session_id"])
    [entry] = body["files"]
    assert entry["filename"] == "data.csv"
    assert ID.fullmatch(entry["fileId"])
    assert "session_id" not in body
    record = CodeFile.objects.select_related("session").get(pk=entry["fileId"])
    assert record.session_id == body["storage_session_id"]
    assert record.session.owner == f"user:{USER}"
    assert (record.size, record.content_type, record.origin) == (12, "text/csv", "upload")


def test_legacy_upload_with_entity_id_also_answers_session_id(api: Client) -> None:
    response = api.post(f"{BASE}/upload", {"entity_id": "agent_abc123", "file": csv()})
    body = response.json()
    assert body["message"] == "success"
    assert body["session_id"] == body["storage_session_id"]
    assert CodeSession.objects.get(pk=body["session_id"]).owner == "agent:agent_abc123"


def test_agent_kind_is_owned_by_the_agent(api: Client) -> None:
    response = api.post(
        f"{BASE}/upload",
        {"kind": "agent", "id": "agent_Xy1", "file": csv()},
        headers={"User-Id": USER},
    )
    assert (
        CodeSession.objects.get(pk=response.json()["storage_session_id"]).owner == "agent:agent_Xy1"
    )


def test_batch_upload_reports_each_file(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_FILE_BYTES = 100
    response = api.post(
        f"{BASE}/upload/batch",
        {
            "kind": "skill",
            "id": "skill1",
            "version": "3",
            "read_only": "true",
            "file": [csv("a.csv"), csv("big.csv", b"x" * 200), csv("a.csv")],
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "partial_success"
    assert (body["succeeded"], body["failed"]) == (1, 2)
    ok, big, duplicate = body["files"]
    assert ok["status"] == "success"
    assert ID.fullmatch(ok["fileId"])
    assert big == {"status": "error", "filename": "big.csv", "error": big["error"]}
    assert "too large" in big["error"]
    assert "Duplicate" in duplicate["error"]
    assert CodeFile.objects.get(pk=ok["fileId"]).read_only is True


def test_batch_where_everything_fails_is_a_400(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_FILE_BYTES = 1
    response = api.post(f"{BASE}/upload/batch", {"kind": "user", "file": [csv()]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "upload_failed"
    assert error["failed"] == 1
    assert not CodeSession.objects.exists()


def test_single_upload_too_large_is_413(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_FILE_BYTES = 5
    response = api.post(f"{BASE}/upload", {"kind": "user", "id": USER, "file": csv()})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not CodeFile.objects.exists()


def test_whole_upload_over_the_body_limit_is_413(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_MAX_UPLOAD_BYTES = 1024
    response = api.post(f"{BASE}/upload", {"file": csv(content=b"y" * 5000)})
    assert response.status_code == 413


def test_not_multipart_is_400(api: Client) -> None:
    response = api.post(f"{BASE}/upload", '{"a": 1}', content_type="application/json")
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_no_file_is_400(api: Client) -> None:
    response = api.post(f"{BASE}/upload", {"kind": "user", "id": USER})
    assert response.status_code == 400
    assert "No files" in response.json()["error"]["message"]


def test_bad_kind_and_ids_are_400(api: Client) -> None:
    assert api.post(f"{BASE}/upload", {"kind": "nope", "file": csv()}).status_code == 400
    response = api.post(f"{BASE}/upload", {"kind": "agent", "id": "bad id!", "file": csv()})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_id"
    assert api.post(f"{BASE}/upload", {"kind": "agent", "file": csv()}).status_code == 400


def test_path_names_are_reduced_to_a_safe_file_name(api: Client) -> None:
    response = api.post(f"{BASE}/upload", {"file": csv("../../etc/pass\x07wd")})
    assert response.status_code == 200
    assert response.json()["files"][0]["filename"] == "passwd"


def test_malformed_multipart_is_400(api: Client) -> None:
    response = api.generic(
        "POST",
        f"{BASE}/upload",
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        content_type="multipart/form-data; boundary=",
    )
    assert response.status_code == 400


def test_uploaded_file_is_usable_by_its_owner_not_by_another_user(api: Client) -> None:
    upload = api.post(
        f"{BASE}/upload", {"kind": "user", "id": USER, "file": csv()}, headers={"User-Id": USER}
    ).json()
    ref = {
        "id": upload["files"][0]["fileId"],
        "storage_session_id": upload["storage_session_id"],
        "name": "data.csv",
        "kind": "user",
        "resource_id": USER,
    }
    from tests.code_interpreter.conftest import post_exec

    mine = post_exec(api, {"lang": "bash", "code": "wc -l < /mnt/data/data.csv", "files": [ref]})
    assert mine.json()["stdout"] == "3\n"
    theirs = post_exec(
        api,
        {"lang": "bash", "code": "cat /mnt/data/data.csv", "user_id": OTHER_USER, "files": [ref]},
    )
    assert theirs.status_code == 404
