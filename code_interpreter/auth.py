"""Who is calling the Code API: LibreChat's per-user JWT, a legacy X-API-Key, or nobody.

* ``jwt``: LibreChat (``CODEAPI_AUTH_PROVIDER=librechat-jwt`` or ``CODEAPI_JWT_ENABLED=true``)
  signs ``Authorization: Bearer`` with EdDSA or RS256; ``iss=librechat``, ``aud=codeapi``,
  lifetime at most 300 s, ``sub`` the LibreChat user id. The caller is proven.
* ``api_key``: ``X-API-Key`` compared in constant time with every configured key.
* ``none``: no credentials, for a network-isolated deployment only.

Without a JWT the caller's identity is a hint the request carries (``user_id``, ``User-Id``,
``?id=``); it keeps honest callers apart, while the unguessable ids remain the capability.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from core.errors import ApplicationError, ErrorCode

Method = Literal["jwt", "api_key", "none"]
_USER_HINT = re.compile(r"[A-Za-z0-9_.:@|-]{1,128}")
_HOW_TO_CONFIGURE = (
    "Set CODE_INTERPRETER_JWT_PUBLIC_KEY to the public key of LibreChat's CODEAPI_JWT_PRIVATE_KEY "
    "(and CODEAPI_AUTH_PROVIDER=librechat-jwt in LibreChat), or CODE_INTERPRETER_API_KEYS for "
    "legacy X-API-Key clients, or CODE_INTERPRETER_AUTH=none on an isolated network."
)


@dataclass(frozen=True)
class Caller:
    method: Method
    user_id: str | None  # the LibreChat user: proven with a JWT, otherwise a hint or None
    verified: bool = False
    key_id: str | None = None  # which API key (a fingerprint, never the key)

    @property
    def budget_key(self) -> str:
        """Whose budgets (code_interpreter/budgets.py) a request spends: the JWT's user; else
        the API key (or no credential at all), narrowed to the user the request names, which
        only a trusted LibreChat may name (docs/code-interpreter.md)."""
        if self.verified:
            return f"user:{self.user_id}"
        credential = f"key:{self.key_id}" if self.key_id else "anonymous"
        return f"{credential}/user:{self.user_id}" if self.user_id else credential

    @property
    def runtime_scope(self) -> str:
        """Whose runtime sessions a ``runtime_session_hint`` names: the JWT's user; else the
        credential, since LibreChat names no user on bash_tool calls and its prewarm, and one
        hint must reach the same session from all of them (the hint itself is derived from the
        user; without a JWT the credential already reaches every session by its id)."""
        if self.verified:
            return f"user:{self.user_id}"
        return f"key:{self.key_id}" if self.key_id else "anonymous"

    def named(self, *hints: object) -> Caller:
        """Without a JWT, the first user id the request names (``user_id``, ``User-Id``...)."""
        if self.verified or self.user_id:
            return self
        for hint in hints:
            user_id = user_hint(hint)
            if user_id:
                return replace(self, user_id=user_id)
        return self


class NotAuthenticated(ApplicationError):
    status = 401
    code = ErrorCode.NOT_AUTHENTICATED


def user_hint(value: object) -> str | None:
    """A LibreChat user id named by the request, if it looks like one."""
    if isinstance(value, str) and _USER_HINT.fullmatch(value):
        return value
    return None


def authenticate(request: HttpRequest) -> Caller:
    """The caller, or NotAuthenticated (401) with a message that says what is missing."""
    methods = set(settings.CODE_INTERPRETER_AUTH)
    authorization = request.headers.get("Authorization", "")
    api_key = request.headers.get("X-API-Key")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("The Authorization header must be 'Bearer <JWT>'.")
        if "jwt" not in methods:
            raise NotAuthenticated(
                "A bearer token was sent but JWT authentication is not configured here. "
                + _HOW_TO_CONFIGURE
            )
        return Caller("jwt", verify_jwt(token.strip()), verified=True)
    if api_key is not None:
        if "api_key" not in methods:
            raise NotAuthenticated(
                "An X-API-Key was sent but no API keys are configured here. " + _HOW_TO_CONFIGURE
            )
        if not _key_matches(api_key):
            raise NotAuthenticated("Invalid API key.", code=ErrorCode.INVALID_API_KEY)
        return Caller("api_key", None, key_id=_fingerprint(api_key))
    if "none" in methods:
        return Caller("none", None)
    if not methods:
        raise NotAuthenticated(
            "The Code API has no authentication configured, so it refuses every call. "
            + _HOW_TO_CONFIGURE
        )
    wanted = " or ".join(
        {"jwt": "Authorization: Bearer <LibreChat JWT>", "api_key": "X-API-Key"}[method]
        for method in sorted(methods)
    )
    raise NotAuthenticated(f"Authentication required: send {wanted}.")


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _key_matches(candidate: str) -> bool:
    given = candidate.encode()
    matched = False
    for key in settings.CODE_INTERPRETER_API_KEYS:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


# -- LibreChat's JWT ---------------------------------------------------------------------------


def verify_jwt(token: str) -> str:
    """The ``sub`` of a valid LibreChat Code API token; NotAuthenticated otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise NotAuthenticated(
            "Invalid token: not a JWT.", code=ErrorCode.TOKEN_NOT_VALID
        ) from None
    algorithm = header.get("alg")
    if algorithm not in settings.CODE_INTERPRETER_JWT_ALGORITHMS:
        raise NotAuthenticated(
            f"Invalid token: algorithm {algorithm!r} is not accepted.",
            code=ErrorCode.TOKEN_NOT_VALID,
        )
    key = _key_for(header.get("kid"))
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=settings.CODE_INTERPRETER_JWT_AUDIENCE,
            issuer=settings.CODE_INTERPRETER_JWT_ISSUER,
            leeway=settings.CODE_INTERPRETER_JWT_LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("Invalid token: expired.", code=ErrorCode.TOKEN_EXPIRED) from None
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise NotAuthenticated(f"Invalid token: {exc}.", code=ErrorCode.TOKEN_NOT_VALID) from None
    lifetime = claims["exp"] - claims["iat"]
    if lifetime > settings.CODE_INTERPRETER_JWT_MAX_LIFETIME_S:
        raise NotAuthenticated(
            f"Invalid token: its lifetime of {lifetime} s exceeds "
            f"{settings.CODE_INTERPRETER_JWT_MAX_LIFETIME_S} s.",
            code=ErrorCode.TOKEN_NOT_VALID,
        )
    subject = user_hint(claims["sub"])
    if subject is None:
        raise NotAuthenticated(
            "Invalid token: sub is not a user id.", code=ErrorCode.TOKEN_NOT_VALID
        )
    return subject


