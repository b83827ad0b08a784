"""The chat routes LibreChat 0.8.8 adds (steer, resume) through the proxy under uvicorn, against
the double answering like each release: passed on 0.8.8 with LibreChat's own answers and its
generation-protocol header, refused before LibreChat is asked on 0.8.7."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.chat.conftest import AppServer, api
from tests.librechat_double.server import LibreChatDouble
from tests.librechat_double_tests.chat_helpers import FAST, chat_body
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)
PROTOCOL = "X-LibreChat-Generation-Protocol"


@pytest.fixture
def chat(librechat: LibreChatDouble) -> LibreChatDouble:
    librechat.config.update(**FAST)
    return librechat


def start_slow(client: httpx.Client) -> str:
    response = client.post("/api/chat/agents/chat/Fake", json=chat_body("SLOW steer me"))
    assert response.status_code == 200, response.text
    return str(response.json()["conversationId"])


def sent_to_librechat(double: LibreChatDouble, path: str) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in double.state.requests if r.path == path]


def test_steer_reaches_a_running_answer_on_0_8_8_only(
    app_server: AppServer, chat: LibreChatDouble, alice: User, librechat_version: str
) -> None:
    with api(app_server, alice) as client:
        conversation = start_slow(client)
        steered = client.post(
            "/api/chat/agents/chat/steer",
            json={"conversationId": conversation, "text": "  shorter, please "},
            headers={PROTOCOL: "2"},
        )
        job = chat.state.chat.get_job(conversation)
        client.post("/api/chat/agents/chat/abort", json={"conversationId": conversation})
    if librechat_version == "0.8.7":
        assert steered.status_code == 403
        assert steered.json()["error"]["code"] == "route_refused"
        assert sent_to_librechat(chat, "/api/agents/chat/steer") == []
        return
    assert steered.status_code == 202, steered.text
    answer = steered.json()
    assert answer["status"] == "queued"
    assert answer["conversationId"] == conversation
    assert (answer["position"], answer["generationProtocolVersion"]) == (1, 2)
    assert steered.headers[PROTOCOL] == "2"  # LibreChat's header comes back to the client
    assert job is not None
    assert [s["text"] for s in job.steers] == ["shorter, please"]
    forwarded = [r for r in chat.state.requests if r.path == "/api/agents/chat/steer"]
    assert forwarded[0].header(PROTOCOL) == "2"  # and the client's goes to LibreChat


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"conversationId": "new", "text": "x"}, 400, "INVALID_CONVERSATION"),
        (
            {"conversationId": "c0ffee00-0000-4000-8000-000000000000", "text": " "},
            400,
            "EMPTY_TEXT",
        ),
        ({"conversationId": "c0ffee00-0000-4000-8000-000000000000", "text": "x"}, 404, None),
    ],
)
def test_steer_refusals_are_librechats(
    app_server: AppServer,
    chat: LibreChatDouble,
    alice: User,
    librechat_version: str,
    body: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    with api(app_server, alice) as client:
        answer = client.post("/api/chat/agents/chat/steer", json=body)
    if librechat_version == "0.8.7":
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "route_refused"
        assert sent_to_librechat(chat, "/api/agents/chat/steer") == []
        return
    assert answer.status_code == status
    # No marker sent: protocol 1, said in the body and the header.
    assert answer.json() == {"code": code or "NO_ACTIVE_RUN", "generationProtocolVersion": 1}
    assert answer.headers[PROTOCOL] == "1"


def test_resume_of_a_run_that_is_not_paused(
    app_server: AppServer, chat: LibreChatDouble, alice: User, librechat_version: str
) -> None:
    with api(app_server, alice) as client:
        conversation = start_slow(client)
        running = client.post(
            "/api/chat/agents/chat/resume",
            json={"conversationId": conversation, "actionId": "a1", "endpoint": "Fake"},
        )
        gone = client.post(
            "/api/chat/agents/chat/Resume/",
            json={"conversationId": "c0ffee00-0000-4000-8000-000000000000"},
        )
        client.post("/api/chat/agents/chat/abort", json={"conversationId": conversation})
    if librechat_version == "0.8.7":
        assert (running.status_code, gone.status_code) == (403, 403)
        assert sent_to_librechat(chat, "/api/agents/chat/resume") == []
        return
    assert running.status_code == 409
    assert running.json()["error"] == "No live pending action to resume"
    assert gone.status_code == 404
    assert gone.json()["error"] == "No paused generation for this conversation"


def test_the_release_is_asked_once_and_only_for_later_routes(
    app_server: AppServer, chat: LibreChatDouble, alice: User, librechat_version: str
) -> None:
    with api(app_server, alice) as client:
        assert client.get("/api/chat/convos").status_code == 200
        config_reads = [r for r in chat.state.requests if r.path == "/api/config"]
        assert config_reads == []  # a route every release has needs no answer
        for _ in range(3):
            client.post("/api/chat/agents/chat/steer", json={"conversationId": "new", "text": "x"})
    config_reads = [r for r in chat.state.requests if r.path == "/api/config"]
    assert len(config_reads) == 1
