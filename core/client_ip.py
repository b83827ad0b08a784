"""The end user's IP as our server sees it, through ``TRUSTED_PROXY_COUNT`` reverse proxies.

Only the entries our own proxies appended to X-Forwarded-For are trusted; anything further left
was written by the client and could be forged to dodge per-IP limits (ours and LibreChat's).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def client_ip(request: Any) -> str:
    meta = request.META
    peer = str(meta.get("REMOTE_ADDR") or "0.0.0.0")  # noqa: S104 (a placeholder, not a bind)
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return peer
    forwarded = [
        hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()
    ]
    if not forwarded:
        return peer
    # Each trusted proxy appended the address it saw; the right-most `proxies` entries are theirs.
    index = max(len(forwarded) - proxies, 0)
    return str(forwarded[index])
