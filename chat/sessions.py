"""Each user's LibreChat session, kept server-side in the cache (Redis in production).

LibreChat's access token lives 15 minutes; its refresh token rotates on every use and expires 7
days after the log-in, whatever happens (contract A3, pitfall 5). So: refresh ahead of expiry;
at most one refresh per user at a time across every process (a rotating refresh token spent twice
logs the user out); log in again with the stored password when refreshing fails. The refresh token
is encrypted at rest; the access token is short-lived and kept as is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import secrets
import time
from dataclasses import asdict, dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

import librechat
from users.crypto import DecryptionError, decrypt_secret, encrypt_secret
from users.librechat_admin import ADMIN_ROLE
from users.models import User
from users.services import librechat_password_decrypt

logger = logging.getLogger(__name__)

_KEY = "librechat:session:{}"
_LOCK_KEY = "librechat:session-lock:{}"
# Process-local copy of fresh access tokens: skips a cache round trip on the hot path. Safe,
# because LibreChat keeps an access token valid until its `exp` even after a refresh.
_memo: dict[int, tuple[str, float]] = {}


class SessionUnavailable(Exception):
    """No LibreChat session for the user now; ``status`` is LibreChat's, None when it was not
    reached. Whether trying again helps is the LibreChatError's business, not the caller's."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CredentialsUnreadable(SessionUnavailable):
    """The stored LibreChat password cannot be decrypted (its key was removed): ours to fix."""


class AdminAccountRefused(SessionUnavailable):
    """LibreChat reports the user as its ADMIN: no end user may hold LibreChat's admin rights
    (users/librechat_admin.py), so the session is not used."""

    def __init__(self) -> None:
        super().__init__(
            "Your chat account has LibreChat's administrator rights, which no user of this "
            "service may hold, so it is blocked. An administrator must fix it (docs/operations.md,"
            " 'LibreChat admin').",
        )


class AccountInactive(SessionUnavailable):
    """The account was deactivated while this request was on its way (chat/auth.py trusts a
    user read up to CHAT_PROXY_USER_CACHE_S ago): the session just opened is ended again."""


@dataclass
class StoredSession:
    access_token: str
    access_expires_at: float
    refresh_token_encrypted: str
    session_expires_at: float
    librechat_user_id: str
    # The role LibreChat reported with the session (its login and refresh answers carry it).
    librechat_role: str = ""

    def check_role(self) -> None:
        if self.librechat_role == ADMIN_ROLE:
            raise AdminAccountRefused


