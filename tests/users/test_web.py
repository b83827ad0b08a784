from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, make_user
from users.models import User

pytestmark = pytest.mark.django_db


def signup(client: Client, email: str = "web@example.com", password: str = DEFAULT_PASSWORD):
    return client.post(
        "/accounts/signup/",
        {"email": email, "name": "Web Person", "password1": password, "password2": password},
    )


def test_signup_logs_in_and_shows_provisioning_state(client: Client) -> None:
    page = client.get("/accounts/signup/")
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    account = client.get("/accounts/")
    assert b"web@example.com" in account.content
    assert b'data-testid="provisioning-state">Pending<' in account.content
    assert User.objects.get().librechat_password_encrypted


def test_signup_rejects_duplicate_in_other_case_and_weak_password(client: Client) -> None:
    make_user(email="taken@example.com")
    response = signup(client, email="Taken@Example.com")
    assert response.status_code == 200
    assert b"already exists" in response.content
    response = signup(client, email="fresh@example.com", password="password")
    assert b"too common" in response.content
    assert User.objects.count() == 1


def test_csrf_is_enforced_on_signup() -> None:
    client = Client(enforce_csrf_checks=True)
    assert signup(client).status_code == 403
    assert not User.objects.exists()


def test_login_logout_and_password_change(client: Client) -> None:
    make_user(email="me@example.com")
    response = client.post(
        "/accounts/login/", {"username": "ME@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 302
    assert client.get("/accounts/").status_code == 200
    response = client.post(
        "/accounts/password/change/",
        {
            "old_password": DEFAULT_PASSWORD,
            "new_password1": "another-Strong-pass9",
            "new_password2": "another-Strong-pass9",
        },
    )
    assert response.status_code == 302
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/accounts/").status_code == 302  # back to the log-in page
    assert client.login(email="me@example.com", password="another-Strong-pass9")


def test_wrong_password_shows_an_error(client: Client) -> None:
    make_user(email="me@example.com")
    response = client.post("/accounts/login/", {"username": "me@example.com", "password": "nope"})
    assert response.status_code == 200
    assert b"errorlist" in response.content


def test_password_reset_by_email(client: Client) -> None:
    make_user(email="me@example.com")
    response = client.post("/accounts/password/reset/", {"email": "me@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", str(mail.outbox[0].body))
    assert link
    form = client.get(link.group(1), follow=True)
    assert b"new_password1" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand-New-pass77", "new_password2": "brand-New-pass77"},
    )
    assert done.status_code == 302
    assert client.login(email="me@example.com", password="brand-New-pass77")


def test_pages_are_readable_on_a_phone(client: Client) -> None:
    page = client.get("/accounts/login/")
    assert b'name="viewport" content="width=device-width' in page.content


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({}, "is being set up"),
        ({"provisioning_state": "failed", "provisioning_attempts": 1}, "We try again"),
        (
            {"provisioning_state": "failed", "provisioning_permanent": True},
            "an administrator has to fix it",
        ),
        ({"provisioning_state": "conflict"}, "already has an account with your e-mail"),
    ],
)
def test_the_account_page_says_what_is_true_and_what_to_do(
    client: Client, fields: dict[str, Any], says: str
) -> None:
    user = make_user(email="me@example.com", **fields)
    client.force_login(user)
    page = client.get("/accounts/").content.decode().replace("&#x27;", "'")
    assert says in page
    assert "We will retry; contact support if this stays" not in page
    assert 'href="/accounts/delete/"' in page
