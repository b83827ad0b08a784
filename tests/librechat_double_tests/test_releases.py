"""The double as LibreChat 0.8.7 or 0.8.8 (`version`): buildInfo, the ALLOW_EMAIL_LOGIN gate,
steer and resume with the generation protocol, and 0.8.7's routing of those two paths."""

from __future__ import annotations

import httpx
import pytest

from tests.librechat_double import DoubleConfig
from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_body, chat_user, start
from .conftest import PASSWORD, connect

PROTOCOL = "x-librechat-generation-protocol"


def test_only_known_releases() -> None:
    config = DoubleConfig()
    config.update(version="v0.8.7")
    assert config.version == "0.8.7"
    with pytest.raises(ValueError, match=r"version must be one of 0\.8\.7, 0\.8\.8"):
        config.update(version="0.9.0")


@pytest.mark.parametrize("version", ["0.8.7", "0.8.8"])
def test_build_info_names_the_release(
    make_librechat_double: MakeDouble, clients: list[httpx.Client], version: str
) -> None:
    double = make_librechat_double(version=version)
    config = connect(double, clients).get("/api/config").json()
    assert config["buildInfo"]["branch"] == f"v{version}"
    assert set(config["buildInfo"]) == {"commit", "commitShort", "branch", "buildDate"}
    double.config.update(build_branch="")
    assert "buildInfo" not in connect(double, clients).get("/api/config").json()


@pytest.mark.parametrize("version", ["0.8.7", "0.8.8"])
def test_allow_email_login_false(
    make_librechat_double: MakeDouble, clients: list[httpx.Client], version: str
) -> None:
    double = make_librechat_double(version=version, allow_email_login=False)
    double.state.add_user("known@example.com", PASSWORD)
    client = connect(double, clients)
    assert client.get("/api/config").json()["emailLoginEnabled"] is False
    body = {"email": "known@example.com", "password": PASSWORD}
    answer = client.post("/api/auth/login", json=body)
    if version == "0.8.7":
        assert answer.status_code == 200
        return
    assert (answer.status_code, answer.json()) == (403, {"message": "Email login is not allowed."})
    # Before passport: no credentials get the same answer, and the limiter counted both.
    assert client.post("/api/auth/login", json={}).status_code == 403
    assert answer.headers["x-ratelimit-remaining"] == "6"
    double.config.update(allow_email_login_override=True)
    assert client.post("/api/auth/login", json=body).status_code == 200


def test_steer_on_0_8_7_starts_a_turn_on_an_endpoint_called_steer(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(version="0.8.7", **FAST)
    client = chat_user(double, clients, "kim@example.com")
    answer = client.post("/api/agents/chat/steer", json=chat_body("Hello", endpoint="steer"))
    assert answer.status_code == 200
    assert answer.json()["status"] == "started"
    assert double.state.counter("steer_calls") == 0


def test_steer_queues_for_a_running_answer(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(version="0.8.8", steer_queue_max=2, **FAST)
    client = chat_user(double, clients, "kim@example.com")
    conversation = start(client, "SLOW please")["conversationId"]
    steer = {"conversationId": conversation, "text": "and shorter"}
    first = client.post("/api/agents/chat/steer", json=steer, headers={PROTOCOL: "2"})
    assert first.status_code == 202
    assert first.json()["position"] == 1
    assert first.json()["generationProtocolVersion"] == 2
    assert first.headers[PROTOCOL] == "2"
    # Lowest marker wins: the body says 1.
    second = client.post(
        "/api/agents/chat/steer",
        json={**steer, "generationProtocolVersion": 1},
        headers={PROTOCOL: "2"},
    )
    assert (second.status_code, second.json()["generationProtocolVersion"]) == (202, 1)
    full = client.post("/api/agents/chat/steer", json=steer)
    assert (full.status_code, full.json()["code"]) == (429, "STEER_QUEUE_FULL")
    other = chat_user(double, clients, "lee@example.com")
    stranger = other.post("/api/agents/chat/steer", json=steer)
    assert (stranger.status_code, stranger.json()["code"]) == (403, "UNAUTHORIZED")
    long_text = {"conversationId": conversation, "text": "x" * 10001}
    too_long = client.post("/api/agents/chat/steer", json=long_text)
    assert too_long.json() == {
        "code": "STEER_TOO_LONG",
        "maxLength": 10000,
        "generationProtocolVersion": 1,
    }
    client.post("/api/agents/chat/abort", json={"conversationId": conversation})


def test_steer_and_resume_need_a_user(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(version="0.8.8")
    client = connect(double, clients)
    for path in ("/api/agents/chat/steer", "/api/agents/chat/resume"):
        assert client.post(path, json={}).status_code == 401
