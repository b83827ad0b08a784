"""The one client for LibreChat's chat API: a shared connection pool per process, header hygiene,
and the stream wrapper that keeps idle event streams alive."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable

import httpx
from django.conf import settings

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
    The response streams; the caller closes it. Raises httpx's exceptions."""
    request = httpx.Request(
        method, url, headers=headers, content=content, extensions={"timeout": timeout.as_dict()}
    )
    response = await _transport().handle_async_request(request)
    response.request = request
    return response


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
