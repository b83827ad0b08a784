"""`/api/chat/<path>`: a streaming reverse proxy to LibreChat's `/api/<path>`.

What passes, what is refused and how sessions work: docs/chat-proxy.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from chat import policy, sessions
from chat.auth import authenticate
from core.client_ip import client_ip
from core.errors import ApplicationError, ErrorCode, json_errors
from core.logs import outgoing_request_id
from librechat import LibreChatError, upstream, versions
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
        code=ErrorCode.LIBRECHAT_NOT_PROVISIONED,
        status=409,
        extra={"provisioning_state": account.state, "retrying": account.retrying},
    )


@csrf_exempt
@json_errors
async def proxy(request: HttpRequest, path: str) -> HttpResponseBase:
    method = request.method or "GET"
    if method not in METHODS:
        raise ApplicationError(
            f"Method {method} is not proxied.", code=ErrorCode.METHOD_NOT_ALLOWED, status=405
        )
    # Checked on the path as sent, not Django's decoded `path`; LibreChat gets `allowed.path`.
    # Checked against the routes of the newest release first (nothing asked of LibreChat); a
    # route that older releases lack waits for the release in front of us (librechat/versions).
    allowed = policy.check_request(request, method, version=versions.NEWEST.version)
    if allowed.route.since != versions.OLDEST.version:
        release = await versions.acurrent()
        allowed = policy.check_request(request, method, version=release.version)
    user = await authenticate(request)
    await require_provisioned(user)

    size = _body_size(request)
    if size > settings.CHAT_PROXY_MAX_BODY_BYTES:
        raise ApplicationError(
            f"The request body is {size} bytes; the limit is {settings.CHAT_PROXY_MAX_BODY_BYTES}.",
            code=ErrorCode.PAYLOAD_TOO_LARGE,
            status=413,
        )
    ip = client_ip(request)
    incoming = [(k, v) for k, v in request.headers.items()]
    query = request.META.get("QUERY_STRING", "")
    url = f"{settings.LIBRECHAT_API_URL}{allowed.path}" + (f"?{query}" if query else "")
    # Small bodies are kept so a request can be replayed after a refresh; uploads stream.
    replayable = size <= settings.CHAT_PROXY_REPLAY_MAX_BYTES
    body: bytes | None = request.read() if replayable else None

    try:
        response = await upstream.forward(
            method,
            url,
            incoming=incoming,
            access_token=await librechat_token(user, ip),
            renew_token=lambda stale: librechat_token(user, ip, stale=stale),
            client_ip=ip,
            request_id=outgoing_request_id(),  # RequestIdMiddleware's, sanitised
            size=size,
            body=body,
            chunks=lambda: _body_chunks(request),
            stream=allowed.route.path == policy.CHAT_STREAM,
        )
        if allowed.route.path == policy.CHAT_START:
            await upstream.check_started(response)
        event_stream = upstream.is_event_stream(response)
        if not event_stream and upstream.is_small(response):
            content = await upstream.read_raw(response)
            return _with_upstream_headers(
                HttpResponse(content, status=response.status_code), response
            )
    except LibreChatError as exc:
        raise upstream_failure(exc) from None
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


def upstream_failure(exc: LibreChatError) -> ApplicationError:
    extra = {"librechat": exc.detail} if exc.detail is not None else None
    if exc.status == 429:  # its message limit (a pre-start denial)
        return ApplicationError(
            exc.message, code=ErrorCode.LIBRECHAT_RATE_LIMITED, status=429, extra=extra
        )
    if exc.status is not None:  # any other pre-start denial
        return ApplicationError(
            exc.message, code=ErrorCode.LIBRECHAT_DENIED, status=403, extra=extra
        )
    if exc.timed_out:
        return ApplicationError(exc.message, code=ErrorCode.LIBRECHAT_TIMEOUT, status=504)
    return ApplicationError(exc.message, code=ErrorCode.LIBRECHAT_UNREACHABLE, status=502)


async def librechat_token(user: User, ip: str, stale: str | None = None) -> str:
    try:
        return await sessions.access_token(user, client_ip=ip, stale=stale)
    except sessions.CredentialsUnreadable as exc:
        raise ApplicationError(
            exc.message, code=ErrorCode.LIBRECHAT_CREDENTIALS_UNREADABLE, status=500
        ) from None
    except sessions.AdminAccountRefused as exc:
        raise ApplicationError(
            exc.message, code=ErrorCode.LIBRECHAT_ADMIN_ACCOUNT, status=403
        ) from None
    except sessions.AccountInactive as exc:
        raise ApplicationError(exc.message, code=ErrorCode.ACCOUNT_INACTIVE, status=403) from None
    except sessions.SessionUnavailable as exc:
        if exc.status is None:
            raise ApplicationError(
                f"LibreChat is unreachable: {exc.message}",
                code=ErrorCode.LIBRECHAT_UNREACHABLE,
                status=502,
            ) from None
        raise ApplicationError(
            f"LibreChat refused to open a session: {exc.message}",
            code=ErrorCode.LIBRECHAT_SESSION_FAILED,
            status=502,
        ) from None
