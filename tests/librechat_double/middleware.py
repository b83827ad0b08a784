"""Outermost ASGI layer: request log, LibreChat's global headers, CORS preflight, failure modes."""

from __future__ import annotations

import asyncio
import json
import math
from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .client_ip import express_request_ip, through_proxies
from .modes import FailureMode
from .rate_limit import login_limit_message, register_limit_message
from .state import REQUEST_BODY_LOG_LIMIT, DoubleState, RecordedRequest

CONTROL_PREFIX = "/__double__"
# Set by LibreChat on every response (noIndex middleware, `cors()` with defaults).
_GLOBAL_HEADERS = [(b"x-robots-tag", b"noindex"), (b"access-control-allow-origin", b"*")]
_GENERIC_LIMIT_MESSAGE = "Too many requests, please try again later."
_DEFAULT_GENERIC_LIMIT = 40


class DoubleMiddleware:
    def __init__(self, app: ASGIApp, state: DoubleState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # Express routes are not strict about one trailing slash (ExpressRoute routes on the
            # raw path; this is for the handlers that look at the path themselves).
            scope = {**scope, "path": path[:-1]}
            path = scope["path"]
        send = _dated(send, self.state)
        if path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        record = self._record(scope)
        receive, send = _recording(record, receive, send)
        mode = self.state.mode
        if mode.name == "slow":
            await asyncio.sleep(mode.seconds)
        if scope["method"] == "OPTIONS":
            await _cors_preflight(scope, send)
        elif mode.name == "error500" and mode.applies_to(path):
            await _send_json(send, 500, {"message": "Something went wrong"})
        elif mode.name == "ratelimit429" and mode.applies_to(path):
            await self._send_rate_limited(send, path, mode)
        else:
            await self.app(scope, receive, send)

    def _record(self, scope: Scope) -> RecordedRequest:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        peer = scope["client"][0] if scope.get("client") else None
        forwarded_for = ", ".join(v for k, v in headers if k == "x-forwarded-for") or None
        record = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            raw_path=bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            peer_ip=peer,
            client_ip=express_request_ip(
                peer,
                through_proxies(peer, forwarded_for, self.state.config.proxies_in_front),
                self.state.config.trust_proxy,
            ),
            at=self.state.now(),
        )
        self.state.record_request(record)
        return record

    async def _send_rate_limited(self, send: Send, path: str, mode: FailureMode) -> None:
        config = self.state.config
        if path == "/api/auth/login":
            limit, message = config.login_max, login_limit_message(config.login_window_s)
        elif path == "/api/auth/register":
            limit, message = config.register_max, register_limit_message(config.register_window_s)
        else:
            limit, message = _DEFAULT_GENERIC_LIMIT, _GENERIC_LIMIT_MESSAGE
        reset_at = math.ceil(self.state.now() + mode.retry_after_s)
        headers = [
            ("x-ratelimit-limit", str(mode.limit if mode.limit is not None else limit)),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", str(reset_at)),
            ("retry-after", str(mode.retry_after_s)),
        ]
        await _send_json(send, 429, {"message": message}, headers)


def _dated(send: Send, state: DoubleState) -> Send:
    """Node's http module dates every response; by LibreChat's clock, so a clock moved with
    `advance_clock` shows in `Date` as a skewed server clock would."""

    async def send_dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            date = formatdate(state.now(), usegmt=True).encode()
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
            message = {**message, "headers": [(b"date", date), *headers]}
        await send(message)

    return send_dated


def _recording(record: RecordedRequest, receive: Receive, send: Send) -> tuple[Receive, Send]:
    async def receive_and_keep_body() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            record.body_size += len(chunk)
            room = REQUEST_BODY_LOG_LIMIT - len(record.body)
            if room > 0 and chunk:
                record.body += chunk[:room]
        return message

    async def send_with_globals(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
            message = {**message, "headers": [*_GLOBAL_HEADERS, *message.get("headers", [])]}
        await send(message)

    return receive_and_keep_body, send_with_globals


async def _send_json(
    send: Send, status: int, payload: object, headers: list[tuple[str, str]] | None = None
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw_headers = [(k.encode(), v.encode()) for k, v in headers or []]
    raw_headers += [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _cors_preflight(scope: Scope, send: Send) -> None:
    """`cors()` defaults: 204, every method, the requested headers reflected."""
    requested = next(
        (v for k, v in scope["headers"] if k == b"access-control-request-headers"), b""
    )
    headers = [
        (b"access-control-allow-methods", b"GET,HEAD,PUT,PATCH,POST,DELETE"),
        (b"vary", b"Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]
    if requested:
        headers.insert(1, (b"access-control-allow-headers", requested))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
