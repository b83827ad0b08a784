"""Who is calling the proxy: our JWT (mobile) or our session cookie (web, CSRF-checked)."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.datastructures import MultiValueDict
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from core.errors import ApplicationError, ErrorCode
from users.authentication import ACCOUNT_INACTIVE, TokenRevoked, issued_before_revocation
from users.models import ProvisioningState, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Provisioned, active users seen in the last CHAT_PROXY_USER_CACHE_S (at most 1 s), so a JWT
# request needs no database round trip (a thread hop under ASGI). Anyone else is read fresh every
# time. The bound is what makes a deactivation reach every process within a second: after it,
# each process reads the user again and finds them inactive (users/lifecycle.py).
_recent: dict[str, tuple[User, float]] = {}
# Access tokens already verified: raw token -> (user id, expiry, issued at; Unix times).
_tokens: dict[str, tuple[str, float, float]] = {}


async def release_database() -> None:
    """Hand this request's database connection back now: a proxied request can stay open for as
    long as a stream runs, and must not hold a pooled connection all that time."""
    await sync_to_async(close_old_connections, thread_sensitive=True)()


async def _user_by_id(user_id: str) -> User:
    now = time.monotonic()
    cached = _recent.get(user_id)
    if cached and cached[1] > now:
        return cached[0]
    user = await User.objects.filter(pk=user_id).afirst()
    await release_database()
    if user is None:
        _recent.pop(user_id, None)
        raise ApplicationError("User not found.", code=ErrorCode.USER_NOT_FOUND, status=401)
    if not user.is_active:
        _recent.pop(user_id, None)
        raise ApplicationError(ACCOUNT_INACTIVE, code=ErrorCode.ACCOUNT_INACTIVE, status=403)
    if user.provisioning_state == ProvisioningState.ACTIVE and settings.CHAT_PROXY_USER_CACHE_S > 0:
        if len(_recent) > 10_000:
            _recent.clear()
        _recent[user_id] = (user, now + settings.CHAT_PROXY_USER_CACHE_S)
    return user


def _verified_token(raw: str) -> tuple[str, float]:
    """The user id and issue time in a valid access token. A token seen before is not verified
    again until it expires: its signature cannot have become invalid, and the check costs as
    much as the rest of the request does. (Revocation is the user's, checked every time.)"""
    now = time.time()
    seen = _tokens.get(raw)
    if seen and seen[1] > now:
        return seen[0], seen[2]
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]
    except TokenError as exc:
        raise ApplicationError(str(exc), code=ErrorCode.TOKEN_NOT_VALID, status=401) from None
    user_id, issued_at = str(token.get("user_id")), float(token.get("iat", 0))
    if len(_tokens) > 10_000:
        _tokens.clear()
    _tokens[raw] = (user_id, float(token["exp"]), issued_at)
    return user_id, issued_at


def _no_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    raise AssertionError


def _csrf_failure(request: HttpRequest) -> str | None:
    """Django's CSRF check (Origin, Referer, token) without letting it parse the body: the token
    must come in the X-CSRFToken header, and an upload stays an unread stream for the proxy."""
    request._post = QueryDict()  # type: ignore[attr-defined]
    request._files = MultiValueDict()  # type: ignore[attr-defined]
    check = CsrfViewMiddleware(_no_response)
    check.process_request(request)
    response = check.process_view(request, None, (), {})  # type: ignore[arg-type]
    if response is None:
        return None
    return getattr(response, "reason_phrase", None) or "CSRF check failed."


async def authenticate(request: HttpRequest) -> User:
    header = request.headers.get("Authorization", "")
    if header:
        kind, _, raw = header.partition(" ")
        if kind != "Bearer" or not raw:
            raise ApplicationError(
                "Authorization header must be 'Bearer <token>'.",
                code=ErrorCode.NOT_AUTHENTICATED,
                status=401,
            )
        user_id, issued_at = _verified_token(raw)
        user = await _user_by_id(user_id)
        if issued_before_revocation(user, issued_at):
            raise ApplicationError(
                TokenRevoked.default_detail, code=ErrorCode.TOKEN_NOT_VALID, status=401
            )
        return user
    user_or_anonymous: Any = await request.auser()
    await release_database()
    if not user_or_anonymous.is_authenticated:
        raise ApplicationError(
            "Authentication credentials were not provided.",
            code=ErrorCode.NOT_AUTHENTICATED,
            status=401,
        )
    if request.method not in SAFE_METHODS:
        reason = _csrf_failure(request)  # pure computation: no I/O, no thread needed
        if reason is not None:
            raise ApplicationError(f"CSRF Failed: {reason}", code=ErrorCode.CSRF_FAILED, status=403)
    assert isinstance(user_or_anonymous, User)
    return user_or_anonymous
