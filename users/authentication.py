"""Our JWTs, refused for a deactivated account (403) and when issued before its revocation (401).

simplejwt verifies the signature and expiry; revocation is the user's own state, read with the
user on every request: ``is_active`` and ``credentials_revoked_at`` (users/lifecycle.py). The chat
proxy applies the same two rules to its cached users (chat/auth.py).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from users.models import User

ACCOUNT_INACTIVE = "This account is deactivated."


class AccountInactive(exceptions.PermissionDenied):
    default_detail = ACCOUNT_INACTIVE
    default_code = "account_inactive"


class TokenRevoked(exceptions.AuthenticationFailed):
    default_detail = "This token was issued before the account's credentials were revoked."
    default_code = "token_not_valid"


def issued_before_revocation(user: User, issued_at: float) -> bool:
    """A token's `iat` is whole seconds: one issued in the second of the revocation is refused
    too (the safe side; a user logging in again in that very second just logs in once more)."""
    revoked = user.credentials_revoked_at
    return revoked is not None and issued_at <= int(revoked.timestamp())


class JWTAuthentication(SimpleJWTAuthentication):
    def get_user(self, validated_token: Any) -> Any:
        try:
            user = super().get_user(validated_token)
        except AuthenticationFailed as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {}
            if detail.get("code") == "user_inactive":
                raise AccountInactive from None
            raise
        assert isinstance(user, User)
        if issued_before_revocation(user, float(validated_token.get("iat", 0))):
            raise TokenRevoked
        return user


class JWTScheme(SimpleJWTScheme):  # type: ignore[no-untyped-call]
    """The OpenAPI security scheme of the class above: simplejwt's bearer JWT."""

    target_class = "users.authentication.JWTAuthentication"
