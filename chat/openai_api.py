"""`/api/v1/`: an OpenAI-compatible API over LibreChat's remote agents API, under our identities.

Any OpenAI SDK works with ``base_url="https://<host>/api/v1"`` and the user's access JWT as its
API key: ``POST /chat/completions`` (streaming or not), ``GET /models``, ``GET /models/{id}``,
each forwarded to LibreChat's ``/api/agents/v1`` (librechat/remote_agents.py) with the user's
LibreChat agent API key (chat/remote_agents.py). Our JWT never reaches LibreChat; LibreChat's
key never reaches the client. Every error, ours and LibreChat's, has OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``: the frame of every view here turns an
``ApplicationError`` into that shape, instead of ``core.errors.json_errors``' (the codes that
are ours are ``core.errors.ErrorCode`` members). docs/openai-api.md.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

import librechat
from chat import remote_agents, throttle
from chat.auth import authenticate
from chat.views import require_provisioned, upstream_failure
from core.client_ip import client_ip
from core.errors import ApplicationError, ErrorCode
from core.logs import outgoing_request_id
from librechat import remote_agents as agents_api
from librechat import upstream
from users.models import User

logger = logging.getLogger(__name__)

# OpenAI's error types, by status (what its SDKs and clients expect to read).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
THROTTLE_SCOPES = {"completions": "openai_completions", "models": "openai_models"}
# A stream LibreChat broke off ends with an error event the OpenAI SDKs raise (not [DONE]).
STREAM_INTERRUPTED = (
    "data: "
    + json.dumps(
        {
            "error": {
                "message": "LibreChat stopped while answering; the answer is incomplete.",
                "type": "server_error",
                "param": None,
                "code": ErrorCode.LIBRECHAT_STREAM_INTERRUPTED,
            }
        }
    )
    + "\n\n"
).encode()


def openai_error(
    message: str,
    *,
    status: int,
    code: ErrorCode | str | None,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    kind = error_type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    error = {"message": message, "type": kind, "param": None, "code": code}
    response = JsonResponse({"error": error}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _from_application_error(exc: ApplicationError) -> JsonResponse:
    return openai_error(exc.message, status=exc.status, code=exc.code, headers=exc.headers)


View = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def _endpoint(method: str, scope: str) -> Callable[[View], View]:
    """The frame of every /api/v1 view: method, JWT, throttle, a ready account; every failure
    in OpenAI's shape."""

    def wrap(view: View) -> View:
        @csrf_exempt
        async def run(request: HttpRequest, **kwargs: str) -> HttpResponseBase:
            try:
                if request.method != method:
                    raise ApplicationError(
                        f"Method {request.method} is not allowed here; use {method}.",
                        code=ErrorCode.METHOD_NOT_ALLOWED,
                        status=405,
                        headers={"Allow": method},
                    )
                user = await _authenticate(request)
                await _throttle(user, scope)
                await require_provisioned(user)
                return await view(request, user, **kwargs)
            except ApplicationError as exc:
                return _from_application_error(exc)

        return run

    return wrap


async def _authenticate(request: HttpRequest) -> User:
    # Only the JWT: no session cookie, so no CSRF question either.
    if not request.headers.get("Authorization"):
        raise ApplicationError(
            "No API key provided: send your access token as 'Authorization: Bearer <token>'.",
            code=ErrorCode.NOT_AUTHENTICATED,
            status=401,
        )
    return await authenticate(request)


