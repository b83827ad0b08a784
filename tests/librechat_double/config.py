"""Knobs of the LibreChat double, named after the LibreChat environment variables they mirror."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .releases import RELEASES

# Long enough that PyJWT never warns about short HMAC keys; test-only values.
DEFAULT_JWT_SECRET = "librechat-double-jwt-secret-0123456789abcdef0123456789abcdef"
DEFAULT_JWT_REFRESH_SECRET = "librechat-double-jwt-refresh-secret-0123456789abcdef01234567"


@dataclass
class DoubleConfig:
    """Mutable on purpose: a test may flip a knob on a running double and the next request sees it.

    Durations are in seconds (LibreChat's own variables are in minutes or milliseconds).
    """

    # The LibreChat release answered like (releases.py): 0.8.7 or 0.8.8.
    version: str = "0.8.8"
    # /api/config buildInfo.branch: "auto" is the release's tag (v0.8.8), "" leaves buildInfo
    # out (an image without git metadata, or interface.buildInfo: false).
    build_branch: str = "auto"
    # ALLOW_EMAIL_LOGIN (unset means allowed) and ALLOW_EMAIL_LOGIN_OVERRIDE: from 0.8.8 the
    # former also refuses password log-ins, unless the latter is on.
    allow_email_login: bool = True
    allow_email_login_override: bool = False
    # Steering (0.8.8): the longest steer text and the undrained steers per run.
    steer_max_length: int = 10000
    steer_queue_max: int = 5
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
    # Reverse proxies in front of LibreChat (nginx with $proxy_add_x_forwarded_for): each appends
    # the address it saw to X-Forwarded-For, so with one of them TRUST_PROXY must be 2, or every
    # caller of the BFF shares the BFF's address. The double appends the socket peer this often.
    proxies_in_front: int = 0
    # User-Agents (a regex, searched case-insensitively) that uaParser treats as non-browsers
    # although ua-parser-js v1 names a browser in them: stands in for a LibreChat whose
    # ua-parser-js release disagrees with the table in user_agent.py. Empty: none.
    non_browser_user_agent_pattern: str = ""
    # The Mongo round trip between finding a session and storing its new hash: two refreshes
    # with one cookie inside this gap both succeed, and only the last new token survives.
    session_store_latency_s: float = 0.005
    # registerUser sleeps this long before answering a duplicate e-mail (1 s in LibreChat).
    duplicate_delay_s: float = 1.0
    # Mail configured: new users start with emailVerified=false and cannot log in (422).
    email_verification_required: bool = False
    # ALLOW_UNVERIFIED_EMAIL_LOGIN.
    allow_unverified_email_login: bool = False
    # ALLOW_ACCOUNT_DELETION: unset means allowed (canDeleteAccount's default is `true`).
    allow_account_deletion: bool = True
    # librechat.yaml registration.allowedDomains; None or empty means every domain.
    allowed_domains: tuple[str, ...] | None = None
    # SESSION_COOKIE_SECURE (adds `Secure` to the auth cookies).
    secure_cookies: bool = False
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_refresh_secret: str = DEFAULT_JWT_REFRESH_SECRET
    app_title: str = "LibreChat"
    server_domain: str = "http://localhost:3080"

    # -- chat API ------------------------------------------------------------------------------
    # LIMIT_MESSAGE_IP / MESSAGE_IP_MAX / MESSAGE_IP_WINDOW (.env.example: on, 40 per minute),
    # LIMIT_MESSAGE_USER / MESSAGE_USER_MAX / MESSAGE_USER_WINDOW (.env.example: off).
    limit_message_ip: bool = True
    message_ip_max: int = 40
    message_ip_window_s: float = 60.0
    limit_message_user: bool = False
    message_user_max: int = 40
    message_user_window_s: float = 60.0
    # MESSAGE_VIOLATION_SCORE (logViolation's default score when unset).
    message_violation_score: int = 1
    # LIMIT_CONCURRENT_MESSAGES / CONCURRENT_MESSAGE_MAX / CONCURRENT_VIOLATION_SCORE.
    limit_concurrent_messages: bool = True
    concurrent_message_max: int = 2
    concurrent_violation_score: int = 1
    # FILE_UPLOAD_IP_MAX / _WINDOW and FILE_UPLOAD_USER_MAX / _WINDOW (per 15 minutes).
    file_upload_ip_max: int = 100
    file_upload_ip_window_s: float = 900.0
    file_upload_user_max: int = 50
    file_upload_user_window_s: float = 900.0
    # fileConfig.serverFileSizeLimit (multer), 512 MB by default.
    file_size_limit_bytes: int = 512 * 1024 * 1024
    # balance.enabled in librechat.yaml: off means GET /api/balance answers 204.
    balance_enabled: bool = False
    # Built-in endpoints whose key is `user_provided` in LibreChat's .env (its .env.example has
    # OPENAI_API_KEY, ANTHROPIC_API_KEY and GOOGLE_KEY so): listed with `userProvide: true` and
    # their default models, and a chat on them fails with `no_user_key` (no key is stored).
    user_provided_endpoints: tuple[str, ...] = ()
    # A failed generation job stays subscribable until the next 60 s cleanup sweep.
    stream_error_job_ttl_s: float = 60.0
    # The generated title is cached this long for GET /api/convos/gen_title/:id ...
    title_cache_ttl_s: float = 120.0
    # ... which polls the cache with this back-off (500 ms, 1, 2, 4, 8 s: ~15.5 s) before 404.
    gen_title_poll_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)

    # -- the scripted fake model behind the custom endpoint (see fake_model.py) --------------
    fake_endpoint: str = "Fake"
    fake_model: str = "fake-model"
    # More models the custom endpoint lists after `fake_model` (the fake answers for any).
    fake_more_models: tuple[str, ...] = ()
    fake_title: str = "Fake Chat Title"
    # Agent initialisation before the `created` event (about 40 ms on the captures).
    fake_start_delay_s: float = 0.04
    # Plain replies stream one word per token delay; `SLOW` replies use the slow delay.
    fake_token_delay_s: float = 0.1
    fake_slow_token_delay_s: float = 0.5
    fake_slow_token_count: int = 40
    # The title event follows `created` after this long; `final` follows the last delta.
    fake_title_delay_s: float = 0.013
    fake_final_delay_s: float = 0.03
    # `LLMERROR`: LibreChat retries the upstream 500 silently for ~106.6 s before `final`.
    fake_llm_error_delay_s: float = 106.6

    def update(self, **changes: Any) -> None:
        """Set known fields; strings (CLI, control endpoint) are coerced to the field's type."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown DoubleConfig field: {name}")
            if name == "version" and str(value).removeprefix("v") not in RELEASES:
                raise ValueError(f"version must be one of {', '.join(RELEASES)}, not {value!r}")
            setattr(self, name, _coerce(getattr(self, name), value, name))
        self.version = self.version.removeprefix("v")

    def replace_with(self, other: DoubleConfig) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(other, item.name))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Tuples of names (other tuples hold numbers).
_NAME_TUPLES = {"user_provided_endpoints", "fake_more_models"}


def _coerce(current: Any, value: Any, name: str) -> Any:
    if name in _NAME_TUPLES:
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(item).strip() for item in items if str(item).strip())
    if name == "allowed_domains":
        if value is None or value == "":
            return None
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(item).strip().lower() for item in items if str(item).strip())
    if isinstance(current, tuple):
        items = value.split(",") if isinstance(value, str) else value
        return tuple(float(item) for item in items if str(item).strip())
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
