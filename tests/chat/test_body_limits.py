"""Bodies are bounded before they are buffered (core/body_limits.py).

A chunked upload (no Content-Length) over the limit of `/api/chat/*` or `/api/code/v1/*` is cut
off with 413 while it streams in, in front of Django: measured under uvicorn, with what Django
spooled (memory, then disk) and the Python heap staying flat, and not one database query.
"""

from __future__ import annotations

import http.client
import io
import json
import select
import socket
import tempfile
import threading
import tracemalloc
from typing import Any, ClassVar

import pytest
from django.db.backends import utils as db_utils

from core.body_limits import BodyLimitWSGIMiddleware
from tests.chat.conftest import AppServer, jwt_for
from tests.librechat_double.server import LibreChatDouble
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 64 * 1024
LIMIT = 1024 * 1024
SENT_AT_MOST = 48 * 1024 * 1024


class MeteredSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """Django's request body file (memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then disk), metered."""

    opened: ClassVar[list[MeteredSpool]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.total = 0
        MeteredSpool.opened.append(self)

    def write(self, data: Any) -> int:
        self.total += len(data)
        return int(super().write(data))


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[str]:
    """Spooled bytes metered, and every SQL statement of any thread recorded."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024  # spill to disk early
    MeteredSpool.opened = []
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", MeteredSpool)
    queries: list[str] = []
    lock = threading.Lock()
    original = db_utils.CursorWrapper._execute_with_wrappers  # type: ignore[attr-defined]

    def counted(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            queries.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(db_utils.CursorWrapper, "_execute_with_wrappers", counted)
    return queries


def send_chunked(
    server: AppServer, path: str, *, total: int, headers: dict[str, str]
) -> tuple[int, bytes, int]:
    """POST `total` bytes with Transfer-Encoding: chunked, 64 KiB a chunk, until the server
    answers. Returns the status, the body and how many body bytes went out."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    head += ["Transfer-Encoding: chunked"]
    head += [
        f"{name}: {value}"
        for name, value in {"Content-Type": "application/octet-stream", **headers}.items()
    ]
    frame = b"%x\r\n" % CHUNK + b"\0" * CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < total and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        else:
            if sent >= total:
                sock.sendall(b"0\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read(), sent


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/api/chat/files", "CHAT_PROXY_MAX_BODY_BYTES"),
        ("/api/code/v1/upload", "CODE_INTERPRETER_MAX_UPLOAD_BYTES"),
        ("/api/code/v1/exec", "CODE_INTERPRETER_MAX_REQUEST_BYTES"),
    ],
)
def test_a_chunked_body_over_the_limit_is_cut_off_while_it_streams_in(
    app_server: AppServer,
    librechat: LibreChatDouble,
    alice: User,
    measured: list[str],
    settings: Any,
    path: str,
    setting: str,
) -> None:
    setattr(settings, setting, LIMIT)
    headers = {"Authorization": f"Bearer {jwt_for(alice)}"}
    measured.clear()
    tracemalloc.start()
    try:
        status, raw, sent = send_chunked(app_server, path, total=SENT_AT_MOST, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    error = json.loads(raw)["error"]
    assert error["code"] == "payload_too_large"
    assert f"the limit is {LIMIT}" in error["message"]
    # Cut off at the limit, long before the client was done: the rest was never read ...
    assert sent < SENT_AT_MOST // 4
    # ... nor spooled: Django's body file (memory, then disk) held at most the limit ...
    assert max((spool.total for spool in MeteredSpool.opened), default=0) <= LIMIT
    # ... and no one held the body in memory (client, server and double share this process).
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
    # In front of Django: no authentication (a user lookup), no session, no query at all.
    assert measured == []
    assert librechat.state.requests == []


def test_a_chunked_body_under_the_limit_passes_with_its_length(
    app_server: AppServer, librechat: LibreChatDouble, alice: User, settings: Any
) -> None:
    settings.CHAT_PROXY_MAX_BODY_BYTES = LIMIT
    headers = {"Authorization": f"Bearer {jwt_for(alice)}"}
    headers["Content-Type"] = "application/json"
    path = "/api/chat/convos/update"
    status, _, sent = send_chunked(app_server, path, total=LIMIT, headers=headers)
    assert status == 400  # LibreChat's body-parser on a body of zeros, passed on
    [forwarded] = librechat.state.requests_to("/api/convos/update")
    assert forwarded.body_size == sent == LIMIT
    assert forwarded.header("content-length") == str(LIMIT)


def test_wsgi_bounds_a_terminated_body_and_gives_django_its_length(settings: Any) -> None:
    settings.CHAT_PROXY_MAX_BODY_BYTES = LIMIT
    seen: list[tuple[str, bytes]] = []

    def django(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((environ["CONTENT_LENGTH"], environ["wsgi.input"].read()))
        start_response("200 OK", [])
        return [b"ok"]

    app = BodyLimitWSGIMiddleware(django)
    started: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started.append(status)

    class Endless(io.RawIOBase):
        read_so_far = 0

        def read(self, size: int = -1) -> bytes:
            self.read_so_far += size
            return b"\0" * size

    endless = Endless()
    environ = {"PATH_INFO": "/api/chat/files", "wsgi.input": endless, "wsgi.input_terminated": True}
    body = b"".join(app(environ, start_response))
    assert started == ["413 Request Entity Too Large"]
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert endless.read_so_far <= LIMIT + 64 * 1024
    assert seen == []

    small = {**environ, "wsgi.input": io.BytesIO(b"x" * 1000)}
    assert b"".join(app(small, start_response)) == b"ok"
    assert seen == [("1000", b"x" * 1000)]
    declared = {**environ, "CONTENT_LENGTH": str(LIMIT + 1)}
    app(declared, start_response)
    assert started[-1] == "413 Request Entity Too Large"