def _key_for(kid: object) -> Any:
    keys = _public_keys(settings.CODE_INTERPRETER_JWT_PUBLIC_KEY)
    if len(keys) == 1 and None in keys:
        return keys[None]
    if isinstance(kid, str) and kid in keys:
        return keys[kid]
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    raise NotAuthenticated(
        f"Invalid token: unknown key id {kid!r}.", code=ErrorCode.TOKEN_NOT_VALID
    )


@lru_cache(maxsize=4)
def _public_keys(raw: str) -> dict[str | None, Any]:
    """PEM, a JWK or a JWKS (keyed by ``kid``); ``\\n`` escapes are allowed in one-line values."""
    text = raw.replace("\\n", "\n").strip()
    try:
        if text.startswith("{"):
            data = json.loads(text)
            if "keys" in data:
                return {jwk.get("kid"): jwt.PyJWK(jwk).key for jwk in data["keys"]}
            return {None: jwt.PyJWK(data).key}
        return {None: load_pem_public_key(text.encode())}
    except (ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
        raise ImproperlyConfigured(
            f"CODE_INTERPRETER_JWT_PUBLIC_KEY is not a PEM public key, a JWK or a JWKS: {exc}"
        ) from exc


def check_public_key() -> str | None:
    """Why the configured public key cannot be used, or None (for the system check)."""
    if not settings.CODE_INTERPRETER_JWT_PUBLIC_KEY:
        return None
    try:
        _public_keys(settings.CODE_INTERPRETER_JWT_PUBLIC_KEY)
    except ImproperlyConfigured as exc:
        return str(exc)
    return None
