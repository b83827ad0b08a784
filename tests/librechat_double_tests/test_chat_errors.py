"""Pre-start denials (limiters, concurrency, foreign conversations) and failing generations."""

from __future__ import annotations

import json

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import (
    CLIENT_MESSAGE_ID,
    FAST,
    NO_PARENT,
    chat_body,
    chat_user,
    parse_frames,
    read_stream,
    start,
)
from .conftest import BROWSER_UA

ILLEGAL = 'event: error\ndata: {"message":"Illegal request"}\n\n'


def _user_id(client: httpx.Client) -> str:
    user_id: str = client.get("/api/user").json()["id"]
    return user_id


def test_message_ip_limiter_denies_with_sse_text(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "message_ip_max": 2})
    client = chat_user(double, clients, "limit@example.com")
    for _ in range(2):
        read_stream(client, start(client, "Hello")["streamId"])

    denied = client.post("/api/agents/chat/Fake", json=chat_body("Hello"))

    assert denied.status_code == 200
    assert "content-type" not in denied.headers
    assert denied.headers["x-ratelimit-limit"] == "2"
    assert denied.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(denied.headers["retry-after"]) <= 60
    (created_name, created, _), (error_name, error, _) = parse_frames(denied.content)[0]
    assert (created_name, error_name) == ("message", "error")
    assert created == {
        "message": {
            "sender": "User",
            "messageId": CLIENT_MESSAGE_ID,
            "parentMessageId": NO_PARENT,
            "conversationId": created["message"]["conversationId"],
            "isCreatedByUser": True,
            "text": "Hello",
        },
        "created": True,
    }
    assert json.loads(error["text"]) == {
        "type": "message_limit",
        "max": 2,
        "limiter": "ip",
        "windowInMinutes": 1,
    }
    assert (error["sender"], error["error"], error["final"]) == ("Fake", True, True)
    state = double.state
    assert (state.message_limit_denials, state.generations_started) == (1, 2)
    assert state.violation_score(_user_id(client), "message_limit") == 1


def test_message_limiters_key_on_the_forwarded_ip_and_the_user(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(
        **{**FAST, "message_ip_max": 1, "limit_message_user": True, "message_user_max": 2}
    )
    client = chat_user(double, clients, "xff@example.com")
    for address in ("198.51.100.1", "198.51.100.2"):
        response = client.post(
            "/api/agents/chat/Fake",
            json=chat_body("Hello"),
            headers={"X-Forwarded-For": address},
        )
        assert response.json()["status"] == "started"
        # The user limiter runs second: its headers are the ones sent.
        assert response.headers["x-ratelimit-limit"] == "2"
        read_stream(client, response.json()["streamId"])
    third = client.post(
        "/api/agents/chat/Fake", json=chat_body("Hi"), headers={"X-Forwarded-For": "198.51.100.3"}
    )
    assert '"limiter\\":\\"user\\"' in third.text

    recorded = double.state.requests_to("/api/agents/chat/Fake", "POST")[0]
    assert recorded.header("x-forwarded-for") == "198.51.100.1"
    assert recorded.client_ip == "198.51.100.1"
    assert recorded.header("user-agent") == BROWSER_UA
    assert recorded.header("authorization") == client.headers["Authorization"]
    assert recorded.json()["text"] == "Hello"


def test_concurrent_generations_are_limited_per_user(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "concurrent_message_max": 1})
    client = chat_user(double, clients, "busy@example.com")
    first = start(client, "Hello")

    refused = client.post("/api/agents/chat/Fake", json=chat_body("Hello"))

    assert refused.status_code == 429
    assert refused.json() == {"type": "concurrent", "limit": 1, "pendingRequests": 1, "score": 1}
    assert refused.headers["x-ratelimit-remaining"] == "38"
    assert double.state.violation_score(_user_id(client), "concurrent") == 1
    assert double.state.concurrent_limit_denials == 1
    read_stream(client, first["streamId"])
    read_stream(client, start(client, "Hello")["streamId"])  # the slot is free again