def _jwt_exp(token: str | None, default: float) -> float:
    """Read `exp` from a JWT without verifying it: we only schedule refreshes with it."""
    if not token:
        return default
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(data["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return default


def _fresh(expires_at: float) -> bool:
    return expires_at - settings.LIBRECHAT_TOKEN_REFRESH_MARGIN_S > time.time()


def _parse(raw: object) -> StoredSession | None:
    if not isinstance(raw, dict):
        return None
    try:
        return StoredSession(**raw)
    except TypeError:
        return None


async def _load(user_id: int) -> StoredSession | None:
    return _parse(await cache.aget(_KEY.format(user_id)))


async def _store(
    user_id: int, session: librechat.LibreChatSession, previous: StoredSession | None
) -> StoredSession:
    now = time.time()
    refresh_exp = _jwt_exp(
        session.refresh_token, previous.session_expires_at if previous else now + 7 * 86400
    )
    stored = StoredSession(
        access_token=session.access_token,
        access_expires_at=_jwt_exp(session.access_token, now + 900),
        refresh_token_encrypted=encrypt_secret(session.refresh_token)
        if session.refresh_token
        else "",
        session_expires_at=refresh_exp,
        librechat_user_id=session.user_id,
        librechat_role=str(session.user.get("role") or ""),
    )
    timeout = max(int(stored.session_expires_at - now), 60)
    await cache.aset(_KEY.format(user_id), asdict(stored), timeout=timeout)
    return stored


async def forget(user_id: int) -> None:
    _memo.pop(user_id, None)
    await cache.adelete(_KEY.format(user_id))


def refresh_lock_ttl_s() -> float:
    """How long the per-user lock lives if its holder never releases it (a killed process).

    Longer than the work it guards, derived from the timeouts so the two cannot drift apart: a
    renewal makes at most two LibreChat calls (a refresh, then a log-in when the refresh is
    refused), each at most connect + read timeout, plus a margin for our own work. Expiring
    sooner would let a second request spend the rotating refresh token while the first is still
    waiting for LibreChat's answer, which logs the user out (contract A3).
    """
    return 2 * librechat.longest_call_s() + LOCK_MARGIN_S


LOCK_MARGIN_S = 5.0


class UserLock:
    """A cross-process lock in the cache (`add` is atomic on Redis and in memory): one per user
    and ``purpose`` (the session renewal; chat/remote_agents.py: the agent key's creation)."""

    def __init__(self, user_id: int, *, purpose: str = "session-lock") -> None:
        self.key = _LOCK_KEY.replace("session-lock", purpose).format(user_id)
        self.owner = secrets.token_hex(8)

    async def __aenter__(self) -> None:
        deadline = time.monotonic() + settings.LIBRECHAT_SESSION_LOCK_WAIT_S
        ttl = math.ceil(refresh_lock_ttl_s())  # whole seconds: what Redis's EX takes
        while not await cache.aadd(self.key, self.owner, timeout=ttl):
            if time.monotonic() > deadline:
                raise SessionUnavailable(
                    "Timed out waiting for another request to renew the LibreChat session.",
                )
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        if await cache.aget(self.key) == self.owner:
            await cache.adelete(self.key)


async def access_token(user: User, *, client_ip: str | None, stale: str | None = None) -> str:
    """A valid LibreChat access token for the user.

    ``stale``: a token LibreChat just answered 401 to; it is renewed unless another request
    already did.
    """
    memo = _memo.get(user.pk)  # only sessions whose role was checked
    if memo and stale is None and _fresh(memo[1]):
        return memo[0]
    stored = await _load(user.pk)
    if not (stored and _fresh(stored.access_expires_at) and stored.access_token != stale):
        async with UserLock(user.pk):
            stored = await _load(user.pk)  # another process may have renewed it while we waited
            if not (stored and _fresh(stored.access_expires_at) and stored.access_token != stale):
                _memo.pop(user.pk, None)
                stored = await _renew(user, stored, client_ip)
    stored.check_role()
    _memo[user.pk] = (stored.access_token, stored.access_expires_at)
    return stored.access_token


async def _renew(user: User, stored: StoredSession | None, client_ip: str | None) -> StoredSession:
    refresh_token = None
    if stored and stored.refresh_token_encrypted and stored.session_expires_at > time.time() + 5:
        try:
            refresh_token = decrypt_secret(stored.refresh_token_encrypted)
        except DecryptionError:  # encrypted with a key since removed: a log-in replaces it
            logger.warning("stored librechat refresh token unreadable user_id=%s", user.pk)
    if refresh_token:
        try:
            session = await asyncio.to_thread(
                librechat.refresh, refresh_token=refresh_token, client_ip=client_ip
            )
        except librechat.LibreChatError as exc:
            if not exc.permanent:
                raise SessionUnavailable(exc.message, status=exc.status) from None
            logger.info(
                "librechat refresh refused user_id=%s status=%s; logging in", user.pk, exc.status
            )
        else:
            logger.info("librechat session refreshed user_id=%s", user.pk)
            return await _store_if_active(user, session, stored, client_ip)
    try:
        password = await asyncio.to_thread(librechat_password_decrypt, user)
    except DecryptionError:
        logger.error("stored librechat password unreadable user_id=%s", user.pk)
        raise CredentialsUnreadable(
            "Your chat account's stored credentials cannot be read; an administrator must "
            "re-provision it.",
        ) from None
    try:
        session = await asyncio.to_thread(
            librechat.login, email=user.email, password=password, client_ip=client_ip
        )
    except librechat.LibreChatError as exc:
        raise SessionUnavailable(exc.message, status=exc.status) from None
    logger.info("librechat session opened user_id=%s", user.pk)
    return await _store_if_active(user, session, None, client_ip)


async def _store_if_active(
    user: User,
    session: librechat.LibreChatSession,
    previous: StoredSession | None,
    client_ip: str | None,
) -> StoredSession:
    """Store a new session only for a user still active now: a deactivation's clean-up may have
    ended the stored one while this request, let in from the proxy's short user cache, was
    renewing it. (One query per renewal, i.e. per user about every 15 minutes.)"""
    still_active = await User.objects.filter(pk=user.pk, is_active=True).aexists()
    await sync_to_async(close_old_connections, thread_sensitive=True)()
    if still_active:
        return await _store(user.pk, session, previous)
    with contextlib.suppress(librechat.LibreChatError):
        await asyncio.to_thread(
            librechat.logout,
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            client_ip=client_ip,
        )
    raise AccountInactive("This account is deactivated.")


# -- the end of an account's sessions (users/lifecycle.py sends the signals) --------------------


def session_end(*, user_id: int, give_up: bool = False) -> None:
    """Log the user's stored LibreChat session out and forget our copy of its tokens.

    LibreChat deletes the session matching the refresh cookie on ``POST /api/auth/logout``,
    which needs a valid access token (contract A4): an expired one is renewed first with that
    cookie. Raises ``SessionUnavailable`` while LibreChat cannot be reached, so the caller can
    retry with the tokens still stored; with ``give_up`` (or any refusal) the tokens are
    forgotten anyway, since a session nobody holds the cookie of is as good as ended.
    """
    stored = _parse(cache.get(_KEY.format(user_id)))
    if stored is not None and stored.refresh_token_encrypted:
        try:
            refresh_token = decrypt_secret(stored.refresh_token_encrypted)
            access = stored.access_token
            if not _fresh(stored.access_expires_at):
                renewed = librechat.refresh(refresh_token=refresh_token)
                access, refresh_token = renewed.access_token, renewed.refresh_token or ""
            librechat.logout(access_token=access, refresh_token=refresh_token)
            logger.info("librechat session ended user_id=%s", user_id)
        except DecryptionError:
            logger.warning("stored librechat refresh token unreadable user_id=%s", user_id)
        except librechat.LibreChatError as exc:
            if not exc.permanent and not give_up:
                raise SessionUnavailable(exc.message, status=exc.status) from None
            logger.info("librechat log-out refused user_id=%s: %s", user_id, exc.message)
    _memo.pop(user_id, None)
    cache.delete(_KEY.format(user_id))


def on_account_deactivated(
    sender: object, *, user: User, give_up: bool = False, **_: object
) -> None:
    session_end(user_id=user.pk, give_up=give_up)


def on_account_erased(sender: object, *, user: User, **_: object) -> None:
    # LibreChat deleted the account and every session of it: only our copy is left.
    _memo.pop(user.pk, None)
    cache.delete(_KEY.format(user.pk))
