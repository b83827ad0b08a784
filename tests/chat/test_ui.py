"""The chat page's server side (chat/ui.py); what it does in a browser is in tests/browser/."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_legacy_user
from users.models import ProvisioningState

pytestmark = pytest.mark.django_db


def test_the_page_needs_a_login(client: Client) -> None:
    response = client.get("/chat/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/chat/"
    assert client.get("/chat/c/abc/")["Location"] == "/accounts/login/?next=/chat/c/abc/"


def test_a_pending_account_gets_the_banner_and_a_csrf_cookie(client: Client) -> None:
    client.force_login(make_legacy_user())
    response = client.get("/chat/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-provisioning-state="pending"' in html
    assert '<div id="banner-provisioning" class="banner banner-warn" role="status" >' in html
    assert "csrftoken" in response.cookies  # sent back as X-CSRFToken through the proxy
    assert 'src="/static/chat/app.js"' in html


def test_an_active_account_opens_a_conversation_by_its_url(client: Client) -> None:
    user = make_legacy_user(
        provisioning_state=ProvisioningState.ACTIVE, librechat_user_id="6650f0c2a1b2c3d4e5f60718"
    )
    client.force_login(user)
    response = client.get('/chat/c/a"b<c/')
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-conversation-id="a&quot;b&lt;c"' in html
    assert 'data-librechat-user-id="6650f0c2a1b2c3d4e5f60718"' in html
    assert 'role="status" hidden>' in html


def test_only_get(client: Client) -> None:
    client.force_login(make_legacy_user())
    assert client.post("/chat/").status_code == 405


def test_the_page_has_a_strict_content_security_policy(client: Client) -> None:
    client.force_login(make_legacy_user(provisioning_state=ProvisioningState.ACTIVE))
    first, second = client.get("/chat/"), client.get("/chat/")
    policy = first["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' blob: data:"  # no remote images (model output)
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'self'"
    # The import map, the only inline script, carries this response's nonce.
    nonce = directives["script-src"].removeprefix("'self' 'nonce-").removesuffix("'")
    assert len(nonce) >= 16
    assert f'<script type="importmap" nonce="{nonce}">' in first.content.decode()
    assert "unsafe-inline" not in policy
    assert second["Content-Security-Policy"] != policy  # a fresh nonce per response
    assert first.content.decode().count("<script") == 2  # the import map and app.js
