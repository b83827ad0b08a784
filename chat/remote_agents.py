"""The per-user agent API key that LibreChat's remote agents API (``/api/agents/v1/*``,
contract item 20; on the wire: librechat/remote_agents.py) takes as its bearer.

The key is created on first use, as the user, with the user's LibreChat session
(chat/sessions.py) through ``POST /api/api-keys`` (librechat/auth.py), kept encrypted
(users/agent_keys.py) and in a process-local memo; ``forget`` drops it when LibreChat says it is
gone, and the caller creates a new one.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async

import librechat
from chat import sessions
from chat.auth import release_database
from chat.views import librechat_token
from core.errors import ApplicationError, ErrorCode
from users.agent_keys import StoredAgentKey, agent_key_forget, agent_key_get, agent_key_store
from users.models import User

logger = logging.getLogger(__name__)

# Process-local copy of each user's key: skips a database round trip on the hot path.
_memo: dict[int, StoredAgentKey] = {}

REMOTE_AGENTS_NOT_GRANTED = (
    "Your chat account's LibreChat role may not use agents over the API (LibreChat's "
    "REMOTE_AGENTS USE permission is off). An administrator must grant it: in librechat.yaml, "
    "`interface: remoteAgents: use: true`, then restart LibreChat (docs/openai-api.md)."
)


def remote_agents_refused() -> ApplicationError:
    return ApplicationError(
        REMOTE_AGENTS_NOT_GRANTED, code=ErrorCode.REMOTE_AGENTS_NOT_GRANTED, status=403
    )


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
            code=ErrorCode.LIBRECHAT_RATE_LIMITED,
            status=429,
            headers={"Retry-After": str(int(exc.retry_after or librechat.DEFAULT_RETRY_AFTER_S))},
        )
    if exc.status is None:
        return ApplicationError(exc.message, code=ErrorCode.LIBRECHAT_UNREACHABLE, status=502)
    return ApplicationError(
        f"LibreChat refused to create the agent API key: {exc.message}",
        code=ErrorCode.LIBRECHAT_AGENT_KEY_FAILED,
        status=502,
    )
