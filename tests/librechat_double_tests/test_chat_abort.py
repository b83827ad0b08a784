"""POST /api/agents/chat/abort: mid-stream, before subscribing, and the look-up fallbacks."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, Event, chat_user, parse_frames, read_stream, start, wait_for

SLOW40 = {**FAST, "fake_slow_token_count": 40}


def test_abort_mid_stream_saves_the_partial_and_ends_the_stream(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**SLOW40)
    state = double.state
    client = chat_user(double, clients, "stop@example.com")
    aborter = httpx.Client(base_url=double.url, headers=client.headers, timeout=5)
    clients.append(aborter)
    started = start(client, "SLOW please talk for a while.")
    stream_id = started["streamId"]
    events: list[Event] = []
    abort_reply: dict[str, Any] = {}

    def abort() -> None:
        abort_reply["response"] = aborter.post(
            "/api/agents/chat/abort", json={"conversationId": stream_id}
        )
        abort_reply["at"] = time.monotonic()

    with client.stream("GET", f"/api/agents/chat/stream/{stream_id}") as response:
        buffer = b""
        thread = threading.Thread(target=abort)
        for chunk in response.iter_raw():
            frames, buffer = parse_frames(buffer + chunk)
            events += [Event(name, data, raw, time.monotonic()) for name, data, raw in frames]
            deltas = [e for e in events if e.kind == "on_message_delta"]
            if len(deltas) == 5 and not thread.is_alive() and "response" not in abort_reply:
                thread.start()
        thread.join()

    final = events[-1].data
    seen = "".join(e.data["data"]["delta"]["content"][0]["text"] for e in events[4:-1])
    assert seen.startswith("w01 w02 w03 w04 w05")
    assert len(seen) < len("w01") + 39 * 4
    assert list(final) == [
        "final",
        "conversation",
        "title",
        "requestMessage",
        "responseMessage",
        "aborted",
        "earlyAbort",
    ]
    assert final["conversation"] == {"conversationId": stream_id}
    assert final["title"] == "New Chat"
    assert list(final["requestMessage"]) == [
        "messageId",
        "parentMessageId",
        "conversationId",
        "text",
        "isCreatedByUser",
    ]
    response_message = final["responseMessage"]
    assert response_message["content"] == [{"type": "text", "text": seen}]
    assert (response_message["unfinished"], final["aborted"], final["earlyAbort"]) == (
        True,
        True,
        False,
    )
    reply = abort_reply["response"]
    assert (reply.status_code, reply.json()) == (200, {"success": True, "aborted": stream_id})
    assert events[-1].at <= abort_reply["at"] + 0.2  # the stream hears of it first

    saved = client.get(f"/api/messages/{stream_id}").json()
    assert saved[1]["messageId"] == response_message["messageId"]
    assert (saved[1]["text"], saved[1]["unfinished"]) == (seen, True)
    assert client.get(f"/api/agents/chat/status/{stream_id}").json() == {"active": False}
    again = client.post("/api/agents/chat/abort", json={"conversationId": stream_id})
    assert (again.status_code, again.json()) == (
        404,
        {"error": "Job not found", "streamId": stream_id},
    )
    time.sleep(0.12)  # the model was stopped: nothing more is saved, the title is dropped
    assert client.get(f"/api/messages/{stream_id}").json()[1]["text"] == seen
    assert client.get(f"/api/convos/{stream_id}").json()["title"] == "New Chat"
    assert client.get(f"/api/convos/gen_title/{stream_id}").status_code == 404
    assert (state.generations_aborted, state.generations_completed) == (1, 0)
    assert state.chat.pending_requests(_user_id(client)) == 0


def test_abort_before_subscribing(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "fake_start_delay_s": 0.3})
    client = chat_user(double, clients, "early@example.com")
    started = start(client, "Hello")
    stream_id = started["streamId"]

    reply = client.post("/api/agents/chat/abort", json={"conversationId": stream_id})

    assert reply.json() == {"success": True, "aborted": stream_id}
    late = read_stream(client, stream_id)
    assert late.status == 404
    wait_for(lambda: len(double.state.chat.get_messages(_user_id(client), stream_id)) == 2)
    user_message, answer = client.get(f"/api/messages/{stream_id}").json()
    assert user_message["text"] == "Hello"
    assert (answer["content"], answer["text"], answer["unfinished"]) == ([], "", False)
    assert client.get(f"/api/convos/{stream_id}").json()["title"] == "New Chat"


def test_abort_falls_back_to_the_newest_active_job_and_checks_the_owner(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**SLOW40)
    client = chat_user(double, clients, "owner@example.com")
    other = chat_user(double, clients, "other@example.com")
    started = start(client, "SLOW long")

    foreign = other.post("/api/agents/chat/abort", json={"streamId": started["streamId"]})
    assert (foreign.status_code, foreign.json()) == (403, {"error": "Unauthorized"})
    nothing = other.post("/api/agents/chat/abort", json={})
    assert (nothing.status_code, nothing.json()) == (404, {"error": "Job not found"})
    forbidden_stream = read_stream(other, started["streamId"])
    assert (forbidden_stream.status, json.loads(forbidden_stream.body)) == (
        403,
        {"error": "Unauthorized"},
    )

    reply = client.post("/api/agents/chat/abort", json={"conversationId": "new"})
    assert reply.json() == {"success": True, "aborted": started["streamId"]}
    assert double.state.chat.active_job_ids() == []


def _user_id(client: httpx.Client) -> str:
    user_id: str = client.get("/api/user").json()["id"]
    return user_id
