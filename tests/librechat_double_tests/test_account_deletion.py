"""DELETE /api/user/delete as LibreChat v0.8.7 answers it (api/server/routes/user.js:
requireJwtAuth → canDeleteAccount → deleteUserController), and allowAccountDeletion in
/api/config for a signed-in caller."""

from __future__ import annotations

import httpx

from tests.librechat_double import LibreChatDouble
from tests.librechat_double_tests.conftest import (
    BROWSER_UA,
    PASSWORD,
    connect,
    refresh_cookie,
    register_and_login,
)

REFUSED = {"message": "You do not have permission to delete this account"}


def signed_in(double: LibreChatDouble, clients: list[httpx.Client], email: str) -> httpx.Client:
    client = connect(double, clients, **{"User-Agent": BROWSER_UA})
    login = register_and_login(client, email)
    client.headers["Authorization"] = f"Bearer {login.json()['token']}"
    client.cookies.set("refreshToken", refresh_cookie(login))
    return client


def test_deleting_ones_account_removes_it_and_everything_in_it(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    double = librechat_double
    signed_in(double, clients, "admin@example.com")  # the first account: LibreChat's ADMIN
    client = signed_in(double, clients, "leaving@example.com")
    user_id = client.get("/api/user").json()["id"]
    double.state.chat.save_convo(user_id, "c0ffee00-0000-4000-8000-000000000001", {"title": "x"})

    response = client.delete("/api/user/delete")

    assert (response.status_code, response.json()) == (200, {"message": "User deleted"})
    assert double.state.get_user("leaving@example.com") is None
    assert double.state.sessions_of("leaving@example.com") == []
    assert double.state.chat.conversations_of(user_id) == []
    assert double.state.accounts_deleted == 1
    # The access token no longer finds a user; the e-mail no longer logs in.
    assert (client.get("/api/user").status_code, client.get("/api/user").json()) == (
        401,
        {"message": "Unauthorized"},
    )
    login = client.post(
        "/api/auth/login", json={"email": "leaving@example.com", "password": PASSWORD}
    )
    assert (login.status_code, login.json()) == (404, {"message": "Email does not exist."})
    assert client.delete("/api/user/delete").status_code == 401


def test_deletion_disabled_refuses_users_but_not_the_admin(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    double = librechat_double
    double.config.update(allow_account_deletion=False)
    admin = signed_in(double, clients, "admin@example.com")
    user = signed_in(double, clients, "user@example.com")

    refused = user.delete("/api/user/delete")
    assert (refused.status_code, refused.json()) == (403, REFUSED)
    assert double.state.get_user("user@example.com") is not None
    assert user.get("/api/config").json()["allowAccountDeletion"] is False
    assert admin.get("/api/config").json()["allowAccountDeletion"] is True
    assert admin.delete("/api/user/delete").status_code == 200


def test_no_token_is_refused_first_and_config_says_nothing_before_log_in(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    assert (client.delete("/api/user/delete").json()) == {"message": "No auth token"}
    assert "allowAccountDeletion" not in client.get("/api/config").json()
