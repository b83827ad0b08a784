"""Failure modes a test can switch the double into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

ModeName = Literal["ok", "down", "crash", "slow", "error500", "ratelimit429"]
MODE_NAMES: tuple[str, ...] = get_args(ModeName)
# Modes in which nothing listens on the port.
GONE = frozenset({"down", "crash"})


@dataclass(frozen=True)
class FailureMode:
    """One mode at a time.

    - ok: behave like LibreChat.
    - down: nothing listens on the port (handled by the server, not the app).
    - crash: as down, but like a SIGKILL: open connections (a stream mid-answer) are cut at
      once, without the end of their chunked body, instead of being let finish.
    - slow: every response (control endpoints excepted) waits `seconds` first.
    - error500: paths under `path_prefix` answer 500 {"message":"Something went wrong"}.
    - ratelimit429: paths under `path_prefix` answer 429 like LibreChat's limiters, with
      `Retry-After: retry_after_s`; `limit` overrides the X-RateLimit-Limit value.
    """

    name: ModeName = "ok"
    seconds: float = 0.0
    path_prefix: str = "/api/"
    retry_after_s: int = 60
    limit: int | None = None
    # Only for "down" started from the control endpoint: come back after this long.
    duration_s: float | None = None

    @classmethod
    def build(cls, name: str, **opts: Any) -> FailureMode:
        if name not in MODE_NAMES:
            raise ValueError(f"unknown mode {name!r}; expected one of {', '.join(MODE_NAMES)}")
        allowed = {
            "ok": set(),
            "down": {"duration_s"},
            "crash": {"duration_s"},
            "slow": {"seconds"},
            "error500": {"path_prefix"},
            "ratelimit429": {"path_prefix", "retry_after_s", "limit"},
        }[name]
        unknown = set(opts) - allowed
        if unknown:
            raise ValueError(f"mode {name!r} takes no option(s) {', '.join(sorted(unknown))}")
        if name == "slow" and float(opts.get("seconds", 0)) <= 0:
            raise ValueError("mode 'slow' needs seconds > 0")
        typed: dict[str, Any] = {}
        for key, value in opts.items():
            if key in {"seconds", "duration_s"} and value is not None:
                typed[key] = float(value)
            elif key in {"retry_after_s", "limit"} and value is not None:
                typed[key] = int(value)
            else:
                typed[key] = value
        return cls(name=cast(ModeName, name), **typed)

    def applies_to(self, path: str) -> bool:
        return path.startswith(self.path_prefix)
