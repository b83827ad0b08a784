"""Deleting an account, end to end: the API, the web page and the admin start a durable workflow
that deletes the LibreChat account as the user, lets every app erase what it holds, and deletes
our row; the e-mail can then sign up again and gets a fresh LibreChat account."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from code_interpreter.models import CodeSession
from librechat import auth as client
from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD, make_legacy_user, make_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.users.conftest import jwt_client
from users.models import ProvisioningState, User
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db(transaction=True)
ME = "/api/users/me/"


@pytest.fixture
def ada(librechat: LibreChatDouble) -> User:
    return activate(make_legacy_user(email="ada@example.com", name="Ada"), librechat)


def gone(user: User) -> bool:
    return not User.objects.filter(pk=user.pk).exists()


def login_answer(librechat: LibreChatDouble, user: User, password: str) -> str:
    response = httpx.post(
        f"{librechat.url}/api/auth/login", json={"email": user.email, "password": password}
    )
    return str(response.json().get("message", "logged in"))


def delete_me(api: APIClient, password: str = DEFAULT_PASSWORD) -> Any:
    return api.delete(ME, {"password": password}, format="json")


def test_deleting_through_the_api_removes_everything_and_frees_the_email(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, ada: User
) -> None:
    librechat_password = librechat_password_decrypt(ada)
    librechat_id = ada.librechat_user_id
    CodeSession.objects.create(
        id="a" * 21, owner=f"user:{librechat_id}", origin="exec", expires_at=timezone.now()
    )
    CodeSession.objects.create(
        id="b" * 21, owner="user:someone-else", origin="exec", expires_at=timezone.now()
    )
    cache.set(f"librechat:session:{ada.pk}", {"stale": True})
    api = jwt_client(api_client, ada)

    response = delete_me(api)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "deleting"
    # Refused at once, whatever the workflow is doing.
    assert api.get(ME).status_code == 403
    assert api.get("/api/users/librechat-password/").status_code == 403

    wait_for(lambda: gone(ada), message="the account deleted")
    assert librechat.state.get_user(ada.email) is None
    assert login_answer(librechat, ada, librechat_password) == "Email does not exist."
    assert librechat.state.accounts_deleted == 1
    [call] = librechat.state.requests_to("/api/user/delete")
    assert call.method == "DELETE"
    assert call.status == 200
    assert list(CodeSession.objects.values_list("owner", flat=True)) == ["user:someone-else"]
    assert cache.get(f"librechat:session:{ada.pk}") is None

    # The e-mail signs up again, cleanly: a new user, a new LibreChat account.
    again = APIClient().post(
        "/api/auth/register/",
        {"email": ada.email, "password": DEFAULT_PASSWORD, "name": "Ada Again"},
        format="json",
    )
    assert again.status_code == 201
    wait_for(
        lambda: User.objects.filter(email=ada.email, provisioning_state="active").exists(),
        message="the new account active",
    )
    new = User.objects.get(email=ada.email)
    assert new.uuid != ada.uuid
    assert new.librechat_user_id
    assert new.librechat_user_id != librechat_id


def test_the_password_is_required_and_checked(
    api_client: APIClient, librechat: LibreChatDouble, ada: User
) -> None:
    api = jwt_client(api_client, ada)
    wrong = delete_me(api, "not-my-password")
    assert wrong.status_code == 400
    assert wrong.json()["error"]["fields"]["password"] == ["The password is not correct."]
    assert delete_me(api, "").status_code == 400
    assert api.delete(ME, {}, format="json").status_code == 400
    ada.refresh_from_db()
    assert ada.is_active
    assert ada.deletion_requested_at is None


def test_while_librechat_is_down_the_deletion_waits_and_finishes_when_it_is_back(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, ada: User, client: Client
) -> None:
    librechat.set_mode("down")
    assert delete_me(jwt_client(api_client, ada)).status_code == 202
    wait_for(
        lambda: "unreachable" in User.objects.get(pk=ada.pk).deletion_error,
        message="the deletion waiting",
    )
    # What an operator sees meanwhile.
    client.force_login(make_legacy_user(email="root@example.com", is_staff=True, is_superuser=True))
    listing = client.get("/admin/users/user/?deletion=running")
    assert b"ada@example.com" in listing.content
    assert b"being deleted since" in listing.content
    page = client.get(f"/admin/users/user/{ada.pk}/change/").content.decode()
    assert f"account-deletion-{ada.uuid}: PENDING" in page
    assert "Waiting: LibreChat is unreachable" in page
    # The e-mail is not free yet, and says why.
    taken = APIClient().post(
        "/api/auth/register/",
        {"email": ada.email, "password": DEFAULT_PASSWORD, "name": "Too Soon"},
        format="json",
    )
    assert taken.status_code == 409
    assert "being deleted" in taken.json()["error"]["message"]

    librechat.set_mode("ok")
    wait_for(lambda: gone(ada), timeout=20, message="the deletion finished")
    assert librechat.state.get_user(ada.email) is None


def test_librechat_refusing_deletion_is_shown_and_the_deletion_resumes_once_allowed(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    # LibreChat's own admin first (canDeleteAccount always lets an ADMIN delete itself).
    librechat.state.add_user("admin@librechat.example", "an-admin-password", role="ADMIN")
    ada = activate(make_legacy_user(email="ada@example.com", name="Ada"), librechat)
    librechat.config.update(allow_account_deletion=False)
    assert delete_me(jwt_client(api_client, ada)).status_code == 202
    wait_for(
        lambda: "ALLOW_ACCOUNT_DELETION" in User.objects.get(pk=ada.pk).deletion_error,
        message="the refusal recorded",
    )
    assert librechat.state.get_user(ada.email) is not None
    refusals = librechat.state.requests_to("/api/user/delete")
    assert {r.status for r in refusals} == {403}

    librechat.config.update(allow_account_deletion=True)
    wait_for(lambda: gone(ada), timeout=20, message="the deletion finished")
    assert librechat.state.get_user(ada.email) is None


def test_an_account_already_gone_from_librechat_is_not_an_error(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, ada: User
) -> None:
    """What a deletion recovered after LibreChat deleted the account, but before our row went,
    meets: LibreChat says "Email does not exist.", and the deletion goes on."""
    librechat.state.delete_user(ada.email)
    assert delete_me(jwt_client(api_client, ada)).status_code == 202
    wait_for(lambda: gone(ada), message="the deletion finished")
    assert librechat.state.requests_to("/api/user/delete") == []


def test_a_conflicting_librechat_account_is_never_deleted(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    """Someone else's LibreChat account with our user's e-mail (a `conflict`) stays."""
    librechat.state.add_user("clash@example.com", "somebody-elses-password")
    user = make_user(email="clash@example.com")
    wait_for(
        lambda: User.objects.get(pk=user.pk).provisioning_state == ProvisioningState.CONFLICT,
        message="the conflict",
    )
    assert delete_me(jwt_client(api_client, user)).status_code == 202
    wait_for(lambda: gone(user), message="our account deleted")
    assert librechat.state.get_user("clash@example.com") is not None
    assert librechat.state.accounts_deleted == 0


def test_deleting_while_provisioning_runs_leaves_no_librechat_account(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, settings: Any
) -> None:
    """The register call of a provisioning run may be in flight when the deletion starts: the
    deletion cancels the run and waits for any call to land before it looks for the account."""
    settings.LIBRECHAT_CONNECT_TIMEOUT_S, settings.LIBRECHAT_TIMEOUT_S = 0.2, 1.0
    client.reset_client()
    librechat.set_mode("slow", seconds=0.6)
    user = make_user(email="hasty@example.com")
    wait_for(lambda: librechat.state.register_calls == 1, message="registration in flight")
    assert delete_me(jwt_client(api_client, user)).status_code == 202
    wait_for(lambda: gone(user), timeout=20, message="the deletion finished")
    librechat.set_mode("ok")
    assert librechat.state.get_user("hasty@example.com") is None


def test_the_web_account_page_deletes(
    client: Client, librechat: LibreChatDouble, workflows: str, ada: User
) -> None:
    assert client.login(email=ada.email, password=DEFAULT_PASSWORD)
    page = client.get("/accounts/delete/")
    assert page.status_code == 200
    wrong = client.post("/accounts/delete/", {"password": "nope", "confirm": "on"})
    assert b"The password is not correct." in wrong.content
    unconfirmed = client.post("/accounts/delete/", {"password": DEFAULT_PASSWORD})
    assert unconfirmed.status_code == 200
    assert User.objects.get(pk=ada.pk).deletion_requested_at is None
    response = client.post(
        "/accounts/delete/", {"password": DEFAULT_PASSWORD, "confirm": "on"}, follow=True
    )
    assert b"Your account is being deleted" in response.content
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert client.get("/accounts/").status_code == 302  # signed out
    wait_for(lambda: gone(ada), message="the deletion finished")
    assert librechat.state.get_user(ada.email) is None


def test_the_admins_delete_deletes_the_librechat_account_too(
    client: Client, librechat: LibreChatDouble, workflows: str, ada: User
) -> None:
    bob = activate(make_legacy_user(email="bob@example.com", name="Bob"), librechat)
    client.force_login(make_legacy_user(email="root@example.com", is_staff=True, is_superuser=True))
    response = client.post(f"/admin/users/user/{ada.pk}/delete/", {"post": "yes"}, follow=True)
    assert b"Deletion started" in response.content
    actions = client.get("/admin/users/user/").content
    assert b'value="delete_selected"' not in actions  # Django's, which would orphan LibreChat's
    bulk = client.post(
        "/admin/users/user/", {"action": "delete_accounts", "_selected_action": [bob.pk]}
    )
    assert bulk.status_code == 302
    wait_for(lambda: gone(ada) and gone(bob), message="both deleted")
    assert librechat.state.get_user(ada.email) is None
    assert librechat.state.get_user(bob.email) is None
    assert librechat.state.accounts_deleted == 2
