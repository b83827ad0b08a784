"""LibreChat's auth API (contract A1-A4, item 21): register, login, refresh, logout, and deleting
the caller's own account; as the user, its agent API keys (``/api/api-keys``, item 20) and a
role's document (``/api/roles/:name``).

Every call is keyword-only, has timeouts, and fails with ``LibreChatError``, whose ``permanent``
flag says whether trying again can help. The end user's IP goes out as X-Forwarded-For, because
LibreChat keys its per-IP limits on it and trusts one proxy hop (contract A5).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from core.logs import outgoing_request_id
from librechat.errors import LibreChatError

logger = logging.getLogger(__name__)

# LibreChat answers these on /api/auth/login; they decide between "conflict" and "retry".
INCORRECT_PASSWORD = "Incorrect password."  # noqa: S105 (a message, not a secret)
EMAIL_DOES_NOT_EXIST = "Email does not exist."
EMAIL_NOT_VERIFIED = "Email not verified."
# validateEmailLogin's 403 (LibreChat 0.8.8+, ALLOW_EMAIL_LOGIN=false without the override).
EMAIL_LOGIN_NOT_ALLOWED = "Email login is not allowed."
# canDeleteAccount's refusal (api/server/middleware/canDeleteAccount.js).
DELETION_NOT_ALLOWED = "You do not have permission to delete this account"
# Express-rate-limit windows when LibreChat sends no Retry-After (contract A5 defaults).
DEFAULT_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class LibreChatSession:
    access_token: str
    refresh_token: str | None
    user_id: str
    user: dict[str, Any]


_client: httpx.Client | None = None
_client_lock = threading.Lock()


class _NoCookies(CookieJar):
    """A jar that keeps nothing. The client is shared by every user of the process, and a
    LibreChat cookie (the refreshToken, not `Secure` over internal http) belongs to one user:
    kept, it would ride along on the next user's register or log-in. We send the refresh
    cookie by hand where LibreChat needs it; a response's own cookies stay readable."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _http() -> httpx.Client:
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(
                timeout=httpx.Timeout(
                    settings.LIBRECHAT_TIMEOUT_S, connect=settings.LIBRECHAT_CONNECT_TIMEOUT_S
                ),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
                follow_redirects=False,
                cookies=_NoCookies(),
            )
        return _client


def longest_call_s() -> float:
    """The longest one call may take before it fails: connecting, then waiting for the answer.
    What a lock or a wait around a call must outlast (chat/sessions.py, the deletion workflow)."""
    return float(settings.LIBRECHAT_CONNECT_TIMEOUT_S + settings.LIBRECHAT_TIMEOUT_S)


