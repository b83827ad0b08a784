"""A chat turn over real HTTP: the POST, the SSE stream, its timing, framing and lifetime."""

from __future__ import annotations

import itertools
import json
import time

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import (
    CLIENT_MESSAGE_ID,
    FAST,
    NO_PARENT,
    chat_body,
    chat_user,
    raw_chunks,
    read_stream,
    start,
    wait_for,
)
from .conftest import BROWSER_UA

PLAIN_REPLY = "Hello from the fake model."


def test_new_conversation_streams_like_the_capture(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "fake_token_delay_s": 0.08})
    client = chat_user(double, clients, "a@example.com")

    posted_at = time.monotonic()
    response = client.post("/api/agents/chat/Fake", json=chat_body("Hello there, say something."))
    answered_in = time.monotonic() - posted_at
    started = response.json()
    stream_id = started["streamId"]
    assert list(started) == ["streamId", "conversationId", "status"]
    assert started == {"streamId": stream_id, "conversationId": stream_id, "status": "started"}
    assert answered_in < 0.3  # long before the 5 words are generated
    assert double.state.chat.active_job_ids() == [stream_id]
    assert response.headers["x-ratelimit-limit"] == "40"
    assert response.headers["x-ratelimit-remaining"] == "39"

    stream = read_stream(client, stream_id)

    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-cache, no-transform"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.headers["content-encoding"] == "identity"
    assert stream.headers["transfer-encoding"] == "chunked"
    assert stream.ended
    assert stream.kinds() == [
        "created",
        "on_context_usage",
        "title",
        "on_run_step",
        *["on_message_delta"] * 5,
        "final",
    ]
    assert stream.text() == PLAIN_REPLY
    created, usage, title = (e.data for e in stream.events[:3])
    user_message_id = created["message"]["messageId"]
    assert user_message_id != CLIENT_MESSAGE_ID  # the server assigns it
    assert created == {
        "created": True,
        "message": {
            "messageId": user_message_id,
            "parentMessageId": NO_PARENT,
            "conversationId": stream_id,
            "sender": "User",
            "text": "Hello there, say something.",
            "isCreatedByUser": True,
            "tokenCount": 10,
        },
        "streamId": stream_id,
    }
    response_id = usage["data"]["runId"]
    assert usage["data"]["agentId"] == "Fake__fake-model___Fake"
    assert usage["data"]["breakdown"]["messageCount"] == 1
    assert title == {
        "event": "title",
        "data": {"conversationId": stream_id, "title": "Fake Chat Title"},
    }
    run_step = stream.events[3].data["data"]
    assert run_step["runId"] == response_id
    assert run_step["stepDetails"]["message_creation"]["message_id"].startswith("chatcmpl-")
    assert stream.events[4].data == {
        "event": "on_message_delta",
        "data": {"id": run_step["id"], "delta": {"content": [{"type": "text", "text": "Hello"}]}},
    }

    final = stream.events[-1].data
    assert list(final) == ["final", "conversation", "title", "requestMessage", "responseMessage"]
    assert final["title"] == final["conversation"]["title"] == "New Chat"  # stale, as captured
    assert final["requestMessage"]["messageId"] == user_message_id
    assert final["requestMessage"]["tokenCount"] == 10
    assert final["responseMessage"] == {
        "messageId": response_id,
        "conversationId": stream_id,
        "parentMessageId": user_message_id,
        "isCreatedByUser": False,
        "isEdited": False,
        "model": "fake-model",
        "sender": "Fake",
        "promptTokens": 10,
        "endpoint": "Fake",
        "text": "",
        "content": [{"type": "text", "text": PLAIN_REPLY}],
        "tokenCount": 3,
        "attachments": [],
    }
    conversation = final["conversation"]
    assert list(conversation)[:4] == ["_id", "conversationId", "user", "__v"]
    assert conversation["endpointType"] == "custom"
    assert len(conversation["messages"]) == 2

    # The deltas keep the script's rhythm: one per token delay, after the first token delay.
    deltas = [e.at for e in stream.of("on_message_delta")]
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(deltas))
    assert 0.06 < gaps[len(gaps) // 2] < 0.3, gaps  # the median, robust to a busy machine
    assert deltas[-1] - deltas[0] > 4 * 0.08 * 0.8
    assert stream.events[3].at - stream.events[0].at > 0.04

    # The job is deleted on completion; the title is served once from the cache.
    late = read_stream(client, stream_id)
    assert (late.status, json.loads(late.body)) == (
        404,
        {
            "error": "Stream not found",
            "message": "The generation job does not exist or has expired.",
        },
    )
    assert client.get(f"/api/convos/gen_title/{stream_id}").json() == {"title": "Fake Chat Title"}
    assert client.get(f"/api/convos/{stream_id}").json()["title"] == "Fake Chat Title"
    missing_title = client.get(f"/api/convos/gen_title/{stream_id}")
    assert missing_title.status_code == 404
    assert double.state.generations_completed == 1
    assert double.state.stream_subscriptions == 1
    assert double.state.chat.active_job_ids() == []


def test_second_turn_uses_the_server_ids(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "b@example.com")
    first = start(client, "Hello there, say something.")
    first_final = read_stream(client, first["streamId"]).events[-1].data
    parent = first_final["responseMessage"]["messageId"]

    second = start(
        client,
        "And a second message.",
        conversationId=first["conversationId"],
        parentMessageId=parent,
    )
    stream = read_stream(client, second["streamId"])

    assert second["streamId"] == first["streamId"]  # the conversation id, every turn
    assert stream.kinds() == [
        "created",
        "on_context_usage",
        "on_run_step",
        *["on_message_delta"] * 5,
        "final",
    ]
    created = stream.events[0].data["message"]
    assert "tokenCount" not in created
    assert created["parentMessageId"] == parent
    assert stream.events[1].data["data"]["breakdown"]["messageCount"] == 3
    final = stream.events[-1].data
    assert final["title"] == final["conversation"]["title"] == "Fake Chat Title"
    assert final["requestMessage"]["tokenCount"] == 9
    assert final["responseMessage"]["promptTokens"] == 10 + 3 + 9
    assert len(final["conversation"]["messages"]) == 4


def test_a_parent_still_being_saved_is_refused(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "c@example.com")
    response = client.post(
        "/api/agents/chat/Fake",
        json=chat_body("Follow-up", parentMessageId=f"{CLIENT_MESSAGE_ID}_"),
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "Cannot submit a follow-up while the selected parent response is still being "
        "saved. Please wait and try again."
    }
    assert response.headers["x-ratelimit-remaining"] == "39"
    assert double.state.generations_started == 0


def test_events_before_the_first_subscriber_are_buffered(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "fake_slow_token_count": 20})
    client = chat_user(double, clients, "d@example.com")
    started = start(client, "SLOW please")
    job = double.state.chat.get_job(started["streamId"])
    assert job is not None
    wait_for(lambda: len(job.content) > 0)
    time.sleep(0.12)

    stream = read_stream(client, started["streamId"])

    kinds = stream.kinds()
    assert kinds[:4] == ["created", "on_context_usage", "title", "on_run_step"]
    assert kinds[-1] == "final"
    assert stream.text() == "w01" + "".join(f" w{i:02d}" for i in range(2, 21))
    # The buffered events arrive at once; the live ones keep the slow rhythm.
    assert stream.events[4].at - stream.events[0].at < 0.05
    live = [e.at for e in stream.of("on_message_delta")[-6:]]
    assert live[-1] - live[0] > 5 * 0.05 * 0.8


