"""Deactivation and reactivation, end to end: our app under uvicorn, DBOS, the LibreChat double.

Deactivated: every API refuses the user at once (the chat proxy within a second, whatever its
per-process cache holds), also with a JWT issued before; refresh tokens are blacklisted; web
sessions end; LibreChat's session is logged out (the double sees it) and our copy of its tokens
is deleted. Reactivated: a new log-in works with the same LibreChat account.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from chat import sessions
from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer
from users.lifecycle import account_deactivate, account_reactivate
from users.models import EMAIL_CHANGE_REFUSED, User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(librechat: LibreChatDouble, workflows: str, settings: Any) -> Any:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    with AppServer() as app:
        yield app


@pytest.fixture
def ada(librechat: LibreChatDouble) -> User:
    return activate(make_legacy_user(email="ada@example.com", name="Ada"), librechat)


@pytest.fixture
def staff(api_client: APIClient) -> APIClient:
    admin = make_legacy_user(email="staff@example.com", is_staff=True)
    api_client.force_authenticate(admin)
    return api_client


def tokens(user: User) -> tuple[str, str]:
    refresh = RefreshToken.for_user(user)
    return str(refresh.access_token), str(refresh)


def bearer(server: AppServer, access: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {access}"}, timeout=30
    )


def stored_session(user: User) -> Any:
    return cache.get(f"librechat:session:{user.pk}")


def test_deactivation_reaches_every_api_and_librechat(
    server: AppServer, librechat: LibreChatDouble, ada: User, staff: APIClient
) -> None:
    access, refresh = tokens(ada)
    with bearer(server, access) as client:
        # A proxied request: the proxy now holds Ada in its user cache, and a LibreChat session.
        assert client.get("/api/chat/user").status_code == 200
        assert stored_session(ada) is not None
        [live] = librechat.state.sessions_of(ada.email)

        response = staff.post(f"/api/users/{ada.pk}/deactivate/")
        deactivated_at = time.monotonic()
        assert response.status_code == 200
        assert response.json()["is_active"] is False

        def refused() -> int:
            status = client.get("/api/chat/user").status_code
            return status if status != 200 else 0

        assert wait_for(refused, timeout=2.0, interval=0.01, message="the proxy refusing") == 403
        assert time.monotonic() - deactivated_at < 1.0
        body = client.get("/api/chat/convos").json()
        assert body["error"]["code"] == "account_inactive"
        # Every other API, with the JWT issued before: refused at once.
        assert client.get("/api/users/librechat-password/").status_code == 403
        assert client.get("/api/users/me/").status_code == 403
        assert client.post("/api/auth/token/refresh/", json={"refresh": refresh}).status_code == 401
        assert (
            client.post(
                "/api/auth/token/", json={"email": ada.email, "password": DEFAULT_PASSWORD}
            ).status_code
            == 401
        )

    # LibreChat's session was logged out with its refresh cookie, and our copy is gone. (A
    # request let in by the proxy's user cache meanwhile may have opened another session: it is
    # logged out as soon as it is opened, so none is left.)
    wait_for(lambda: not librechat.state.sessions_of(ada.email), message="no LibreChat session")
    wait_for(lambda: stored_session(ada) is None, message="the stored session forgotten")
    logouts = librechat.state.requests_to("/api/auth/logout")
    assert logouts
    assert all("refreshToken=" in (r.header("cookie") or "") for r in logouts)
    assert {r.status for r in logouts} == {200}
    assert live.id not in {s.id for s in librechat.state.sessions_of(ada.email)}
    assert librechat.state.get_user(ada.email) is not None  # the account itself stays


def test_reactivation_needs_a_new_log_in_and_keeps_the_librechat_account(
    server: AppServer, librechat: LibreChatDouble, ada: User, staff: APIClient
) -> None:
    old_access, _ = tokens(ada)
    staff.post(f"/api/users/{ada.pk}/deactivate/")
    wait_for(lambda: librechat.state.logout_calls == 1 or stored_session(ada) is None)
    assert staff.post(f"/api/users/{ada.pk}/reactivate/").json()["is_active"] is True
    time.sleep(1.1)  # tokens carry whole seconds: the revocation's second refuses them all

    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        login = anonymous.post(
            "/api/auth/token/", json={"email": ada.email, "password": DEFAULT_PASSWORD}
        )
    assert login.status_code == 200
    with bearer(server, old_access) as old:
        revoked = old.get("/api/chat/user")
        assert revoked.status_code == 401
        assert revoked.json()["error"]["code"] == "token_not_valid"
        assert old.get("/api/users/me/").status_code == 401
    with bearer(server, login.json()["access"]) as new:
        response = new.get("/api/chat/user")
    assert response.status_code == 200, response.text
    assert response.json()["_id"] == ada.librechat_user_id  # the same LibreChat account
    assert librechat.state.accounts_created == 0  # seeded by activate(); none made since
    assert librechat.state.register_calls == 0


def test_deactivation_ends_web_sessions_for_good(librechat: LibreChatDouble, ada: User) -> None:
    browser = Client()
    assert browser.login(email=ada.email, password=DEFAULT_PASSWORD)
    assert browser.get("/accounts/").status_code == 200
    account_deactivate(user=ada)
    assert browser.get("/accounts/").status_code == 302
    account_reactivate(user=User.objects.get(pk=ada.pk))
    # The old session does not come back with the account; logging in again works.
    assert browser.get("/accounts/").status_code == 302
    assert browser.login(email=ada.email, password=DEFAULT_PASSWORD)
    assert browser.get("/accounts/").status_code == 200


def test_the_admin_active_box_and_actions_deactivate_the_same_way(
    client: Client, librechat: LibreChatDouble, workflows: str, ada: User
) -> None:
    admin = make_legacy_user(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(admin)
    bob = activate(make_legacy_user(email="bob@example.com", name="Bob"), librechat)
    for user in (ada, bob):
        sessions.session_end(user_id=user.pk)  # nothing stored yet: nothing to log out
    page = client.get(f"/admin/users/user/{ada.pk}/change/")
    assert page.status_code == 200
    form = {
        "email": ada.email,
        "name": ada.name,
        "is_staff": "",
        "is_superuser": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }  # "is_active" left out: the box unticked
    response = client.post(f"/admin/users/user/{ada.pk}/change/", form)
    assert response.status_code == 302, response.content
    action = client.post(
        "/admin/users/user/", {"action": "deactivate", "_selected_action": [bob.pk]}, follow=True
    )
    assert b"Deactivated 1 user(s)." in action.content
    for user in (ada, bob):
        user.refresh_from_db()
        assert user.is_active is False
        assert user.credentials_revoked_at is not None
    listing = client.get("/admin/users/user/?is_active__exact=0")
    assert b"deactivated" in listing.content


def test_staff_endpoints_are_for_staff(api_client: APIClient, ada: User) -> None:
    api_client.force_authenticate(make_legacy_user(email="nobody@example.com"))
    assert api_client.post(f"/api/users/{ada.pk}/deactivate/").status_code == 403
    api_client.force_authenticate(make_legacy_user(email="boss@example.com", is_staff=True))
    assert api_client.post("/api/users/999999/deactivate/").status_code == 404
    assert User.objects.get(pk=ada.pk).is_active


def test_the_email_cannot_change_and_says_why(client: Client, ada: User) -> None:
    admin = make_legacy_user(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(
        f"/admin/users/user/{ada.pk}/change/",
        {
            "email": "someone.else@example.com",
            "name": ada.name,
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert EMAIL_CHANGE_REFUSED.encode() in response.content.replace(b"&#x27;", b"'")
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"
    # Nor a save() from a shell.
    loaded = User.objects.get(pk=ada.pk)
    loaded.email = "someone.else@example.com"
    with pytest.raises(ValueError, match="cannot be changed"):
        loaded.save()
    # The API has no way to change it either.
    api = APIClient()
    api.force_authenticate(ada)
    assert api.patch("/api/users/me/", {"email": "x@example.com"}, format="json").status_code == 405
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"
