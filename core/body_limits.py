"""Request bodies bounded before they are buffered, for the routes that take big ones.

Django reads a whole request body before it runs any middleware or view: under ASGI into a
spooled temporary file (memory, then disk), under WSGI from a stream bounded by Content-Length.
A body on `/api/chat/*` (the proxy's uploads), `/api/v1/*` (the OpenAI-compatible API) or
`/api/code/v1/*` (LibreChat's code uploads)
is therefore cut off here, in front of Django, at the limit of its route:

* with a Content-Length over the limit, 413 before a byte of it is read;
* without one (`Transfer-Encoding: chunked`), the bytes are counted as they arrive and the
  request is answered 413 the moment the count passes the limit. Django is told the client
  went away (`http.disconnect`), so it spools at most the limit and never authenticates, opens
  a session, or queries the database for it.

Both the ASGI wrapper (`hestami_ai/asgi.py`) and the WSGI one (`hestami_ai/wsgi.py`) use it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings

from core.errors import ErrorCode, error_json

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READ_CHUNK = 64 * 1024


def body_limit(path: str) -> int | None:
    """The most bytes a request body to ``path`` may have, or None for Django's own limits."""
    if path.startswith("/api/chat/"):
        return int(settings.CHAT_PROXY_MAX_BODY_BYTES)
    if path.startswith("/api/v1/"):
        # Held in memory to be sent again after a key renewal (chat/openai_api.py); LibreChat's
        # own JSON limit is 3 MB (express.json in api/server/index.js).
        return int(settings.CHAT_PROXY_REPLAY_MAX_BYTES)
    if path.startswith("/api/code/"):
        if "/upload" in path:
            return int(settings.CODE_INTERPRETER_MAX_UPLOAD_BYTES)
        return int(settings.CODE_INTERPRETER_MAX_REQUEST_BYTES)
    return None


def too_large_body(limit: int, size: int | None = None) -> bytes:
    said = f"The request body is {size} bytes" if size is not None else "The request body is over"
    message = f"{said}; the limit is {limit}."
    return error_json(ErrorCode.PAYLOAD_TOO_LARGE, message)


class BodyLimitMiddleware:
    """ASGI: refuse a body over its route's limit, from Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = body_limit(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > limit:
            await _send_too_large(send, limit, declared)
            return
        if not chunked:
            # The server stops at Content-Length itself; without it or chunking there is no body.
            await self.app(scope, receive, send)
            return
        guard = _StreamGuard(receive, send, limit)
        await self.app(scope, guard.receive, guard.send)
        if guard.exceeded and not guard.started:
            await _send_too_large(send, limit)


class _StreamGuard:
    """Counts the body as the app receives it; past the limit, tells the app the client left."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.received = 0
        self.exceeded = False
        self.started = False

    async def receive(self) -> Message:
        if self.exceeded:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length, and whether the body comes with Transfer-Encoding instead
    (HTTP/1.1 has no other way to send one; the server refuses a request with both)."""
    length, chunked = None, False
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


async def _send_too_large(send: Send, limit: int, size: int | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            # The rest of the body is not read: the connection cannot carry another request.
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": too_large_body(limit, size)})


class BodyLimitWSGIMiddleware:
    """WSGI: the same limits. A body without Content-Length (a server that de-chunks and sets
    ``wsgi.input_terminated``, as gunicorn does) is read here into a spooled file, at most
    the limit, and handed to Django with its length; Django alone would read none of it."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        limit = body_limit(environ.get("PATH_INFO", ""))
        if limit is None:
            return self.app(environ, start_response)
        length = str(environ.get("CONTENT_LENGTH") or "")
        if length.isdigit():
            if int(length) > limit:
                return _wsgi_too_large(start_response, limit, int(length))
            return self.app(environ, start_response)
        if not environ.get("wsgi.input_terminated"):
            return self.app(environ, start_response)  # Django reads no body without a length
        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (Django closes the request body)
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR
        )
        stream, total = environ["wsgi.input"], 0
        while chunk := stream.read(READ_CHUNK):
            total += len(chunk)
            if total > limit:
                spool.close()
                return _wsgi_too_large(start_response, limit)
            spool.write(chunk)
        spool.seek(0)
        bounded = {**environ, "wsgi.input": spool, "CONTENT_LENGTH": str(total)}
        return self.app(bounded, start_response)


def _wsgi_too_large(
    start_response: Callable[..., Any], limit: int, size: int | None = None
) -> list[bytes]:
    body = too_large_body(limit, size)
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("413 Request Entity Too Large", headers)
    return [body]