def test_someone_elses_conversation_is_denied(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    owner = chat_user(double, clients, "owner@example.com")
    intruder = chat_user(double, clients, "intruder@example.com")
    started = start(owner, "Hello")
    read_stream(owner, started["streamId"])

    denied = intruder.post(
        "/api/agents/chat/Fake",
        json=chat_body("Mine now", conversationId=started["conversationId"]),
    )

    frames = parse_frames(denied.content)[0]
    assert denied.status_code == 200
    assert [name for name, _, _ in frames] == ["message", "error"]
    assert json.loads(frames[1][1]["text"]) == {
        "type": "convo_access",
        "error": "User not authorized for this conversation",
    }
    assert double.state.generations_started == 1


def test_non_browser_user_agents_get_illegal_request(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "ban_violations": False})
    client = chat_user(double, clients, "bot@example.com")
    started = start(client, "Hello")
    bot = {"User-Agent": "python-httpx/0.28"}
    for response in (
        client.get(f"/api/agents/chat/stream/{started['streamId']}", headers=bot),
        client.post("/api/agents/chat/Fake", json=chat_body("Hi"), headers=bot),
        client.post("/api/agents/chat/abort", json={}, headers=bot),
    ):
        assert (response.status_code, response.text) == (200, ILLEGAL)
    read_stream(client, started["streamId"])


def test_upstream_error_ends_with_an_error_part_after_the_retries(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "fake_llm_error_delay_s": 0.3})
    client = chat_user(double, clients, "fail@example.com")
    started = start(client, "LLMERROR please fail.")

    stream = read_stream(client, started["streamId"])

    assert stream.kinds() == ["created", "on_context_usage", "title", "final"]
    assert stream.events[-1].at - stream.events[2].at > 0.2  # silence, no heartbeat
    final = stream.events[-1].data
    assert final["title"] == "New Chat"
    assert final["responseMessage"]["content"] == [
        {
            "type": "error",
            "error": "An error occurred while processing the request: 500 fake upstream failure",
        }
    ]
    saved = client.get(f"/api/messages/{started['streamId']}").json()[1]
    assert (saved["error"], saved["text"]) == (False, "")
    assert client.get(f"/api/convos/{started['streamId']}").json()["title"] == "Fake Chat Title"


def test_unknown_endpoint_fails_in_the_stream_and_the_job_lingers(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "nosuch@example.com")
    response = client.post("/api/agents/chat/NoSuch", json=chat_body("Hello", endpoint="NoSuch"))
    stream_id = response.json()["streamId"]
    assert response.json()["status"] == "started"

    stream = read_stream(client, stream_id)

    expected = (
        b'event: error\ndata: {"error":"{ \\"type\\": \\"endpoint_models_not_loaded\\", '
        b'\\"info\\": \\"NoSuch\\" }"}\n\n'
    )
    assert [e.raw for e in stream.events] == [expected]
    assert stream.ended
    status = client.get(f"/api/agents/chat/status/{stream_id}").json()
    assert (status["active"], status["status"], status["aggregatedContent"]) == (
        False,
        "error",
        [],
    )
    assert status["resumeState"]["responseMessageId"] == f"{CLIENT_MESSAGE_ID}_"
    assert [e.raw for e in read_stream(client, stream_id).events] == [expected]
    assert client.get(f"/api/convos/{stream_id}").status_code == 404
    assert double.state.generations_failed == 1
    double.state.advance_clock(61)  # the cleanup sweep removes failed jobs
    assert read_stream(client, stream_id).status == 404


def test_new_turns_need_a_json_body(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "nobody@example.com")
    empty = client.post("/api/agents/chat/Fake")
    assert (empty.status_code, empty.text) == (500, "An unknown error occurred.")
    broken = client.post(
        "/api/agents/chat/Fake", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, broken.text) == (400, "{oops")


def test_going_down_loses_the_running_jobs(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "restart@example.com")
    started = start(client, "SLOW and then a restart")
    assert double.state.chat.active_job_ids() == [started["streamId"]]

    double.set_mode("down")
    double.set_mode("ok")

    assert double.state.chat.active_job_ids() == []
    assert read_stream(client, started["streamId"]).status == 404
    read_stream(client, start(client, "Hello")["streamId"])  # the concurrency slot came back
