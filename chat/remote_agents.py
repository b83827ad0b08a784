"""The client of LibreChat's remote agents API (``/api/agents/v1/*``, contract item 20), and the
per-user agent API key it takes as its bearer.

The key is created on first use, as the user, with the user's LibreChat session
(chat/sessions.py) through ``POST /api/api-keys`` (users/librechat.py), kept encrypted
(users/agent_keys.py) and in a process-local memo; ``forget`` drops it when LibreChat says it is
gone, and the caller creates a new one. Requests go through the chat proxy's connection pool
(chat/upstream.py) with headers built from nothing: the client's own headers, our JWT among them,
never reach LibreChat. ``Accept-Encoding: identity``: LibreChat's ``compression()`` would gzip the
event stream and hold its chunks back in zlib's buffer.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings

from chat import sessions, upstream
from chat.auth import release_database
from chat.views import librechat_token
from hestami_ai.errors import ApplicationError
from users import librechat
from users.agent_keys import StoredAgentKey, agent_key_forget, agent_key_get, agent_key_store
from users.models import User

logger = logging.getLogger(__name__)

V1_PREFIX = "/api/agents/v1"
# What LibreChat answers a key it does not know (createRequireApiKeyAuth).
INVALID_KEY = "invalid_api_key"
# Process-local copy of each user's key: skips a database round trip on the hot path.
_memo: dict[int, StoredAgentKey] = {}

REMOTE_AGENTS_NOT_GRANTED = (
    "Your chat account's LibreChat role may not use agents over the API (LibreChat's "
    "REMOTE_AGENTS USE permission is off). An administrator must grant it: in librechat.yaml, "
    "`interface: remoteAgents: use: true`, then restart LibreChat (docs/openai-api.md)."
)


def remote_agents_refused() -> ApplicationError:
    return ApplicationError(REMOTE_AGENTS_NOT_GRANTED, code="remote_agents_not_granted", status=403)


async def agent_key(user: User, *, client_ip: str) -> StoredAgentKey:
    """The user's key: from the memo, else the database, else a new one from LibreChat (one
    creation per user at a time, across processes)."""
    found = _memo.get(user.pk)
    if found is not None:
        return found
    found = await _stored(user.pk)
    if found is None:
        async with sessions.UserLock(user.pk, purpose="agent-key-lock"):
            found = await _stored(user.pk) or await _create(user, client_ip)
    _memo[user.pk] = found
    return found


async def forget(user: User, key: StoredAgentKey) -> None:
    """LibreChat no longer knows this key (revoked, or its account recreated)."""
    if _memo.get(user.pk) == key:
        _memo.pop(user.pk, None)
    await sync_to_async(agent_key_forget, thread_sensitive=True)(user_id=user.pk, key_id=key.key_id)


async def _stored(user_id: int) -> StoredAgentKey | None:
    found = await sync_to_async(agent_key_get, thread_sensitive=True)(user_id=user_id)
    await release_database()
    return found


async def _create(user: User, client_ip: str) -> StoredAgentKey:
    token = await librechat_token(user, client_ip)
    try:
        try:
            created = await asyncio.to_thread(
                librechat.create_agent_api_key, access_token=token, client_ip=client_ip
            )
        except librechat.LibreChatError as exc:
            if exc.status != 401:
                raise
            token = await librechat_token(user, client_ip, stale=token)
            created = await asyncio.to_thread(
                librechat.create_agent_api_key, access_token=token, client_ip=client_ip
            )
    except librechat.LibreChatError as exc:
        raise _creation_failure(exc) from None
    replaced = await sync_to_async(agent_key_store, thread_sensitive=True)(
        user_id=user.pk, key=created
    )
    await release_database()
    logger.info("librechat agent key created user_id=%s key_id=%s", user.pk, created.id)
    if replaced:  # an unreadable key was replaced: it goes in LibreChat too
        try:
            await asyncio.to_thread(
                librechat.delete_agent_api_key,
                access_token=token,
                key_id=replaced,
                client_ip=client_ip,
            )
        except librechat.LibreChatError as exc:
            logger.warning("replaced librechat agent key not deleted: %s", exc.message)
    return StoredAgentKey(key_id=created.id, key=created.key)


def _creation_failure(exc: librechat.LibreChatError) -> ApplicationError:
    if exc.status == 403 and exc.message == librechat.INSUFFICIENT_PERMISSIONS:
        return remote_agents_refused()
    if exc.rate_limited:
        return ApplicationError(
            "LibreChat's rate limit is reached; try again later.",
            code="librechat_rate_limited",
            status=429,
            headers={"Retry-After": str(int(exc.retry_after or librechat.DEFAULT_RETRY_AFTER_S))},
        )
    if exc.status is None:
        return ApplicationError(exc.message, code="librechat_unreachable", status=502)
    return ApplicationError(
        f"LibreChat refused to create the agent API key: {exc.message}",
        code="librechat_agent_key_failed",
        status=502,
    )


async def send(
    method: str,
    path: str,
    *,
    key: StoredAgentKey,
    body: bytes | None,
    client_ip: str,
    request_id: str,
    stream: bool,
) -> httpx.Response:
    """One request to ``/api/agents/v1<path>`` with the user's key; the response streams and the
    caller closes it. Raises httpx's exceptions."""
    headers = [
        ("authorization", f"Bearer {key.key}"),
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
