"""`/api/chat/<path>`: a streaming reverse proxy to LibreChat's `/api/<path>`.

What passes, what is refused and how sessions work: docs/chat-proxy.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from chat import policy, sessions, upstream
from chat.auth import authenticate
from hestami_ai.client_ip import client_ip
from hestami_ai.errors import ApplicationError, application_error_response
from hestami_ai.logs import outgoing_request_id
from users.models import ProvisioningState, User
from users.provisioning import provisioning_start
from users.selectors import chat_account_status

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
BODY_CHUNK = 64 * 1024


def _body_size(request: HttpRequest) -> int:
    stream = request._stream  # the ASGI handler's spooled file
    position = stream.tell()
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(position)
    return int(size)


async def _body_chunks(request: HttpRequest) -> AsyncIterator[bytes]:
    """The request body as it lies in the ASGI handler's spooled file: never all in memory."""
    while chunk := await asyncio.to_thread(request.read, BODY_CHUNK):
        yield chunk


def _nudge_provisioning(user_id: int) -> None:
    try:
        provisioning_start(user_id=user_id)
    except Exception:  # the 409 goes out anyway; reconciliation also catches it
        logger.exception("could not nudge provisioning user_id=%s", user_id)
    finally:
        close_old_connections()


async def require_provisioned(user: User) -> None:
    """Refuse a user whose LibreChat account is not ready (nudging a pending provisioning)."""
    if user.provisioning_state == ProvisioningState.ACTIVE:
        return
    account = chat_account_status(user)
    if user.provisioning_state == ProvisioningState.PENDING:
        await sync_to_async(_nudge_provisioning, thread_sensitive=True)(user.pk)
    # One code for every state a client waits out or shows; the message says which.
    raise ApplicationError(
        account.message,
        code="librechat_not_provisioned",
        status=409,
        extra={"provisioning_state": account.state, "retrying": account.retrying},
    )


def _sse_frames(text: str) -> list[tuple[str, Any]]:
    frames = []
    for raw in text.split("\n\n"):
        name, data = "message", None
        for line in raw.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                try:
                    data = json.loads(line[5:].strip())
                except ValueError:
                    data = line[5:].strip()
        if data is not None:
            frames.append((name, data))
    return frames


def _denial(body: bytes) -> ApplicationError:
    """LibreChat's pre-start denials arrive as SSE text with status 200 (contract B2): the last
    `event: error` frame carries the reason, sometimes as a JSON string in its `text`."""
    frames = _sse_frames(body.decode("utf-8", "replace"))
    errors = [data for name, data in frames if name == "error"] or [data for _, data in frames]
    reason: Any = errors[-1] if errors else body.decode("utf-8", "replace").strip()
    if isinstance(reason, dict):
        reason = reason.get("text") or reason.get("message") or reason.get("error") or reason
    if isinstance(reason, str):
        with contextlib.suppress(ValueError):
            reason = json.loads(reason)
    if isinstance(reason, dict) and reason.get("type") == "message_limit":
        window = reason.get("windowInMinutes")
        return ApplicationError(
            f"LibreChat's message limit is reached ({reason.get('max')} per {window} minute(s)); "
            "try again later.",
            code="librechat_rate_limited",
            status=429,
            extra={"librechat": reason},
        )
    if isinstance(reason, dict):
        message = str(reason.get("message") or reason.get("type") or reason)
        return ApplicationError(
            f"LibreChat refused the message: {message}",
            code="librechat_denied",
            status=403,
            extra={"librechat": reason},
        )
    return ApplicationError(
        f"LibreChat refused the message: {reason or 'no reason given'}",
        code="librechat_denied",
        status=403,
    )


@csrf_exempt
async def proxy(request: HttpRequest, path: str) -> HttpResponseBase:
    try:
        return await _proxy(request, path)
    except ApplicationError as exc:
        return application_error_response(exc)


