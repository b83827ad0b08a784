"""The double routes as Express 5 does: case-insensitively, one optional trailing slash, on the
path as sent (an encoded letter is not the letter), parameters decoded once."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import send_raw
from tests.librechat_double import LibreChatDouble

from .conftest import BROWSER_UA, connect, register_and_login, registration


def register_at(double: LibreChatDouble, target: str) -> tuple[int, bytes]:
    body = json.dumps(registration("case@example.com")).encode()
    headers = {"Content-Type": "application/json"}
    return send_raw(double.url, "POST", target, body=body, headers=headers)


@pytest.mark.parametrize(
    "target",
    ["/api/auth/register", "/api/Auth/register", "/API/AUTH/REGISTER", "/api/auth/register/"],
)
def test_letter_case_and_one_trailing_slash_reach_the_route(
    librechat_double: LibreChatDouble, target: str
) -> None:
    status, _ = register_at(librechat_double, target)
    assert status == 200
    assert librechat_double.state.accounts_created == 1


@pytest.mark.parametrize(
    "target", ["/api/%61uth/register", "/api/auth//register", "/api/auth/register//"]
)
def test_an_encoded_letter_or_an_empty_segment_is_another_path(
    librechat_double: LibreChatDouble, target: str
) -> None:
    status, answer = register_at(librechat_double, target)
    assert (status, json.loads(answer)) == (404, {"message": "Endpoint not found"})
    assert librechat_double.state.accounts_created == 0


def test_parameters_keep_their_case_and_are_decoded_once(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients, **{"User-Agent": BROWSER_UA})
    token = register_and_login(client, "params@example.com").json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    saved = client.post(
        "/api/convos/update",
        json={"arg": {"conversationId": "Ab C", "title": "T"}},
        headers=headers,
    )
    assert saved.status_code == 201
    status, answer = send_raw(librechat_double.url, "GET", "/API/Convos/Ab%20C", headers=headers)
    assert status == 200
    assert json.loads(answer)["conversationId"] == "Ab C"
    # Another case of the id is another conversation: only the route is case-insensitive.
    assert send_raw(librechat_double.url, "GET", "/api/convos/ab%20c", headers=headers)[0] == 404
    [logged] = [r for r in librechat_double.state.requests if r.raw_path == "/API/Convos/Ab%20C"]
    assert logged.path == "/API/Convos/Ab C"