def test_one_http_chunk_per_event(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "e@example.com")
    started = start(client, "Hello")
    headers = {
        "Authorization": str(client.headers["Authorization"]),
        "User-Agent": BROWSER_UA,
        "Accept": "text/event-stream",
    }

    chunks = list(raw_chunks(double, f"/api/agents/chat/stream/{started['streamId']}", headers))

    assert chunks[-1] == b""  # the zero-length chunk ends the response after `final`
    for chunk in chunks[:-1]:
        text = chunk.decode()
        assert text.startswith("event: message\ndata: {")
        assert text.endswith("}\n\n")
        assert text.count("\n") == 3  # one data line, compact JSON
    assert json.loads(chunks[-2].decode().split("data: ", 1)[1])["final"] is True
    assert len(chunks) == 11


def test_guards_and_auth_on_the_chat_routes(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "f@example.com")
    started = start(client, "Hello")
    read_stream(client, started["streamId"])

    anonymous = httpx.get(
        f"{double.url}/api/agents/chat/active", headers={"User-Agent": BROWSER_UA}
    )
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "No auth token"})
    bad = httpx.get(
        f"{double.url}/api/agents/chat/active",
        headers={"User-Agent": BROWSER_UA, "Authorization": "Bearer x.y.z"},
    )
    assert bad.status_code == 401
    other = chat_user(double, clients, "other@example.com")
    assert other.get(f"/api/convos/{started['conversationId']}").status_code == 404

    double.set_ready(False)
    refused = client.post("/api/agents/chat/Fake", json=chat_body("Hi"))
    assert (refused.status_code, refused.json()) == (503, {"code": "SERVER_NOT_READY"})
    assert refused.headers["retry-after"] == "1"

    double.set_ready(True)
    missing = client.post("/api/agents/chat/Fake", json={**chat_body("Hi"), "endpoint": None})
    assert missing.status_code == 200
    assert missing.text == 'event: error\ndata: {"text":"Error parsing conversation"}\n\n'
    assert "content-type" not in missing.headers
