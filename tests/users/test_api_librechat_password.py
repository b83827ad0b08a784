from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD
from tests.users.conftest import jwt_client
from users.models import User
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db
URL = "/api/users/librechat-password/"


def test_returns_only_the_callers_own_password_uncached(
    api_client: APIClient, owner: User, outsider: User
) -> None:
    response = jwt_client(api_client, owner).get(URL)
    assert response.status_code == 200
    assert response.json() == {"password": librechat_password_decrypt(owner)}
    assert response.json()["password"] != librechat_password_decrypt(outsider)
    assert response["Cache-Control"] == "no-store"


def test_every_read_is_audited_without_the_secret(
    api_client: APIClient, owner: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hestami_ai.audit"):
        jwt_client(api_client, owner).get(URL)
        jwt_client(api_client, owner).get(URL)
    audits = [r for r in caplog.records if r.name == "hestami_ai.audit"]
    assert len(audits) == 2
    assert f"user_id={owner.pk}" in audits[0].getMessage()
    assert librechat_password_decrypt(owner) not in caplog.text


def test_needs_a_jwt(api_client: APIClient, owner: User) -> None:
    assert api_client.get(URL).status_code == 401
    # A browser session alone is not enough: the secret is for the mobile apps only.
    api_client.login(email=owner.email, password=DEFAULT_PASSWORD)
    response = api_client.get(URL)
    assert response.status_code == 401
    assert "password" not in response.json()


def test_is_throttled_per_user(
    api_client: APIClient, owner: User, outsider: User, low_rates: None
) -> None:
    client = jwt_client(api_client, owner)
    assert [client.get(URL).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert int(client.get(URL)["Retry-After"]) > 0
    assert jwt_client(APIClient(), outsider).get(URL).status_code == 200
