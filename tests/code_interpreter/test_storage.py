"""The stored files through each storage backend: the local filesystem, and S3 for real.

The S3 side is django-storages' S3 backend against moto's S3-compatible server, started on
loopback by these tests (``moto[server]``, a dev extra): every byte goes over HTTP and S3's API,
as it would to AWS or MinIO.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from moto.server import ThreadedMotoServer
from pytest_django import Settings

from code_interpreter.cleanup import sessions_cleanup
from code_interpreter.models import CodeFile, CodeSession
from code_interpreter.storage import file_storage
from tests import servers
from tests.code_interpreter.conftest import BASE, USER, post_exec

BUCKET = "code-files"
CREDENTIALS = {"access_key": "test-access-key", "secret_key": "test-secret-key"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = servers.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, code_settings: Settings) -> str:
    if request.param == "s3":
        code_settings.STORAGES = {
            **code_settings.STORAGES,
            "code_interpreter": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "endpoint_url": request.getfixturevalue("s3_endpoint"),
                    "region_name": "us-east-1",
                    "default_acl": "private",
                    "querystring_auth": False,
                    **CREDENTIALS,
                },
            },
        }
    return str(request.param)


def stored(record_id: str) -> bytes:
    record = CodeFile.objects.get(pk=record_id)
    with file_storage().open(record.storage_name, "rb") as handle:
        data: bytes = handle.read()
    return data


def test_the_backend_is_the_one_configured(api: Client, backend: str) -> None:
    expected = "S3Storage" if backend == "s3" else "FileSystemStorage"
    assert type(file_storage()).__name__ == expected


def test_outputs_are_stored_and_downloaded(api: Client, backend: str) -> None:
    body = post_exec(
        api, {"lang": "bash", "code": "printf 'a,b\\n1,2\\n' > /mnt/data/out.csv", "user_id": USER}
    ).json()
    [entry] = body["files"]
    assert stored(entry["id"]) == b"a,b\n1,2\n"
    url = f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}?kind=user&id={USER}"
    whole = api.get(url)
    assert (whole.status_code, whole.getvalue()) == (200, b"a,b\n1,2\n")
    part = api.get(url, headers={"Range": "bytes=2-4"})
    assert (part.status_code, part.getvalue()) == (206, b"b\n1")


def test_uploads_are_mounted_and_deleted(
    api: Client, backend: str, django_capture_on_commit_callbacks: Any
) -> None:
    response = api.post(
        f"{BASE}/upload",
        {"kind": "user", "id": USER, "file": SimpleUploadedFile("in.txt", b"uploaded")},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    [uploaded] = body["files"]
    ref = {"id": uploaded["fileId"], "storage_session_id": body["storage_session_id"]}
    ran = post_exec(
        api,
        {
            "lang": "bash",
            "code": "cat /mnt/data/in.txt",
            "user_id": USER,
            "files": [{**ref, "name": "in.txt"}],
        },
    ).json()
    assert ran["stdout"] == "uploaded"
    record = CodeFile.objects.get(pk=uploaded["fileId"])
    assert file_storage().exists(record.storage_name)
    with django_capture_on_commit_callbacks(execute=True):
        deleted = api.delete(
            f"{BASE}/files/{body['storage_session_id']}/{uploaded['fileId']}?kind=user&id={USER}"
        )
    assert deleted.status_code == 200
    assert not file_storage().exists(record.storage_name)


def test_a_session_is_rebuilt_from_storage_on_a_host_without_its_directory(
    api: Client, backend: str, code_settings: Settings, tmp_path: Path
) -> None:
    first = post_exec(
        api,
        {
            "lang": "bash",
            "code": "mkdir -p /mnt/data/deep && echo kept > /mnt/data/deep/k.txt",
            "user_id": USER,
        },
    ).json()
    session_id = first["session_id"]
    # Another host: its own (empty) sessions directory; this one's is gone altogether.
    shutil.rmtree(code_settings.CODE_INTERPRETER_SESSIONS_DIR)
    code_settings.CODE_INTERPRETER_SESSIONS_DIR = tmp_path / "another-host"
    again = post_exec(
        api,
        {
            "lang": "bash",
            "code": "cat /mnt/data/deep/k.txt && echo more > /mnt/data/new.txt",
            "user_id": USER,
            "session_id": session_id,
        },
    ).json()
    assert (again["status"], again["stdout"]) == ("ok", "kept\n"), again["stderr"]
    names = {entry["name"]: entry for entry in again["files"]}
    assert names["deep/k.txt"]["inherited"] is True
    assert stored(names["new.txt"]["id"]) == b"more\n"
    assert (tmp_path / "another-host" / session_id / "deep" / "k.txt").read_text() == "kept\n"


def test_cleanup_removes_the_stored_bytes(api: Client, backend: str) -> None:
    body = post_exec(
        api, {"lang": "bash", "code": "echo x > /mnt/data/x.txt", "user_id": USER}
    ).json()
    record = CodeFile.objects.get(pk=body["files"][0]["id"])
    assert file_storage().exists(record.storage_name)
    CodeSession.objects.filter(pk=body["session_id"]).update(expires_at=record.created_at)
    report: Any = sessions_cleanup()
    assert (report.sessions, report.files) == (1, 1)
    assert not file_storage().exists(record.storage_name)
