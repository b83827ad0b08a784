"""/api/files: multipart uploads (streamed, 50 MB in flat memory), listing, download, delete."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from collections.abc import Iterator
from urllib.parse import unquote

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_user, read_stream, start

BOUNDARY = "----WebKitFormBoundaryCapture7MA4YWxk"
CSV = b"x,y\n1,2\n3,4\n"


def multipart(
    fields: list[tuple[str, str]],
    filename: str,
    content: Iterator[bytes] | bytes,
    *,
    content_type: str = "text/csv",
    file_first: bool = False,
) -> Iterator[bytes]:
    """The web client's body (useFileHandling): text fields, the file part among them."""

    def field(name: str, value: str) -> bytes:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        return f"--{BOUNDARY}\r\n{disposition}\r\n\r\n{value}\r\n".encode()

    file_head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    before = [f for f in fields if f[0] in {"endpoint", "endpointType"}]
    after = [f for f in fields if f not in before]
    if file_first:
        before, after = [], fields
    for name, value in before:
        yield field(name, value)
    yield file_head
    if isinstance(content, bytes):
        yield content
    else:
        yield from content
    yield b"\r\n"
    for name, value in after:
        yield field(name, value)
    yield f"--{BOUNDARY}--\r\n".encode()


def upload(
    client: httpx.Client,
    fields: list[tuple[str, str]],
    filename: str = "data.csv",
    content: Iterator[bytes] | bytes = CSV,
    *,
    file_first: bool = False,
) -> httpx.Response:
    return client.post(
        "/api/files",
        content=b"".join(multipart(fields, filename, content, file_first=file_first)),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def attachment_fields(client_file_id: str) -> list[tuple[str, str]]:
    return [
        ("endpoint", "Fake"),
        ("endpointType", "custom"),
        ("file_id", client_file_id),
        ("message_file", "true"),
        ("tool_resource", "execute_code"),
    ]


def test_upload_a_chat_attachment_and_use_it(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "files@example.com")
    user_id = client.get("/api/user").json()["id"]
    client_file_id = str(uuid.uuid4())

    response = upload(client, attachment_fields(client_file_id))

    assert response.status_code == 200, response.text
    record = response.json()
    file_id = record["file_id"]
    assert file_id != client_file_id
    assert list(record) == [
        "message",
        "_id",
        "file_id",
        "__v",
        "bytes",
        "context",
        "createdAt",
        "filename",
        "filepath",
        "metadata",
        "object",
        "source",
        "temp_file_id",
        "type",
        "updatedAt",
        "usage",
        "user",
    ]
    assert record["message"] == "Agent file uploaded and processed successfully"
    assert (record["temp_file_id"], record["bytes"], record["type"]) == (
        client_file_id,
        12,
        "text/csv",
    )
    assert record["filepath"] == f"/uploads/{user_id}/{file_id}__data.csv"
    assert (record["context"], record["usage"], record["user"]) == (
        "message_attachment",
        0,
        user_id,
    )
    assert record["metadata"]["codeEnvRef"] == {
        "kind": "user",
        "id": user_id,
        "storage_session_id": "UpSeSs0123456789abcde",
        "file_id": "UpFiLe0123456789abcde",
    }
    assert response.headers["x-ratelimit-limit"] == "50"
    assert response.headers["x-ratelimit-remaining"] == "49"
    assert [f["file_id"] for f in client.get("/api/files").json()] == [file_id]

    downloaded = client.get(f"/api/files/download/{user_id}/{file_id}")
    assert downloaded.content == CSV
    assert downloaded.headers["content-type"] == "application/octet-stream"
    assert downloaded.headers["content-disposition"] == (
        "attachment; filename=\"data.csv\"; filename*=UTF-8''data.csv"
    )
    metadata = json.loads(unquote(downloaded.headers["x-file-metadata"]))
    assert metadata["file_id"] == file_id
    assert "user" not in metadata
    stranger = chat_user(double, clients, "stranger@example.com")
    forbidden = stranger.get(f"/api/files/download/{user_id}/{file_id}")
    assert forbidden.status_code == 403
    unknown = client.get(f"/api/files/download/{user_id}/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()["message"]) == (404, "File not found")

    started = start(
        client,
        "RUNCODE: read the uploaded data.csv and sum y.",
        ephemeralAgent={"execute_code": True},
        files=[{"file_id": file_id, "filepath": record["filepath"], "type": "text/csv"}],
    )
    final = read_stream(client, started["streamId"]).events[-1].data
    sent = final["requestMessage"]["files"][0]
    assert (sent["file_id"], sent["usage"], sent["filename"]) == (file_id, 1, "data.csv")
    assert "temp_file_id" not in sent
    assert final["conversation"]["files"] == [file_id]

    assert stranger.request("DELETE", "/api/files", json={"files": [record]}).status_code == 403
    deleted = client.request(
        "DELETE",
        "/api/files",
        json={"files": [{"file_id": file_id, "filepath": record["filepath"]}]},
    )
    assert (deleted.status_code, deleted.json()) == (200, {"message": "Files deleted successfully"})
    assert file_id not in [f["file_id"] for f in client.get("/api/files").json()]
    assert client.request("DELETE", "/api/files", json={"files": []}).status_code == 204
    no_list = client.request("DELETE", "/api/files", json={})
    assert no_list.status_code == 400


def test_upload_validation(make_librechat_double: MakeDouble, clients: list[httpx.Client]) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "checks@example.com")
    file_id = str(uuid.uuid4())

    decoded = upload(client, attachment_fields(file_id), filename="r%C3%A9sum%C3%A9%201.csv")
    assert decoded.json()["filename"] == "résumé_1.csv"
    fields_after_file = upload(client, attachment_fields(file_id), file_first=True)
    assert fields_after_file.status_code == 200
    raw_percent = upload(client, attachment_fields(file_id), filename="100%.csv")
    assert (raw_percent.status_code, raw_percent.text) == (500, "An unknown error occurred.")

    failed = {"message": "Error processing file"}
    for fields in (
        [("endpoint", "Fake"), ("file_id", "not-a-uuid"), ("message_file", "true")],
        [("file_id", file_id), ("message_file", "true")],
        [("endpoint", "Fake"), ("message_file", "true")],
        [("endpoint", "Fake"), ("file_id", file_id)],  # neither a chat attachment nor an agent
    ):
        response = upload(client, fields)
        assert (response.status_code, response.json()) == (500, failed), fields
    empty = upload(client, attachment_fields(file_id), content=b"")
    assert (empty.status_code, empty.json()) == (500, failed)
    bot = client.post("/api/files", headers={"User-Agent": "curl/8"}, content=b"")
    assert bot.text == 'event: error\ndata: {"message":"Illegal request"}\n\n'


def test_upload_limiter(make_librechat_double: MakeDouble, clients: list[httpx.Client]) -> None:
    double = make_librechat_double(**{**FAST, "file_upload_user_max": 1})
    client = chat_user(double, clients, "many@example.com")
    assert upload(client, attachment_fields(str(uuid.uuid4()))).status_code == 200
    refused = upload(client, attachment_fields(str(uuid.uuid4())))
    assert (refused.status_code, refused.json()) == (
        429,
        {"message": "Too many file upload requests. Try again later"},
    )
    assert refused.headers["retry-after"] == "900"


def test_a_50_mb_upload_streams_through_flat_memory(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "big@example.com")
    size = 50 * 1024 * 1024
    block = bytes(range(256)) * 256  # 64 KiB

    def blocks() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    body = multipart(attachment_fields(str(uuid.uuid4())), "big.bin", blocks(), content_type="")
    tracemalloc.start()
    try:
        response = client.post(
            "/api/files",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=60,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == size
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while uploading 50 MiB"
    logged = double.state.requests_to("/api/files", "POST")[-1]
    assert logged.body_size > size
    assert len(logged.body) == 64 * 1024
    stored = double.state.chat.find_file(response.json()["file_id"])
    assert stored is not None
    assert stored.size == size
