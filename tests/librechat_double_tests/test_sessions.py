"""/api/auth/refresh, /api/auth/logout and /api/user: rotation, absolute expiry, Bearer errors."""

from __future__ import annotations

import asyncio

import httpx

from tests.librechat_double import LibreChatDouble
from tests.librechat_double.pytest_plugin import MakeDouble

from .conftest import PASSWORD, USER_FIELDS, connect, refresh_cookie, register_and_login


def _refresh(client: httpx.Client, token: str | None) -> httpx.Response:
    headers = {"Cookie": f"refreshToken={token}"} if token else {}
    return client.post("/api/auth/refresh", headers=headers)


def test_refresh_without_cookie_is_200_text(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    response = _refresh(connect(librechat_double, clients), None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "Refresh token not provided"


def test_refresh_rotates_and_the_old_token_dies(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    first = refresh_cookie(register_and_login(client, "rot@example.com"))
    # iat has one-second resolution: within the same second the "new" token is the same token.
    librechat_double.state.advance_clock(1)

    rotated = _refresh(client, first)
    reused = _refresh(client, first)

    assert rotated.status_code == 200
    assert set(rotated.json()) == {"token", "user"}
    assert "id" not in rotated.json()["user"]  # refresh returns the document without `id`
    second = refresh_cookie(rotated)
    assert second != first
    assert (reused.status_code, reused.text) == (
        401,
        "Refresh token expired or not found for this user",
    )
    assert _refresh(client, second).status_code == 200
    state = librechat_double.state
    assert (state.refresh_calls, state.refresh_successes) == (3, 2)
    assert state.refresh_reused_token_failures == 1


def test_refresh_expiry_is_absolute(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(refresh_expiry_s=3600)
    client = connect(double, clients)
    login = register_and_login(client, "abs@example.com")
    login_cookie = login.headers.get_list("set-cookie")[0]

    double.state.advance_clock(1800)
    rotated = _refresh(client, refresh_cookie(login))
    rotated_cookie = rotated.headers.get_list("set-cookie")[0]
    expires = [c.split("; Expires=")[1].split(";")[0] for c in (login_cookie, rotated_cookie)]
    assert expires[0] == expires[1]

    double.state.advance_clock(1801)
    late = _refresh(client, refresh_cookie(rotated))
    assert (late.status_code, late.text) == (403, "Invalid refresh token")


def test_garbage_and_forged_refresh_tokens_are_403(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    assert _refresh(client, "not-a-jwt").status_code == 403
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImFiYyJ9.c2lnbmF0dXJl"
    assert (_refresh(client, forged).status_code, _refresh(client, forged).text) == (
        403,
        "Invalid refresh token",
    )
    assert librechat_double.state.refresh_invalid_token_failures == 3


def test_concurrent_refreshes_both_succeed_but_only_the_last_token_lives(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    librechat_double = make_librechat_double(session_store_latency_s=0.2)
    client = connect(librechat_double, clients)
    first = refresh_cookie(register_and_login(client, "race@example.com"))
    librechat_double.state.advance_clock(1)

    async def twice() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=librechat_double.url) as session:
            calls = [
                session.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={first}"})
                for _ in range(2)
            ]
            return await asyncio.gather(*calls)

    answers = asyncio.run(twice())
    assert [a.status_code for a in answers] == [200, 200]
    tokens = {refresh_cookie(a) for a in answers}
    alive = [t for t in tokens if _refresh(client, t).status_code == 200]
    assert len(alive) == 1


def test_logout_ends_the_session_but_not_the_access_token(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    login = register_and_login(client, "out@example.com")
    token, cookie = login.json()["token"], refresh_cookie(login)
    bearer = {"Authorization": f"Bearer {token}"}

    logout = client.post("/api/auth/logout", headers={**bearer, "Cookie": f"refreshToken={cookie}"})

    assert (logout.status_code, logout.json()) == (200, {"message": "Logout successful"})
    cleared = logout.headers.get_list("set-cookie")
    assert [c.split("=")[0] for c in cleared] == [
        "openid_access_token",
        "openid_id_token",
        "openid_user_id",
        "refreshToken",
        "token_provider",
    ]
    assert all(c.endswith("=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT") for c in cleared)
    assert _refresh(client, cookie).status_code == 401
    assert client.get("/api/user", headers=bearer).status_code == 200
    assert librechat_double.state.sessions_of("out@example.com") == []


def test_logout_without_cookie_deletes_some_live_session(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    login = register_and_login(client, "twice@example.com")
    client.post("/api/auth/login", json={"email": "twice@example.com", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    assert len(librechat_double.state.sessions_of("twice@example.com")) == 2
    assert client.post("/api/auth/logout", headers=bearer).status_code == 200
    assert len(librechat_double.state.sessions_of("twice@example.com")) == 1


def test_api_user_and_bearer_errors(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    token = register_and_login(client, "me@example.com").json()["token"]

    me = client.get("/api/user", headers={"Authorization": f"Bearer {token}"})
    no_token = client.get("/api/user")
    bad_token = client.get("/api/user", headers={"Authorization": "Bearer abc.def.ghi"})
    malformed = client.get("/api/user", headers={"Authorization": "Bearer abc"})
    librechat_double.state.advance_clock(901)
    expired = client.get("/api/user", headers={"Authorization": f"Bearer {token}"})

    assert me.status_code == 200
    assert list(me.json()) == USER_FIELDS
    assert (no_token.status_code, no_token.json()) == (401, {"message": "No auth token"})
    assert (bad_token.status_code, bad_token.json()) == (401, {"message": "invalid token"})
    assert malformed.json() == {"message": "jwt malformed"}
    assert (expired.status_code, expired.json()) == (401, {"message": "jwt expired"})
    assert client.post("/api/auth/logout").json() == {"message": "No auth token"}