async def _proxy(request: HttpRequest, path: str) -> HttpResponseBase:
    method = request.method or "GET"
    if method not in METHODS:
        raise ApplicationError(
            f"Method {method} is not proxied.", code="method_not_allowed", status=405
        )
    # Checked on the path as sent, not Django's decoded `path`; LibreChat gets `allowed.path`.
    allowed = policy.check_request(request, method)
    user = await authenticate(request)
    await require_provisioned(user)

    size = _body_size(request)
    if size > settings.CHAT_PROXY_MAX_BODY_BYTES:
        raise ApplicationError(
            f"The request body is {size} bytes; the limit is {settings.CHAT_PROXY_MAX_BODY_BYTES}.",
            code="payload_too_large",
            status=413,
        )
    ip = client_ip(request)
    incoming = [(k, v) for k, v in request.headers.items()]
    query = request.META.get("QUERY_STRING", "")
    url = f"{settings.LIBRECHAT_API_URL}{allowed.path}" + (f"?{query}" if query else "")
    # Small bodies are kept so a request can be replayed after a refresh; uploads stream.
    replayable = size <= settings.CHAT_PROXY_REPLAY_MAX_BYTES
    body: bytes | None = request.read() if replayable else None

    token = await librechat_token(user, ip)
    request_id = outgoing_request_id()  # RequestIdMiddleware's, sanitised
    for attempt in (1, 2):
        headers = upstream.forward_request_headers(
            incoming, access_token=token, client_ip=ip, request_id=request_id
        )
        if size:
            headers.append(("content-length", str(size)))
        try:
            response = await upstream.send(
                method,
                url,
                headers=headers,
                content=body if body is not None else _body_chunks(request),
                timeout=upstream.timeout_for(stream=allowed.route.path == policy.CHAT_STREAM),
            )
        except httpx.HTTPError as exc:
            raise upstream_failure(exc) from None
        if response.status_code == 401 and attempt == 1 and body is not None:
            await response.aclose()
            token = await librechat_token(user, ip, stale=token)
            continue
        break

    if (
        allowed.route.path == policy.CHAT_START
        and response.status_code == 200
        and not response.headers.get("content-type", "").startswith("application/json")
    ):
        raw = await response.aread()
        await response.aclose()
        raise _denial(raw)

    event_stream = upstream.is_event_stream(response)
    if not event_stream and _small(response):
        # A small answer of known length (most JSON): read it and send it in one piece, with its
        # Content-Length, instead of streaming it chunk by chunk.
        try:
            # Raw: the bytes as LibreChat encoded them, since its Content-Encoding goes along.
            content = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.HTTPError as exc:
            raise upstream_failure(exc) from None
        finally:
            await response.aclose()
        return _with_upstream_headers(HttpResponse(content, status=response.status_code), response)
    streamed = _with_upstream_headers(
        StreamingHttpResponse(
            upstream.relay(
                response, ping_every=settings.CHAT_PROXY_PING_INTERVAL_S if event_stream else None
            ),
            status=response.status_code,
        ),
        response,
    )
    if event_stream:
        streamed["Cache-Control"] = "no-cache, no-transform"
        streamed["X-Accel-Buffering"] = "no"
    return streamed


_Response = TypeVar("_Response", bound=HttpResponseBase)


def _with_upstream_headers(ours: _Response, theirs: httpx.Response) -> _Response:
    del ours["Content-Type"]  # Django's default; LibreChat's own, if any, comes next
    for name, value in upstream.response_headers(theirs):
        ours[name] = value
    return ours


def upstream_failure(exc: httpx.HTTPError) -> ApplicationError:
    if isinstance(exc, httpx.TimeoutException):
        return ApplicationError(
            "LibreChat did not answer in time.", code="librechat_timeout", status=504
        )
    return ApplicationError(
        f"LibreChat is unreachable ({type(exc).__name__}).",
        code="librechat_unreachable",
        status=502,
    )


def _small(response: httpx.Response) -> bool:
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) <= settings.CHAT_PROXY_BUFFER_MAX_BYTES


async def librechat_token(user: User, ip: str, stale: str | None = None) -> str:
    try:
        return await sessions.access_token(user, client_ip=ip, stale=stale)
    except sessions.CredentialsUnreadable as exc:
        raise ApplicationError(
            exc.message, code="librechat_credentials_unreadable", status=500
        ) from None
    except sessions.AdminAccountRefused as exc:
        raise ApplicationError(exc.message, code="librechat_admin_account", status=403) from None
    except sessions.AccountInactive as exc:
        raise ApplicationError(exc.message, code="account_inactive", status=403) from None
    except sessions.SessionUnavailable as exc:
        if exc.status is None:
            raise ApplicationError(
                f"LibreChat is unreachable: {exc.message}", code="librechat_unreachable", status=502
            ) from None
        raise ApplicationError(
            f"LibreChat refused to open a session: {exc.message}",
            code="librechat_session_failed",
            status=502,
        ) from None
