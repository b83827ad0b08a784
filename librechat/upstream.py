"""LibreChat's chat API as the proxy speaks it: a shared connection pool per process, header
hygiene, the refresh-and-replay of a request LibreChat refused for an expired token, the reading
of its SSE pre-start denials, the rule for what is buffered, and the stream wrapper that keeps
idle event streams alive. Failures raise ``LibreChatError``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpx
from django.conf import settings

from librechat.errors import LibreChatError

logger = logging.getLogger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, plus ones we always set ourselves.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded to LibreChat: our credentials, and what we set ourselves.
DROP_REQUEST = HOP_BY_HOP | {
    "host",
    "cookie",
    "authorization",
    "content-length",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "x-csrftoken",
    "origin",
    "referer",
    "x-request-id",  # sent once, as the request_id below (the middleware's sanitised id)
}
# Never passed back to the client: LibreChat's cookies and what the ASGI server sets.
DROP_RESPONSE = HOP_BY_HOP | {"set-cookie", "content-length", "server", "date"}
# The last event of a stream LibreChat broke off, in the shape of its own stream errors
# (`event: error` + `{"error": "<JSON string with type and info>"}`, api/server/routes/agents/
# index.js; the `endpoint_models_not_loaded` transcript): clients show `message`.
STREAM_INTERRUPTED = (
    "event: error\ndata: "
    + json.dumps(
        {
            "error": json.dumps(
                {
                    "type": "librechat_stream_interrupted",
                    "info": "LibreChat closed the stream before the answer was complete.",
                    "message": "The chat service stopped while answering; the answer may be "
                    "incomplete. Reload the conversation to see what was saved.",
                }
            )
        }
    )
    + "\n\n"
).encode()


_transports: dict[int, httpx.AsyncHTTPTransport] = {}


def _transport() -> httpx.AsyncHTTPTransport:
    """The connection pool to LibreChat: one per event loop (one per process under uvicorn).
    A bare transport has no cookie jar, so a LibreChat cookie, which belongs to one user, can
    never ride along on another user's request."""
    loop = id(asyncio.get_running_loop())
    found = _transports.get(loop)
    if found is None:
        found = _transports[loop] = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=settings.CHAT_PROXY_MAX_CONNECTIONS,
                max_keepalive_connections=settings.CHAT_PROXY_MAX_KEEPALIVE,
            ),
            retries=0,
        )
    return found


async def send(
    method: str,
    url: str,
    *,
    headers: list[tuple[str, str]],
    content: bytes | AsyncIterator[bytes] | None,
    timeout: httpx.Timeout,
) -> httpx.Response:
    """One request, straight to the pool: the proxy needs none of the client's layers (cookie
    jar, redirects, auth flows, default headers), and they cost a good part of its latency budget.
    The response streams; the caller closes it."""
    request = httpx.Request(
        method, url, headers=headers, content=content, extensions={"timeout": timeout.as_dict()}
    )
    try:
        response = await _transport().handle_async_request(request)
    except httpx.HTTPError as exc:
        raise failure(exc) from None
    response.request = request
    return response


def failure(exc: httpx.HTTPError) -> LibreChatError:
    """What a transport error means to our clients: LibreChat too slow, or not there."""
    if isinstance(exc, httpx.TimeoutException):
        return LibreChatError("LibreChat did not answer in time.", permanent=False, timed_out=True)
    return LibreChatError(f"LibreChat is unreachable ({type(exc).__name__}).", permanent=False)


async def forward(
    method: str,
    url: str,
    *,
    incoming: Iterable[tuple[str, str]],
    access_token: str,
    renew_token: Callable[[str], Awaitable[str]],
    client_ip: str,
    request_id: str,
    size: int,
    body: bytes | None,
    chunks: Callable[[], AsyncIterator[bytes]],
    stream: bool,
) -> httpx.Response:
    """Send a client's request on; a kept ``body`` (small enough to replay) that LibreChat
    refuses with 401 goes once more with the token ``renew_token(stale)`` gives. A large one
    streams from ``chunks()`` and cannot be replayed: its 401 goes back to the client."""
    incoming = list(incoming)
    token = access_token
    for attempt in (1, 2):
        headers = forward_request_headers(
            incoming, access_token=token, client_ip=client_ip, request_id=request_id
        )
        if size:
            headers.append(("content-length", str(size)))
        response = await send(
            method,
            url,
            headers=headers,
            content=body if body is not None else chunks(),
            timeout=timeout_for(stream=stream),
        )
        if response.status_code == 401 and attempt == 1 and body is not None:
            await response.aclose()
            token = await renew_token(token)
            continue
        break
    return response


