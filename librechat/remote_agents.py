"""LibreChat's remote agents API (``/api/agents/v1/*``, contract item 20) on the wire: the
requests ``/api/v1`` (chat/openai_api.py) sends with a user's agent API key, and how its
answers are read. The keys themselves are created and deleted through ``/api/api-keys``
(librechat/auth.py).

Requests go through the chat proxy's connection pool (librechat/upstream.py) with headers built
from nothing: the client's own headers, our JWT among them, never reach LibreChat.
``Accept-Encoding: identity``: LibreChat's ``compression()`` would gzip the event stream and hold
its chunks back in zlib's buffer. Failures raise ``LibreChatError``.
"""

from __future__ import annotations

import json

import httpx
from django.conf import settings

from librechat import upstream

V1_PREFIX = "/api/agents/v1"
# What LibreChat answers a key it does not know (createRequireApiKeyAuth).
INVALID_KEY = "invalid_api_key"


async def send(
    method: str,
    path: str,
    *,
    api_key: str,
    body: bytes | None,
    client_ip: str,
    request_id: str,
    stream: bool,
) -> httpx.Response:
    """One request to ``/api/agents/v1<path>`` with the user's agent API key; the response
    streams and the caller closes it."""
    headers = [
        ("authorization", f"Bearer {api_key}"),
        ("accept", "text/event-stream" if stream else "application/json"),
        ("accept-encoding", "identity"),
        ("user-agent", settings.LIBRECHAT_USER_AGENT),
        ("x-request-id", request_id),
    ]
    if settings.LIBRECHAT_FORWARD_CLIENT_IP:
        headers.append(("x-forwarded-for", client_ip))
    if body is not None:
        headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
    return await upstream.send(
        method,
        f"{settings.LIBRECHAT_API_URL}{V1_PREFIX}{path}",
        headers=headers,
        content=body,
        timeout=upstream.timeout_for(stream=stream),
    )


async def read(response: httpx.Response) -> bytes:
    """The whole body, decoded (a Content-Encoding is undone, so none goes on); closes it."""
    try:
        return await response.aread()
    except httpx.HTTPError as exc:
        raise upstream.failure(exc) from None
    finally:
        await response.aclose()


def error_code(raw: bytes) -> str | None:
    """The ``error.code`` of an answer in OpenAI's error shape, if it is one."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return None
    return str(error.get("code")) if isinstance(error, dict) else None
