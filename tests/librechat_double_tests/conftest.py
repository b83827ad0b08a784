"""Fixtures for the double's own tests: every test gets fresh doubles over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.librechat_double import LibreChatDouble
from tests.librechat_double.pytest_plugin import (  # noqa: F401 (fixtures used by name)
    MakeDouble,
    librechat_double,
    librechat_double_server,
    make_librechat_double,
)

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
PASSWORD = "correct horse battery"
# GET /api/user's fields in LibreChat's order, written out as the expectation (not imported from
# the double); the login answer's `user` is the same document with `refreshToken` as well.
USER_FIELDS = [
    "_id",
    "id",
    "name",
    "username",
    "email",
    "emailVerified",
    "avatar",
    "provider",
    "role",
    "plugins",
    "twoFactorEnabled",
    "termsAccepted",
    "personalization",
    "favorites",
    "skillStates",
    "createdAt",
    "updatedAt",
]


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Replaces tests/conftest.py's Django-cache fixture: the double needs no Django."""


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    opened: list[httpx.Client] = []
    yield opened
    for client in opened:
        client.close()


def connect(double: LibreChatDouble, opened: list[httpx.Client], **headers: str) -> httpx.Client:
    client = httpx.Client(base_url=double.url, timeout=5.0, headers=headers)
    opened.append(client)
    return client


def registration(email: str, password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Probe User",
        "email": email,
        "password": password,
        "confirm_password": password,
        **fields,
    }


def register_and_login(client: httpx.Client, email: str) -> httpx.Response:
    assert client.post("/api/auth/register", json=registration(email)).status_code == 200
    response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response


def refresh_cookie(response: httpx.Response) -> str:
    for cookie in response.headers.get_list("set-cookie"):
        if cookie.startswith("refreshToken="):
            return cookie.split(";", 1)[0].removeprefix("refreshToken=")
    raise AssertionError("no refreshToken cookie in the response")
