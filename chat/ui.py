"""The chat page: a server-rendered shell; chat/static/chat/ talks to /api/chat/* from the browser.

The page holds no LibreChat data. It renders the user's provisioning state so a pending account
shows its banner (and a disabled composer) from the first paint, and the CSRF cookie the
browser sends back as `X-CSRFToken` on every unsafe call through the proxy.

The page answers with a strict Content-Security-Policy: scripts, styles, fetches and media from
our origin only (the import map, the one inline script, carries a per-response nonce), images
also from `blob:` (files shown through object URLs) and `data:`, no plugins, no framing. Model
output is sanitised in chat/static/chat/markdown.js already (foreign images become links);
the policy makes sure that nothing it let through can load from, or send to, another site.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from users.models import ProvisioningState, User
from users.selectors import chat_account_status

# How often a page whose chat account is not ready yet asks /api/users/me/ again.
PROVISIONING_POLL_MS = 1500


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@require_GET
@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest, conversation_id: str | None = None) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    nonce = secrets.token_urlsafe(18)
    context = {
        "csp_nonce": nonce,
        "conversation_id": conversation_id or "",
        "provisioning_state": user.provisioning_state,
        "provisioning_active": user.provisioning_state == ProvisioningState.ACTIVE,
        # What is true about the chat account and what to do (the banner's words).
        "chat_account": chat_account_status(user),
        "provisioning_poll_ms": PROVISIONING_POLL_MS,
        # Builds download URLs for file records that do not name their owner.
        "librechat_user_id": user.librechat_user_id,
    }
    response = render(request, "chat/chat.html", context)
    response["Content-Security-Policy"] = content_security_policy(nonce)
    return response
