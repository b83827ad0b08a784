from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import make_user
from users.models import User


@pytest.fixture
def owner(db: None) -> User:
    return make_user(email="owner@example.com", name="Owner")


@pytest.fixture
def outsider(db: None) -> User:
    return make_user(email="outsider@example.com", name="Outsider")


def jwt_client(client: APIClient, user: User) -> APIClient:
    from rest_framework_simplejwt.tokens import RefreshToken

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


RATES: dict[str, str | None] = {
    "login_ip": "3/min",
    "login_account": "2/min",
    "register_ip": "2/min",
    "register_account": "5/min",
    "librechat_password": "3/min",
}


@pytest.fixture
def low_rates():
    """Small throttle rates, so a test reaches the limits in a few requests."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = RATES
    yield
    SimpleRateThrottle.THROTTLE_RATES = original
    api_settings.reload()
