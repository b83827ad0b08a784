"""Who is calling the proxy: our JWT (mobile) or our session cookie (web, CSRF-checked)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.datastructures import MultiValueDict
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from hestami_ai.errors import ApplicationError
from users.models import User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
                code="not_authenticated",
                status=401,
            )
        try:
            token = AccessToken(raw)  # type: ignore[arg-type]
        except TokenError as exc:
            raise ApplicationError(str(exc), code="token_not_valid", status=401) from None
        user = await User.objects.filter(pk=token.get("user_id"), is_active=True).afirst()
        if user is None:
            raise ApplicationError("User not found.", code="user_not_found", status=401)
        return user
    user_or_anonymous: Any = await request.auser()
    if not user_or_anonymous.is_authenticated:
        raise ApplicationError(
            "Authentication credentials were not provided.", code="not_authenticated", status=401
        )
    if request.method not in SAFE_METHODS:
        reason = _csrf_failure(request)  # pure computation: no I/O, no thread needed
        if reason is not None:
            raise ApplicationError(f"CSRF Failed: {reason}", code="csrf_failed", status=403)
    assert isinstance(user_or_anonymous, User)
    return user_or_anonymous
