"""The one client for LibreChat: what we say to it and how we read its answers, with one error
type, ``LibreChatError(permanent=...)``. It imports no app; users and chat use it.

* ``librechat.auth`` (re-exported here): register, log in, refresh, log out, delete the
  caller's account, create and delete its agent API keys (item 20), read a role; LibreChat's
  own wording that decides between retrying and giving up.
* ``librechat.upstream``: the chat proxy's transport: the pool, header hygiene,
  refresh-and-replay, SSE denials, the buffering rule, the stream relay.
* ``librechat.versions``: which LibreChat release we sit in front of (``/api/config`` or
  LIBRECHAT_VERSION) and what that release does differently, the one place that knows.
* ``librechat.readiness``: LibreChat's ``/readyz`` as one of our readiness checks.
* ``librechat.remote_agents``: the remote agents API (``/api/agents/v1``) that ``/api/v1``
  forwards to, with a user's agent API key (created and deleted through ``librechat.auth``).

The contract items cited in these modules (A1-A5, B2, ...) are LibreChat's behaviour, traced to
its source.
"""

from librechat.auth import (
    DEFAULT_RETRY_AFTER_S,
    DELETION_NOT_ALLOWED,
    EMAIL_DOES_NOT_EXIST,
    EMAIL_NOT_VERIFIED,
    INCORRECT_PASSWORD,
    INSUFFICIENT_PERMISSIONS,
    AgentApiKey,
    LibreChatSession,
    create_agent_api_key,
    delete_account,
    delete_agent_api_key,
    get_role,
    login,
    logout,
    longest_call_s,
    refresh,
    register,
    request_headers,
    reset_client,
)
from librechat.errors import LibreChatError

__all__ = [
    "DEFAULT_RETRY_AFTER_S",
    "DELETION_NOT_ALLOWED",
    "EMAIL_DOES_NOT_EXIST",
    "EMAIL_NOT_VERIFIED",
    "INCORRECT_PASSWORD",
    "INSUFFICIENT_PERMISSIONS",
    "AgentApiKey",
    "LibreChatError",
    "LibreChatSession",
    "create_agent_api_key",
    "delete_account",
    "delete_agent_api_key",
    "get_role",
    "login",
    "logout",
    "longest_call_s",
    "refresh",
    "register",
    "request_headers",
    "reset_client",
]
