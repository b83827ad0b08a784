"""Cookies as Express writes them (`res.cookie`, `res.clearCookie`) and `cookie` parses them."""

from __future__ import annotations

from email.utils import formatdate
from urllib.parse import quote, unquote

# Express serialises with encodeURIComponent; these are the characters it leaves alone.
_URI_COMPONENT_SAFE = "-_.!~*'()"

# What LibreChat v0.8.7's logout clears, in the order observed on the wire.
LOGOUT_CLEARED_COOKIES = (
    "openid_access_token",
    "openid_id_token",
    "openid_user_id",
    "refreshToken",
    "token_provider",
)


def http_date(moment: float) -> str:
    """Date.toUTCString(): whole seconds, always GMT."""
    return formatdate(moment, usegmt=True)


def auth_cookie(name: str, value: str, *, expires_at: float, secure: bool) -> str:
    """The refreshToken / token_provider cookie of `setAuthTokens`."""
    parts = [
        f"{name}={quote(value, safe=_URI_COMPONENT_SAFE)}",
        "Path=/",
        f"Expires={http_date(expires_at)}",
        "HttpOnly",
    ]
    if secure:
        parts.append("Secure")
    parts.append("SameSite=Strict")
    return "; ".join(parts)


def cleared_cookie(name: str) -> str:
    """`res.clearCookie(name)` in Express 5: empty value, expired at the epoch."""
    return f"{name}=; Path=/; Expires={http_date(0)}"


def parse_cookie_header(header: str | None) -> dict[str, str]:
    """`cookie.parse`: the first occurrence of a name wins, quotes stripped, %-escapes decoded."""
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            continue
        name = name.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name and name not in cookies:
            cookies[name] = unquote(value) if "%" in value else value
    return cookies
