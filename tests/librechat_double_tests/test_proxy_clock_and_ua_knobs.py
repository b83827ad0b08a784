"""The knobs the doctor's tests need: a proxy in front of LibreChat, the Date header by the
double's clock, and a uaParser that refuses a browser string."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from tests.librechat_double.pytest_plugin import MakeDouble

from .conftest import BROWSER_UA, connect, register_and_login


def _remaining(client: httpx.Client, forwarded_for: str) -> int:
    response = client.post("/api/auth/login", json={}, headers={"X-Forwarded-For": forwarded_for})
    assert response.json() == {"message": "Missing credentials"}
    return int(response.headers["x-ratelimit-remaining"])


@pytest.mark.parametrize(
    ("proxies_in_front", "trust_proxy", "separate"),
    [(0, 1, True), (1, 1, False), (1, 2, True)],
)
def test_a_proxy_in_front_needs_trust_proxy_2(
    make_librechat_double: MakeDouble,
    clients: list[httpx.Client],
    proxies_in_front: int,
    trust_proxy: int,
    separate: bool,
) -> None:
    double = make_librechat_double(proxies_in_front=proxies_in_front, trust_proxy=trust_proxy)
    client = connect(double, clients)
    first = _remaining(client, "192.0.2.1")
    second = _remaining(client, "192.0.2.2")
    assert first == 6
    assert second == (6 if separate else 5)
    recorded = double.state.requests_to("/api/auth/login")[-1].client_ip
    assert recorded == ("192.0.2.2" if separate else "127.0.0.1")


def test_date_header_follows_the_doubles_clock(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double()
    client = connect(double, clients)
    before = email.utils.parsedate_to_datetime(client.get("/health").headers["date"])
    assert abs(before.timestamp() - time.time()) < 2
    double.state.advance_clock(3600)
    dates = client.get("/health").headers.get_list("date")
    assert len(dates) == 1  # uvicorn's own Date is off
    assert email.utils.parsedate_to_datetime(dates[0]).timestamp() - time.time() > 3590


def test_a_pattern_makes_uaparser_refuse_a_browser(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(non_browser_user_agent_pattern=r"chrome/130\b")
    client = connect(double, clients, **{"User-Agent": BROWSER_UA})
    login = register_and_login(client, "ua@example.com")
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    refused = client.get("/api/files/config", headers=bearer)
    assert refused.status_code == 200
    assert "Illegal request" in refused.text
    assert double.state.counter("non_browser_requests") == 1
    other_browser = BROWSER_UA.replace("Chrome/130", "Chrome/131")
    double.state.reset()
    login = register_and_login(client, "ua2@example.com")
    passed = client.get(
        "/api/files/config",
        headers={"Authorization": f"Bearer {login.json()['token']}", "User-Agent": other_browser},
    )
    assert passed.status_code == 404  # past the guards: the double has no /api/files/config
