"""Identifiers and JWTs shaped like LibreChat's (Mongo ObjectIds, jsonwebtoken HS256 tokens)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import jwt

# jsonwebtoken accepts every HMAC algorithm when verifying with a shared secret.
_HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"]

_object_id_counter = itertools.count(secrets.randbelow(0xFFFFFF))
_object_id_lock = threading.Lock()
_PROCESS_RANDOM = secrets.token_hex(5)


def new_object_id(now: float) -> str:
    """24 hex chars laid out like a BSON ObjectId: seconds, per-process random, counter."""
    with _object_id_lock:
        counter = next(_object_id_counter) & 0xFFFFFF
    return f"{int(now) & 0xFFFFFFFF:08x}{_PROCESS_RANDOM}{counter:06x}"


def is_object_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 24
        and all(c in "0123456789abcdefABCDEF" for c in value)
    )


def sha256_hex(text: str) -> str:
    """What LibreChat stores for refresh tokens and invites (`hashToken`)."""
    return hashlib.sha256(text.encode()).hexdigest()


def iso_timestamp(moment: float) -> str:
    """JavaScript's Date.toISOString(): millisecond precision, `Z` suffix."""
    stamp = datetime.fromtimestamp(moment, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def sign_jwt(payload: dict[str, Any], secret: str, *, now: float, expires_in_s: float) -> str:
    """jsonwebtoken's `jwt.sign(payload, secret, {expiresIn})`: whole-second iat, exp = iat + n."""
    issued_at = math.floor(now)
    expires_at = issued_at + expires_in_s
    claims = {
        **payload,
        "iat": issued_at,
        "exp": int(expires_at) if float(expires_at).is_integer() else expires_at,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class JwtRejected(Exception):
    """Carries jsonwebtoken's error message, which LibreChat passes through to clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_jwt(token: str, secret: str, *, now: float) -> dict[str, Any]:
    """Verify like jsonwebtoken, against the double's clock instead of the wall clock."""
    if not token:
        raise JwtRejected("jwt must be provided")
    if len(token.split(".")) != 3:
        raise JwtRejected("jwt malformed")
    if not token.split(".")[2]:
        raise JwtRejected("jwt signature is required")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=_HMAC_ALGORITHMS,
            # Time claims are checked below, against the double's (possibly advanced) clock.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidSignatureError as error:
        raise JwtRejected("invalid signature") from error
    except jwt.InvalidAlgorithmError as error:
        raise JwtRejected("invalid algorithm") from error
    except (jwt.InvalidTokenError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise JwtRejected("invalid token") from error
    if not isinstance(claims, dict):
        raise JwtRejected("invalid token")
    expires_at = claims.get("exp")
    if isinstance(expires_at, int | float) and math.floor(now) >= expires_at:
        raise JwtRejected("jwt expired")
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and math.floor(now) < not_before:
        raise JwtRejected("jwt not active")
    return claims
