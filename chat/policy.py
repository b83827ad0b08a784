"""Which LibreChat routes the proxy refuses: those that would desync identity or escalate."""

from __future__ import annotations

import re

# (pattern on the path after /api/, HTTP methods or None for all, why)
_REFUSED: list[tuple[re.Pattern[str], frozenset[str] | None, str]] = [
    (
        re.compile(r"^auth(/|$)"),
        None,
        "LibreChat's own log-in, registration and password routes are off limits: your account "
        "is managed here.",
    ),
    (
        re.compile(r"^admin(/|$)"),
        None,
        "LibreChat's admin API is not available through this proxy.",
    ),
    (
        re.compile(r"^user/delete/?$"),
        None,
        "Delete your account here, not in LibreChat, so both stay in sync.",
    ),
    (re.compile(r"^user/verify/?$"), None, "E-mail verification is managed here."),
    (
        re.compile(r"^user/(email|password)(/|$)"),
        None,
        "E-mail and password changes are made here, not in LibreChat.",
    ),
    (
        re.compile(r"^api-keys(/|$)"),
        None,
        "LibreChat API keys would bypass this proxy and are not available.",
    ),
    (
        re.compile(r"^roles(/|$)"),
        frozenset({"POST", "PUT", "PATCH", "DELETE"}),
        "Changing LibreChat roles is not available through this proxy.",
    ),
]


def refusal(path: str, method: str) -> str | None:
    """The reason a request to LibreChat's ``/api/<path>`` is refused, or None if it may pass."""
    normalized = path.lstrip("/")
    if ".." in normalized.split("/") or "//" in normalized:
        return "Malformed path."
    for pattern, methods, why in _REFUSED:
        if pattern.search(normalized) and (methods is None or method in methods):
            return why
    return None
