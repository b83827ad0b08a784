"""The one client for LibreChat: what we say to it and how we read its answers, with one error
type, ``LibreChatError(permanent=...)``. It imports no app; users and chat use it.

* ``librechat.auth`` (re-exported here): register, log in, refresh, log out, delete the
  caller's account; LibreChat's own wording that decides between retrying and giving up.
* ``librechat.upstream``: the chat proxy's transport: the pool, header hygiene,
  refresh-and-replay, SSE denials, the buffering rule, the stream relay.
* ``librechat.readiness``: LibreChat's ``/readyz`` as one of our readiness checks.

The contract items cited in these modules (A1-A5, B2, ...) are LibreChat's behaviour, traced to
its source.
"""

from librechat.auth import (
    DEFAULT_RETRY_AFTER_S,
    DELETION_NOT_ALLOWED,
    EMAIL_DOES_NOT_EXIST,
    EMAIL_NOT_VERIFIED,
    INCORRECT_PASSWORD,
    LibreChatSession,
    delete_account,
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
    "LibreChatError",
    "LibreChatSession",
    "delete_account",
    "login",
    "logout",
    "longest_call_s",
    "refresh",
    "register",
    "request_headers",
    "reset_client",
]
