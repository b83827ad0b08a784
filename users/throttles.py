"""Cache-backed throttles: on Redis the limits hold across every web process."""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

from core.client_ip import client_ip
from users.managers import normalize_email


class _IPThrottle(SimpleRateThrottle):
    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class _AccountThrottle(SimpleRateThrottle):
    """Keyed on the e-mail in the body, so one account cannot be hammered from many IPs."""

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        data = request.data if hasattr(request, "data") else request.POST
        # The web log-in form posts the e-mail as `username` (Django's AuthenticationForm).
        email = (data.get("email") or data.get("username")) if hasattr(data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return None
        # Hashed: the e-mail is unvalidated client input (any length, any characters), and a
        # cache key must stay short and printable (schemathesis sent control characters).
        ident = hashlib.sha256(normalize_email(email).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginIPThrottle(_IPThrottle):
    scope = "login_ip"


class LoginAccountThrottle(_AccountThrottle):
    scope = "login_account"


class RegisterIPThrottle(_IPThrottle):
    scope = "register_ip"


class RegisterAccountThrottle(_AccountThrottle):
    scope = "register_account"


class LibreChatPasswordThrottle(UserRateThrottle):
    scope = "librechat_password"


class PasswordCheckThrottle(UserRateThrottle):
    """A signed-in user confirming their password (deleting the account): a log-in's rate."""

    scope = "login_account"


def throttle_wait(throttles: list[SimpleRateThrottle], request: Any) -> float | None:
    """Run throttles outside DRF (the web forms); return seconds to wait, or None if allowed."""
    no_view: Any = None  # our throttles key on the request alone
    waits = [t.wait() or 1.0 for t in throttles if not t.allow_request(request, no_view)]
    return max(waits) if waits else None
