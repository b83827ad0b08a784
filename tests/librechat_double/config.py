"""Knobs of the LibreChat double, named after the LibreChat environment variables they mirror."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Long enough that PyJWT never warns about short HMAC keys; test-only values.
DEFAULT_JWT_SECRET = "librechat-double-jwt-secret-0123456789abcdef0123456789abcdef"
DEFAULT_JWT_REFRESH_SECRET = "librechat-double-jwt-refresh-secret-0123456789abcdef01234567"


@dataclass
class DoubleConfig:
    """Mutable on purpose: a test may flip a knob on a running double and the next request sees it.

    Durations are in seconds (LibreChat's own variables are in minutes or milliseconds).
    """

    # ALLOW_REGISTRATION: LibreChat only accepts the exact string "true"; here it is a bool.
    allow_registration: bool = True
    # MIN_PASSWORD_LENGTH (login and register schemas). Absent from /api/config while at 8.
    min_password_length: int = 8
    # REGISTER_MAX / REGISTER_WINDOW and LOGIN_MAX / LOGIN_WINDOW, both per IP.
    register_max: int = 5
    register_window_s: float = 3600.0
    login_max: int = 7
    login_window_s: float = 300.0
    # SESSION_EXPIRY (access JWT) and REFRESH_TOKEN_EXPIRY (session, absolute).
    session_expiry_s: float = 900.0
    refresh_expiry_s: float = 604800.0
    # BAN_VIOLATIONS, BAN_DURATION, BAN_INTERVAL, NON_BROWSER_VIOLATION_SCORE.
    ban_violations: bool = True
    ban_duration_s: float = 7200.0
    ban_interval: int = 20
    non_browser_violation_score: int = 20
    # TRUST_PROXY: LibreChat uses `Number(TRUST_PROXY) || 1`, so 0 behaves like 1.
    trust_proxy: int = 1
    # The Mongo round trip between finding a session and storing its new hash: two refreshes
    # with one cookie inside this gap both succeed, and only the last new token survives.
    session_store_latency_s: float = 0.005
    # registerUser sleeps this long before answering a duplicate e-mail (1 s in LibreChat).
    duplicate_delay_s: float = 1.0
    # Mail configured: new users start with emailVerified=false and cannot log in (422).
    email_verification_required: bool = False
    # ALLOW_UNVERIFIED_EMAIL_LOGIN.
    allow_unverified_email_login: bool = False
    # librechat.yaml registration.allowedDomains; None or empty means every domain.
    allowed_domains: tuple[str, ...] | None = None
    # SESSION_COOKIE_SECURE (adds `Secure` to the auth cookies).
    secure_cookies: bool = False
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_refresh_secret: str = DEFAULT_JWT_REFRESH_SECRET
    app_title: str = "LibreChat"
    server_domain: str = "http://localhost:3080"

    def update(self, **changes: Any) -> None:
        """Set known fields; strings (CLI, control endpoint) are coerced to the field's type."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown DoubleConfig field: {name}")
            setattr(self, name, _coerce(getattr(self, name), value, name))

    def replace_with(self, other: DoubleConfig) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(other, item.name))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(current: Any, value: Any, name: str) -> Any:
    if name == "allowed_domains":
        if value is None or value == "":
            return None
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(item).strip().lower() for item in items if str(item).strip())
    if not isinstance(value, str):
        return value
    if isinstance(current, bool):
        if value.lower() not in {"true", "false", "1", "0"}:
            raise ValueError(f"{name} expects true/false, got {value!r}")
        return value.lower() in {"true", "1"}
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    return value
