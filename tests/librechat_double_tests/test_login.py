"""POST /api/auth/login: passport-local failures, the success shape, cookies, the per-IP limit."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.librechat_double import LibreChatDouble
from tests.librechat_double.config import DEFAULT_JWT_SECRET
from tests.librechat_double.pytest_plugin import MakeDouble

from .conftest import PASSWORD, USER_FIELDS, connect, register_and_login, registration


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"email": "known@example.com", "password": "wrong password"}, 404, "Incorrect password."),
        ({"email": "nobody@example.com", "password": PASSWORD}, 404, "Email does not exist."),
        ({"email": "known@example.com"}, 404, "Missing credentials"),
        ({"email": "", "password": PASSWORD}, 404, "Missing credentials"),
        (
            {"email": "known@example.com", "password": "short"},
            404,
            "password: String must contain at least 8 character(s)",
        ),
        ({"email": "not-an-email", "password": PASSWORD}, 404, "email: Invalid email"),
    ],
)
def test_failures(
    librechat_double: LibreChatDouble,
    clients: list[httpx.Client],
    body: dict[str, str],
    status: int,
    message: str,
) -> None:
    librechat_double.state.add_user("known@example.com", PASSWORD)
    response = connect(librechat_double, clients).post("/api/auth/login", json=body)
    assert (response.status_code, response.json()) == (status, {"message": message})
    assert "set-cookie" not in response.headers


def test_unverified_email_answers_422(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    librechat_double.state.add_user("pending@example.com", PASSWORD)
    librechat_double.state.mark_unverified("pending@example.com")
    response = connect(librechat_double, clients).post(
        "/api/auth/login", json={"email": "pending@example.com", "password": PASSWORD}
    )
    assert (response.status_code, response.json()) == (422, {"message": "Email not verified."})


def test_email_verification_required_leaves_new_accounts_unverified(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(email_verification_required=True)
    client = connect(double, clients)
    client.post("/api/auth/register", json=registration("new@example.com"))
    response = client.post(
        "/api/auth/login", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert response.status_code == 422


def test_success_shape_token_and_cookies(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    response = register_and_login(client, "Probe@Example.com")

    body = response.json()
    user = body["user"]
    assert user["id"] == user["_id"]
    assert {*USER_FIELDS, "refreshToken"} == set(user)
    assert (user["email"], user["provider"], user["avatar"]) == ("probe@example.com", "local", None)
    assert "password" not in user

    claims = jwt.decode(body["token"], DEFAULT_JWT_SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(body["token"]) == {"alg": "HS256", "typ": "JWT"}
    assert list(claims) == ["id", "username", "provider", "email", "iat", "exp"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["id"] == user["id"]

    refresh, provider = response.headers.get_list("set-cookie")
    assert refresh.startswith("refreshToken=ey")
    assert refresh.endswith("; HttpOnly; SameSite=Strict")
    assert "; Path=/; Expires=" in refresh
    assert provider.startswith("token_provider=librechat; Path=/; Expires=")
    assert librechat_double.state.login_successes == 1
    assert len(librechat_double.state.sessions_of("probe@example.com")) == 1


def test_secure_cookies_knob(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(secure_cookies=True)
    response = register_and_login(connect(double, clients), "a@example.com")
    assert all(
        "; HttpOnly; Secure; SameSite=Strict" in c for c in response.headers.get_list("set-cookie")
    )


def test_successful_logins_count_towards_the_limit(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    librechat_double.state.add_user("known@example.com", PASSWORD)
    client = connect(librechat_double, clients, **{"X-Forwarded-For": "198.51.100.20"})
    body = {"email": "known@example.com", "password": PASSWORD}

    answers = [client.post("/api/auth/login", json=body) for _ in range(8)]
    elsewhere = client.post(
        "/api/auth/login", json=body, headers={"X-Forwarded-For": "198.51.100.21"}
    )

    assert [a.status_code for a in answers] == [200] * 7 + [429]
    assert answers[7].json() == {
        "message": "Too many login attempts, please try again after 5 minutes."
    }
    assert answers[7].headers["x-ratelimit-limit"] == "7"
    assert 290 <= int(answers[7].headers["retry-after"]) <= 300
    assert elsewhere.status_code == 200
    librechat_double.state.advance_clock(301)
    assert client.post("/api/auth/login", json=body).status_code == 200


def test_a_pre_existing_account_with_another_password(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    """The conflict case: the e-mail is already in LibreChat, with a password we do not know."""
    librechat_double.state.add_user("taken@example.com", "somebody else's password")
    client = connect(librechat_double, clients)
    register = client.post("/api/auth/register", json=registration("taken@example.com"))
    login = client.post(
        "/api/auth/login", json={"email": "taken@example.com", "password": PASSWORD}
    )
    assert register.status_code == 200
    assert login.json() == {"message": "Incorrect password."}


def test_bcrypt_ignores_bytes_after_72(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    long_password = "x" * 72
    librechat_double.state.add_user("long@example.com", long_password + "tail one")
    response = connect(librechat_double, clients).post(
        "/api/auth/login", json={"email": "long@example.com", "password": long_password + "other"}
    )
    assert response.status_code == 200
