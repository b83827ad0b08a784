from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD
from users.models import User
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db


def test_registration_and_password_reads_log_no_plaintext(
    api_client: APIClient,
    client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, from every logger
    response = api_client.post(
        "/api/auth/register/",
        {"email": "api@example.com", "password": DEFAULT_PASSWORD, "name": "Api User"},
        format="json",
    )
    client.post(
        "/accounts/signup/",
        {
            "email": "web@example.com",
            "name": "Web User",
            "password1": DEFAULT_PASSWORD,
            "password2": DEFAULT_PASSWORD,
        },
    )
    access = response.json()["tokens"]["access"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    for _ in range(3):
        assert api_client.get("/api/users/librechat-password/").status_code == 200
    secrets = [librechat_password_decrypt(u) for u in User.objects.all()] + [DEFAULT_PASSWORD]
    assert len(secrets) == 3
    assert caplog.records  # the capture really saw the requests
    for secret in secrets:
        assert secret not in caplog.text