def is_small(response: httpx.Response) -> bool:
    """The buffering rule: an answer of known length up to CHAT_PROXY_BUFFER_MAX_BYTES is read
    and sent in one piece, with its Content-Length, instead of streamed chunk by chunk."""
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) <= settings.CHAT_PROXY_BUFFER_MAX_BYTES


async def read_raw(response: httpx.Response) -> bytes:
    """The whole body as LibreChat encoded it (its Content-Encoding goes along); closes it."""
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    except httpx.HTTPError as exc:
        raise failure(exc) from None
    finally:
        await response.aclose()


async def check_started(response: httpx.Response) -> None:
    """LibreChat's pre-start denials arrive as SSE text with status 200 (contract B2) where a
    started chat answers JSON: raise the denial, having read and closed the response."""
    if response.status_code == 200 and not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        try:
            body = await response.aread()  # decoded: a denial is read here, not passed on
        except httpx.HTTPError as exc:
            raise failure(exc) from None
        finally:
            await response.aclose()
        raise denial(body)


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


def denial(body: bytes) -> LibreChatError:
    """The last `event: error` frame of a denial carries the reason, sometimes as a JSON string
    in its `text`. Status 429 for LibreChat's message limit, 403 for any other refusal; the
    reason as LibreChat sent it, when it is an object, in ``detail``."""
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
        return LibreChatError(
            f"LibreChat's message limit is reached ({reason.get('max')} per {window} minute(s)); "
            "try again later.",
            permanent=False,
            status=429,
            detail=reason,
        )
    if isinstance(reason, dict):
        message = str(reason.get("message") or reason.get("type") or reason)
        return LibreChatError(
            f"LibreChat refused the message: {message}", permanent=True, status=403, detail=reason
        )
    return LibreChatError(
        f"LibreChat refused the message: {reason or 'no reason given'}", permanent=True, status=403
    )


def timeout_for(*, stream: bool) -> httpx.Timeout:
    """LibreChat sends no heartbeats on its event streams and a tool call can be silent for
    minutes, so reads on a stream may wait long; everything else answers within the normal limit."""
    return httpx.Timeout(
        settings.CHAT_PROXY_TIMEOUT_S,
        connect=settings.LIBRECHAT_CONNECT_TIMEOUT_S,
        read=settings.CHAT_PROXY_STREAM_READ_TIMEOUT_S if stream else settings.CHAT_PROXY_TIMEOUT_S,
        pool=settings.CHAT_PROXY_POOL_TIMEOUT_S,
    )


def forward_request_headers(
    incoming: Iterable[tuple[str, str]], *, access_token: str, client_ip: str, request_id: str
) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in incoming if k.lower() not in DROP_REQUEST]
    headers += [
        ("authorization", f"Bearer {access_token}"),
        ("user-agent", settings.LIBRECHAT_USER_AGENT),
        ("x-forwarded-for", client_ip),
        ("x-request-id", request_id),
    ]
    return headers


def response_headers(upstream: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in DROP_RESPONSE]


def is_event_stream(upstream: httpx.Response) -> bool:
    return str(upstream.headers.get("content-type", "")).startswith("text/event-stream")


async def relay(
    upstream: httpx.Response, *, ping_every: float | None, interrupted: bytes = STREAM_INTERRUPTED
) -> AsyncIterator[bytes]:
    """Pass the upstream body through as it arrives; closing this closes the upstream response.

    For event streams, ``: ping`` comments go out after ``ping_every`` idle seconds, only between
    events, so browsers and load balancers keep the stream open; a stream LibreChat breaks off
    ends with ``interrupted`` (after a blank line, if it broke off inside an event).
    """
    if ping_every is None:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
        return
    chunks = upstream.aiter_raw()
    at_boundary = True
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(chunks))
            finished, _ = await asyncio.wait({pending}, timeout=ping_every)
            if not finished:
                if at_boundary:
                    yield b": ping\n\n"
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            except httpx.HTTPError as exc:
                # LibreChat died mid-answer (the chunked body broke off) or went silent past the
                # read timeout: say so, or the client would take the cut for the end.
                logger.warning("librechat event stream broke off: %s", type(exc).__name__)
                yield (b"" if at_boundary else b"\n\n") + interrupted
                return
            finally:
                pending = None
            if chunk:
                at_boundary = chunk.endswith(b"\n\n")
                yield chunk
    finally:
        if pending is not None:
            pending.cancel()
        await upstream.aclose()
