"""express-rate-limit v8 with its default MemoryStore and default headers, as LibreChat uses it.

LibreChat's limiters pass only windowMs/max/handler/keyGenerator, so the library defaults hold:
legacy `X-RateLimit-*` headers on every response that passes the limiter, no `RateLimit-*`
draft headers, and `Retry-After` on the 429. Every request counts, including successful
logins and the rejected ones; a key's window starts at its first hit (fixed window).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class RateLimitInfo:
    limit: int
    used: int
    reset_at: float

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit


class FixedWindowLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window_s: float, now: float) -> RateLimitInfo:
        with self._lock:
            used, reset_at = self._windows.get(key, (0, now + window_s))
            if reset_at <= now:
                used, reset_at = 0, now + window_s
            used += 1
            self._windows[key] = (used, reset_at)
        return RateLimitInfo(limit=limit, used=used, reset_at=reset_at)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


# One limiter of a stack: the limiter, the key (IP or user id), max, window and a name for it.
StackedLimit = tuple[FixedWindowLimiter, str, int, float, str]


def legacy_headers(info: RateLimitInfo) -> Headers:
    return [
        ("X-RateLimit-Limit", str(info.limit)),
        ("X-RateLimit-Remaining", str(info.remaining)),
        ("X-RateLimit-Reset", str(math.ceil(info.reset_at))),
    ]


def retry_after_header(info: RateLimitInfo, *, now: float) -> tuple[str, str]:
    return ("Retry-After", str(max(0, math.ceil(info.reset_at - now))))


def hit_stacked(
    limits: Iterable[StackedLimit], clock: Callable[[], float]
) -> tuple[Headers, tuple[str, int, float] | None]:
    """Limiters stacked as middlewares (per IP, then per user): a later one's headers replace an
    earlier one's; the first one exceeded ends the chain with Retry-After added.

    Answers the headers and, when one was exceeded, its name, max and window.
    """
    headers: dict[str, str] = {}
    for limiter, key, limit, window_s, name in limits:
        info = limiter.hit(key, limit=limit, window_s=window_s, now=clock())
        headers.update(legacy_headers(info))
        if info.exceeded:
            header, value = retry_after_header(info, now=clock())
            headers[header] = value
            return list(headers.items()), (name, limit, window_s)
    return list(headers.items()), None


def window_in_minutes(window_s: float) -> str:
    """How JavaScript prints `windowMs / 60000` inside the limiter messages (60, 5, 0.05...)."""
    minutes = window_s / 60
    return str(int(minutes)) if float(minutes).is_integer() else repr(minutes)


def login_limit_message(window_s: float) -> str:
    return f"Too many login attempts, please try again after {window_in_minutes(window_s)} minutes."


def register_limit_message(window_s: float) -> str:
    return (
        f"Too many accounts created, please try again after {window_in_minutes(window_s)} minutes"
    )