def parse_rate(rate: str) -> tuple[int, int]:
    """DRF's rate syntax: ``<count>/<sec|min|hour|day>``."""
    count, _, period = rate.partition("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[:1]]


async def _throttle(user: User, scope: str) -> None:
    """Per-user fixed windows in the cache (Redis in production: shared by every process)."""
    rate = settings.THROTTLE_RATES.get(THROTTLE_SCOPES[scope])
    if not rate:
        return
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    count = await throttle.hit(f"throttle:openai:{scope}:{user.pk}:{window}", period=period)
    if count > limit:
        wait = max(1, math.ceil((window + 1) * period - now))
        raise ApplicationError(
            f"Too many requests. Try again in {wait} seconds.",
            code=ErrorCode.RATE_LIMIT_EXCEEDED,
            status=429,
            headers={"Retry-After": str(wait)},
        )


# -- the views ----------------------------------------------------------------------------------


@_endpoint("POST", "completions")
async def chat_completions(request: HttpRequest, user: User) -> HttpResponseBase:
    # Spooled by the ASGI handler and bounded by the body limits (up to LibreChat's 3 MiB):
    # read() skips DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB), which .body would refuse beyond.
    body = request.read()
    try:
        parsed = json.loads(body)
    except ValueError:
        raise ApplicationError(
            "The request body is not valid JSON.", code=ErrorCode.INVALID_JSON, status=400
        ) from None
    stream = isinstance(parsed, dict) and parsed.get("stream") is True
    response = await _forward(request, user, "POST", "/chat/completions", body, stream=stream)
    if stream and response.status_code == 200 and upstream.is_event_stream(response):
        relayed = StreamingHttpResponse(
            upstream.relay(
                response,
                ping_every=settings.CHAT_PROXY_PING_INTERVAL_S,
                interrupted=STREAM_INTERRUPTED,
            ),
            content_type="text/event-stream",
        )
        encoding = response.headers.get("content-encoding", "identity")
        if encoding != "identity":  # we asked for none; relayed raw, so it must go along
            relayed["Content-Encoding"] = encoding
        relayed["Cache-Control"] = "no-cache, no-transform"
        relayed["X-Accel-Buffering"] = "no"
        return relayed
    return await _answer(response)


@_endpoint("GET", "models")
async def models(request: HttpRequest, user: User) -> HttpResponseBase:
    return await _answer(await _forward(request, user, "GET", "/models", None, stream=False))


@_endpoint("GET", "models")
async def model(request: HttpRequest, user: User, model_id: str) -> HttpResponseBase:
    if model_id in {".", ".."}:  # a dot segment: the upstream URL would climb out of /models
        return not_found_error(request)
    path = f"/models/{quote(model_id, safe='')}"
    return await _answer(await _forward(request, user, "GET", path, None, stream=False))


@csrf_exempt
async def not_found(request: HttpRequest, rest: str = "") -> HttpResponseBase:
    return not_found_error(request)


def not_found_error(request: HttpRequest) -> HttpResponseBase:
    return openai_error(
        f"Unknown request URL: {request.method} {request.path}.",
        status=404,
        code=ErrorCode.UNKNOWN_URL,
    )


# -- to LibreChat and back ----------------------------------------------------------------------


async def _forward(
    request: HttpRequest, user: User, method: str, path: str, body: bytes | None, *, stream: bool
) -> httpx.Response:
    """Send with the user's key; a key LibreChat says is gone is replaced and the call repeated."""
    ip = client_ip(request)
    request_id = outgoing_request_id()
    for attempt in (1, 2):
        key = await remote_agents.agent_key(user, client_ip=ip)
        try:
            response = await agents_api.send(
                method,
                path,
                api_key=key.key,
                body=body,
                client_ip=ip,
                request_id=request_id,
                stream=stream,
            )
        except librechat.LibreChatError as exc:
            raise upstream_failure(exc) from None
        if response.status_code == 401 and attempt == 1:
            # Read whole (httpx keeps it for _answer, should the 401 stand).
            code = agents_api.error_code(await _read(response))
            if code == agents_api.INVALID_KEY:
                logger.info("librechat agent key refused user_id=%s; replacing it", user.pk)
                await remote_agents.forget(user, key)
                continue
        return response
    return response


async def _read(response: httpx.Response) -> bytes:
    """The whole body, decoded (a Content-Encoding is undone, so none goes on)."""
    try:
        return await agents_api.read(response)
    except librechat.LibreChatError as exc:
        raise upstream_failure(exc) from None


async def _answer(response: httpx.Response) -> HttpResponseBase:
    """LibreChat's answer, read whole (JSON of a known, small size); its errors mapped."""
    raw = await _read(response)
    status = response.status_code
    if 200 <= status < 300:
        return HttpResponse(raw, status=status, content_type=response.headers.get("content-type"))
    return _librechat_error(status, raw, response)


def _librechat_error(status: int, raw: bytes, response: httpx.Response) -> JsonResponse:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    if status == 403 and message == librechat.INSUFFICIENT_PERMISSIONS:
        return _from_application_error(remote_agents.remote_agents_refused())
    if status == 429:
        wait = response.headers.get("retry-after") or str(int(librechat.DEFAULT_RETRY_AFTER_S))
        return openai_error(
            f"LibreChat's rate limit is reached: {message or 'too many requests'}",
            status=429,
            code=ErrorCode.LIBRECHAT_RATE_LIMITED,
            headers={"Retry-After": wait},
        )
    if status >= 500:
        detail = error.get("message") if isinstance(error, dict) else message
        logger.warning("librechat remote agents api answered %s", status)
        return openai_error(
            f"LibreChat failed to answer: {detail or status}",
            status=502,
            code=ErrorCode.LIBRECHAT_ERROR,
            error_type="server_error",
        )
    if status == 401:  # a new key was refused too: ours to fix, not the client's
        return openai_error(
            "LibreChat refused the agent API key it had just issued.",
            status=502,
            code=ErrorCode.LIBRECHAT_AGENT_KEY_REFUSED,
            error_type="server_error",
        )
    if isinstance(error, dict):  # already OpenAI's shape: 400, 403 and 404 about the model
        return openai_error(
            str(error.get("message") or "LibreChat refused the request."),
            status=status,
            code=str(error["code"]) if error.get("code") else None,
            error_type=str(error.get("type") or "") or None,
        )
    reason = message or (error if isinstance(error, str) else status)
    return openai_error(
        f"LibreChat refused the request: {reason}",
        status=status,
        code=ErrorCode.LIBRECHAT_REFUSED,
    )
