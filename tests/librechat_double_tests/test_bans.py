"""uaParser on the guarded route groups, violation scores, and bans on the user and the IP."""

from __future__ import annotations

import httpx
import pytest

from tests.librechat_double import LibreChatDouble
from tests.librechat_double.guards import BAN_MESSAGE
from tests.librechat_double.pytest_plugin import MakeDouble

from .conftest import BROWSER_UA, PASSWORD, connect, register_and_login

ILLEGAL = 'event: error\ndata: {"message":"Illegal request"}\n\n'


def _bearer(login: httpx.Response, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {login.json()['token']}", **extra}


@pytest.mark.parametrize("path", ["/api/agents", "/api/files/x", "/api/assistants/y"])
def test_browser_passes_the_guard(
    librechat_double: LibreChatDouble, clients: list[httpx.Client], path: str
) -> None:
    client = connect(librechat_double, clients)
    login = register_and_login(client, "ok@example.com")
    response = client.get(path, headers=_bearer(login, **{"User-Agent": BROWSER_UA}))
    assert (response.status_code, response.json()) == (404, {"message": "Endpoint not found"})


def test_guard_needs_a_token_first(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    response = connect(librechat_double, clients).post("/api/agents/chat/openAI")
    assert (response.status_code, response.json()) == (401, {"message": "No auth token"})


def test_one_non_browser_request_bans_user_and_ip(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    state = librechat_double.state
    victim = connect(librechat_double, clients, **{"X-Forwarded-For": "198.51.100.50"})
    login = register_and_login(victim, "victim@example.com")

    illegal = victim.post("/api/agents/chat/openAI", headers=_bearer(login), json={"text": "hi"})

    assert illegal.status_code == 200
    assert illegal.text == ILLEGAL
    assert "content-type" not in illegal.headers
    assert illegal.headers["transfer-encoding"] == "chunked"
    assert illegal.headers["set-cookie"].startswith(
        "refreshToken=; Path=/; Expires=Thu, 01 Jan 1970"
    )
    assert state.non_browser_requests == 1
    assert state.violation_score(login.json()["user"]["id"]) == 20
    # Sessions are gone, the user is banned everywhere, and so is the IP for everyone.
    assert state.sessions_of("victim@example.com") == []
    banned_login = victim.post(
        "/api/auth/login", json={"email": "victim@example.com", "password": PASSWORD}
    )
    assert (banned_login.status_code, banned_login.json()) == (403, {"message": BAN_MESSAGE})
    elsewhere = connect(librechat_double, clients, **{"X-Forwarded-For": "198.51.100.51"})
    assert (
        elsewhere.post(
            "/api/auth/login", json={"email": "victim@example.com", "password": PASSWORD}
        ).status_code
        == 403
    )
    bystander = elsewhere.post("/api/auth/register", json={"email": "b@example.com"})
    assert bystander.status_code != 403
    same_ip = victim.post("/api/auth/register", json={"email": "c@example.com"})
    assert (same_ip.status_code, same_ip.json()) == (403, {"message": BAN_MESSAGE})
    # The access token still authenticates, but the guarded groups refuse it.
    agents = victim.get("/api/agents", headers=_bearer(login, **{"User-Agent": BROWSER_UA}))
    assert agents.status_code == 403
    assert victim.get("/api/user", headers=_bearer(login)).status_code == 200

    state.advance_clock(7201)  # the ban is over (and the access token long expired)
    again = victim.post(
        "/api/auth/login", json={"email": "victim@example.com", "password": PASSWORD}
    )
    assert (
        victim.get("/api/agents", headers=_bearer(again, **{"User-Agent": BROWSER_UA})).status_code
        == 404
    )


def test_without_bans_the_violation_is_only_logged(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(ban_violations=False)
    client = connect(double, clients)
    login = register_and_login(client, "free@example.com")
    for _ in range(3):
        assert client.get("/api/files", headers=_bearer(login)).text == ILLEGAL
    assert double.state.violation_score(login.json()["user"]["id"]) == 60
    assert double.state.bans_issued == 0
    assert len(double.state.sessions_of("free@example.com")) == 1


def test_smaller_scores_ban_at_the_interval(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(non_browser_violation_score=5)
    client = connect(double, clients)
    login = register_and_login(client, "slow@example.com")
    for _ in range(3):
        client.get("/api/permissions", headers=_bearer(login))
    assert double.state.bans_issued == 0
    client.get("/api/permissions", headers=_bearer(login))
    assert double.state.bans_issued == 1
