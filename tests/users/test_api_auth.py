from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, make_user
from users.models import ProvisioningState, User
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db
REGISTER = "/api/auth/register/"
TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
LOGOUT = "/api/auth/logout/"
ME = "/api/users/me/"


def register(
    client: APIClient, email: str = "new@example.com", password: str = DEFAULT_PASSWORD, **meta: Any
):
    body = {"email": email, "password": password, "name": "New Person"}
    return client.post(REGISTER, body, format="json", **meta)


def test_register_returns_user_and_working_tokens(api_client: APIClient) -> None:
    response = register(api_client, email="New.Person@Example.COM")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "new.person@example.com"
    assert body["user"]["librechat"]["state"] == ProvisioningState.PENDING
    assert "password" not in str(body["user"]).lower()
    user = User.objects.get()
    assert len(librechat_password_decrypt(user)) == 40  # generated and encrypted at registration
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['tokens']['access']}")
    assert api_client.get(ME).json()["email"] == "new.person@example.com"


def test_duplicate_email_in_another_case_is_409(api_client: APIClient) -> None:
    make_user(email="taken@example.com")
    response = register(api_client, email="TAKEN@example.com")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"
    assert User.objects.count() == 1


def test_weak_password_is_400_with_field_messages(api_client: APIClient) -> None:
    response = register(api_client, password="12345678")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert any("common" in m or "numeric" in m for m in error["fields"]["password"])
    assert not User.objects.exists()


def test_missing_and_invalid_fields_are_listed(api_client: APIClient) -> None:
    response = api_client.post(REGISTER, {"email": "nope", "name": "ab"}, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"email", "password", "name"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("x=1", "text/plain")],
)
def test_malformed_bodies_are_4xx_in_the_error_shape(
    api_client: APIClient, body: str, content_type: str
) -> None:
    response = api_client.generic("POST", REGISTER, body, content_type=content_type)
    assert response.status_code in (400, 415)
    assert set(response.json()["error"]) >= {"code", "message"}


def test_login_refresh_rotation_blacklist_and_logout(api_client: APIClient) -> None:
    make_user(email="me@example.com")
    response = api_client.post(
        TOKEN, {"email": "ME@example.com", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    first = response.json()

    rotated = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh"] != first["refresh"]
    # The spent refresh token is blacklisted.
    reused = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_not_valid"

    assert api_client.post(LOGOUT, {"refresh": second["refresh"]}, format="json").status_code == 204
    after_logout = api_client.post(REFRESH, {"refresh": second["refresh"]}, format="json")
    assert after_logout.status_code == 401
    assert api_client.post(LOGOUT, {"refresh": "garbage"}, format="json").status_code == 401


def test_wrong_password_is_401(api_client: APIClient) -> None:
    make_user(email="me@example.com")
    response = api_client.post(
        TOKEN, {"email": "me@example.com", "password": "wrong"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "no_active_account"


def test_me_needs_credentials(api_client: APIClient) -> None:
    response = api_client.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert api_client.get(ME).status_code == 401


def test_unknown_api_path_is_json_404(api_client: APIClient) -> None:
    response = api_client.get("/api/does-not-exist/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_login_is_throttled_per_account_with_retry_after(
    api_client: APIClient, low_rates: None
) -> None:
    make_user(email="me@example.com")
    for ip in ("10.0.0.1", "10.0.0.2"):
        api_client.post(
            TOKEN, {"email": "me@example.com", "password": "x"}, format="json", REMOTE_ADDR=ip
        )
    response = api_client.post(
        TOKEN,
        {"email": "me@example.com", "password": DEFAULT_PASSWORD},
        format="json",
        REMOTE_ADDR="10.0.0.3",
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "throttled"
    # Another account from a fresh IP is unaffected.
    make_user(email="other@example.com")
    ok = api_client.post(
        TOKEN,
        {"email": "other@example.com", "password": DEFAULT_PASSWORD},
        format="json",
        REMOTE_ADDR="10.0.0.9",
    )
    assert ok.status_code == 200


def test_register_is_throttled_per_ip(api_client: APIClient, low_rates: None) -> None:
    assert register(api_client, email="a@example.com").status_code == 201
    assert register(api_client, email="b@example.com").status_code == 201
    response = register(api_client, email="c@example.com")
    assert response.status_code == 429
    assert "Retry-After" in response
    assert register(api_client, email="c@example.com", REMOTE_ADDR="10.9.9.9").status_code == 201


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_forwarded_for_is_only_trusted_from_our_proxies(
    api_client: APIClient, low_rates: None
) -> None:
    # Behind one proxy, the client's own X-Forwarded-For entries are ignored: forging them
    # does not give a fresh limit.
    for forged in ("1.1.1.1", "2.2.2.2"):
        register(
            api_client, email=f"{forged}@example.com", HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7"
        )
    response = register(
        api_client, email="x@example.com", HTTP_X_FORWARDED_FOR="3.3.3.3, 203.0.113.7"
    )
    assert response.status_code == 429