def reset_client() -> None:
    """Drop pooled connections (tests that restart the upstream on the same port)."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None


def request_headers(client_ip: str | None) -> dict[str, str]:
    headers = {
        "User-Agent": settings.LIBRECHAT_USER_AGENT,
        "Accept": "application/json",
        # The id of the request that led here (also inside workflow steps it started), else new.
        "X-Request-ID": outgoing_request_id(),
    }
    if client_ip and settings.LIBRECHAT_FORWARD_CLIENT_IP:
        headers["X-Forwarded-For"] = client_ip
    return headers


def _retry_after(response: httpx.Response) -> float:
    for name in ("Retry-After", "RateLimit-Reset", "X-RateLimit-Reset"):
        raw = response.headers.get(name)
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(raw) if name == "Retry-After" else None
            if parsed is None:
                continue
            value = parsed.timestamp() - time.time()
        if name == "X-RateLimit-Reset" and value > 1e9:  # epoch seconds
            value -= time.time()
        return max(value, 0.0)
    return DEFAULT_RETRY_AFTER_S


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:500]
    return str(body)[:500]


def _post(path: str, *, json: Any = None, headers: dict[str, str]) -> httpx.Response:
    return _send("POST", path, json=json, headers=headers)


def _send(method: str, path: str, *, json: Any = None, headers: dict[str, str]) -> httpx.Response:
    url = f"{settings.LIBRECHAT_API_URL}{path}"
    try:
        response = _http().request(method, url, json=json, headers=headers)
    except httpx.TimeoutException as exc:
        raise LibreChatError(
            f"LibreChat timed out on {path}: {type(exc).__name__}", permanent=False, timed_out=True
        ) from None
    except httpx.HTTPError as exc:
        raise LibreChatError(
            f"LibreChat is unreachable: {type(exc).__name__}", permanent=False
        ) from None
    if response.status_code == 429:
        raise LibreChatError(
            _message(response), permanent=False, status=429, retry_after=_retry_after(response)
        )
    if response.status_code >= 500:
        raise LibreChatError(
            f"LibreChat answered {response.status_code}: {_message(response)}",
            permanent=False,
            status=response.status_code,
        )
    return response


def register(*, email: str, password: str, name: str, client_ip: str | None = None) -> None:
    """Ask LibreChat to create the account. A 200 only means "maybe" (duplicates answer 200 too)."""
    response = _post(
        "/api/auth/register",
        json={"name": name, "email": email, "password": password, "confirm_password": password},
        headers=request_headers(client_ip),
    )
    if response.status_code != 200:
        # 404 is LibreChat's answer to invalid input (sic), 403 to closed registration or a ban.
        raise LibreChatError(_message(response), permanent=True, status=response.status_code)


def _session(response: httpx.Response, refresh_token: str | None) -> LibreChatSession:
    try:
        body = response.json()
        user = body["user"]
        return LibreChatSession(
            access_token=str(body["token"]),
            refresh_token=response.cookies.get("refreshToken") or refresh_token,
            user_id=str(user.get("id") or user["_id"]),
            user=user,
        )
    except (ValueError, KeyError, TypeError):
        raise LibreChatError(
            "LibreChat answered 200 without a token and user.", permanent=False, status=200
        ) from None


def login(*, email: str, password: str, client_ip: str | None = None) -> LibreChatSession:
    response = _post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers=request_headers(client_ip),
    )
    if response.status_code != 200:
        message = _message(response)
        if response.status_code == 403 and message == EMAIL_LOGIN_NOT_ALLOWED:
            raise LibreChatError(
                f"{message} LibreChat 0.8.8+ with ALLOW_EMAIL_LOGIN=false refuses the password "
                "log-ins we depend on: set ALLOW_EMAIL_LOGIN_OVERRIDE=true in its .env "
                "(docs/librechat-versions.md).",
                permanent=True,
                status=403,
            )
        # "Email does not exist." right after a register can be replication lag: worth a retry.
        raise LibreChatError(
            message, permanent=message != EMAIL_DOES_NOT_EXIST, status=response.status_code
        )
    if "twoFAPending" in response.text:
        raise LibreChatError(
            "The LibreChat account has two-factor authentication on; log-in needs a code.",
            permanent=True,
            status=200,
        )
    return _session(response, None)


def refresh(*, refresh_token: str, client_ip: str | None = None) -> LibreChatSession:
    """Trade the refresh cookie for a new access token; LibreChat rotates the cookie every time."""
    headers = request_headers(client_ip)
    # Sent by hand: the cookie is Secure in production and would not go out over internal http.
    headers["Cookie"] = f"refreshToken={refresh_token}"
    response = _post("/api/auth/refresh", headers=headers)
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        raise LibreChatError(
            f"LibreChat refused the refresh: {_message(response)}",
            permanent=True,
            status=response.status_code,
        )
    return _session(response, refresh_token)


def _as_user(access_token: str, client_ip: str | None) -> dict[str, str]:
    headers = request_headers(client_ip)
    headers["Authorization"] = f"Bearer {access_token}"
    return headers


def logout(*, access_token: str, refresh_token: str | None, client_ip: str | None = None) -> None:
    headers = _as_user(access_token, client_ip)
    if refresh_token:
        headers["Cookie"] = f"refreshToken={refresh_token}"
    response = _post("/api/auth/logout", headers=headers)
    if response.status_code != 200:
        raise LibreChatError(_message(response), permanent=True, status=response.status_code)


def delete_account(*, access_token: str, client_ip: str | None = None) -> None:
    """Delete the account the token belongs to, with everything LibreChat holds for it
    (``DELETE /api/user/delete``: api/server/routes/user.js, UserController.deleteUserController).

    Refusals are permanent: 401 (token or user gone), 403 ``DELETION_NOT_ALLOWED`` (LibreChat's
    ALLOW_ACCOUNT_DELETION is false and the user is not its ADMIN), 400 (two-factor code needed).
    """
    response = _send("DELETE", "/api/user/delete", headers=_as_user(access_token, client_ip))
    if response.status_code != 200:
        raise LibreChatError(_message(response), permanent=True, status=response.status_code)


# -- agent API keys (contract item 20): what the remote agents API takes as its bearer -----------

# generateCheckAccess's refusal when the role lacks REMOTE_AGENTS USE (packages/api/src/middleware).
INSUFFICIENT_PERMISSIONS = "Forbidden: Insufficient permissions"
AGENT_KEY_NAME = "hestami-ai"  # the name LibreChat lists the key under, in the user's settings


@dataclass(frozen=True)
class AgentApiKey:
    id: str
    key: str  # the secret: shown by LibreChat once, at creation; never log it

    def __repr__(self) -> str:
        return f"AgentApiKey(id={self.id!r}, key=<hidden>)"


def create_agent_api_key(*, access_token: str, client_ip: str | None = None) -> AgentApiKey:
    """``POST /api/api-keys`` as the user (api/server/routes/apiKeys.js): 201 with the key.

    Refusals are permanent: 403 ``INSUFFICIENT_PERMISSIONS`` when the user's role lacks
    REMOTE_AGENTS USE, 401 when the token is no longer valid.
    """
    response = _post(
        "/api/api-keys", json={"name": AGENT_KEY_NAME}, headers=_as_user(access_token, client_ip)
    )
    if response.status_code != 201:
        raise LibreChatError(_message(response), permanent=True, status=response.status_code)
    try:
        body = response.json()
        return AgentApiKey(id=str(body["id"]), key=str(body["key"]))
    except (ValueError, KeyError, TypeError):
        raise LibreChatError(
            "LibreChat answered 201 without an API key.", permanent=False, status=201
        ) from None


def delete_agent_api_key(*, access_token: str, key_id: str, client_ip: str | None = None) -> bool:
    """``DELETE /api/api-keys/:id`` as the user: True if deleted, False if LibreChat has no such
    key (404: deleted already, or with the account). Other refusals raise, permanent."""
    response = _send(
        "DELETE",
        f"/api/api-keys/{quote(key_id, safe='')}",
        headers=_as_user(access_token, client_ip),
    )
    if response.status_code == 204:
        return True
    if response.status_code == 404:
        return False
    raise LibreChatError(_message(response), permanent=True, status=response.status_code)


def get_role(*, access_token: str, role: str, client_ip: str | None = None) -> dict[str, Any]:
    """``GET /api/roles/:roleName`` (api/server/routes/roles.js): the role's document, with its
    ``permissions`` (``REMOTE_AGENTS.USE`` among them). Any user may read a default role."""
    response = _send(
        "GET", f"/api/roles/{quote(role, safe='')}", headers=_as_user(access_token, client_ip)
    )
    if response.status_code != 200:
        raise LibreChatError(_message(response), permanent=True, status=response.status_code)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LibreChatError("LibreChat answered a role that is no object.", permanent=True)
    return body
