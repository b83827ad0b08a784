"""The chat page: a server-rendered shell; chat/static/chat/ talks to /api/chat/* from the browser.

The page holds no LibreChat data. It renders the user's provisioning state so a pending account
shows its banner (and a disabled composer) from the first paint, and the CSRF cookie the
browser sends back as `X-CSRFToken` on every unsafe call through the proxy.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from users.models import ProvisioningState, User

# How often a page whose chat account is not ready yet asks /api/users/me/ again.
PROVISIONING_POLL_MS = 1500


@require_GET
@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest, conversation_id: str | None = None) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    context = {
        "conversation_id": conversation_id or "",
        "provisioning_state": user.provisioning_state,
        "provisioning_active": user.provisioning_state == ProvisioningState.ACTIVE,
        "provisioning_poll_ms": PROVISIONING_POLL_MS,
        # Builds download URLs for file records that do not name their owner.
        "librechat_user_id": user.librechat_user_id,
    }
    return render(request, "chat/chat.html", context)
