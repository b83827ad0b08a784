"""Generation outlives its subscribers: disconnects, plain re-subscribes, `?resume=true`."""

from __future__ import annotations

import time

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_user, hang_up_after, read_stream, start, wait_for

FULL_TEXT = "w01" + "".join(f" w{i:02d}" for i in range(2, 21))
SLOW20 = {**FAST, "fake_slow_token_count": 20}


def test_disconnect_keeps_generating_and_resume_sends_sync(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**SLOW20)
    state = double.state
    client = chat_user(double, clients, "resume@example.com")
    started = start(client, "SLOW resume test.")
    stream_id = started["streamId"]

    first = hang_up_after(double, client, stream_id, 7)  # the tab closes after `w03`
    assert first.kinds()[-3:] == ["on_message_delta"] * 3
    assert first.text() == "w01 w02 w03"
    assert state.chat.subscriber_count(stream_id) == 0

    # Nobody listens, the model goes on; the partial answer is saved when the tab left.
    assert client.get("/api/agents/chat/active").json() == {"activeJobIds": [stream_id]}
    job = state.chat.get_job(stream_id)
    assert job is not None
    wait_for(lambda: len(job.aggregated_content()[0]["text"]) >= len("w01 w02 w03 w04 w05"))
    status = client.get(f"/api/agents/chat/status/{stream_id}").json()
    assert list(status) == [
        "active",
        "streamId",
        "status",
        "aggregatedContent",
        "createdAt",
        "resumeState",
    ]
    assert (status["active"], status["streamId"], status["status"]) == (True, stream_id, "running")
    assert status["aggregatedContent"][0]["text"].startswith("w01 w02 w03 w04")
    assert list(status["resumeState"]) == [
        "runSteps",
        "aggregatedContent",
        "userMessage",
        "responseMessageId",
        "conversationId",
        "sender",
        "model",
        "titleEvent",
        "contextUsage",
    ]
    partial = client.get(f"/api/messages/{stream_id}").json()
    assert [m["isCreatedByUser"] for m in partial] == [True, False]
    assert partial[1]["unfinished"] is True
    assert partial[1]["content"][0]["text"].startswith("w01 w02 w03")
    assert "text" not in partial[1]

    resumed = read_stream(client, stream_id, resume=True)

    sync = resumed.events[0]
    assert sync.kind == "sync"
    assert list(sync.data) == ["sync", "resumeState", "pendingEvents"]
    assert sync.data["pendingEvents"] == []
    resume_state = sync.data["resumeState"]
    assert resume_state["titleEvent"]["data"]["title"] == "Fake Chat Title"
    assert resume_state["userMessage"]["text"] == "SLOW resume test."
    assert resume_state["responseMessageId"] == resume_state["runSteps"][0]["runId"]
    caught_up = resume_state["aggregatedContent"][0]["text"]
    # Nothing from the first connection is repeated: only live deltas, then `final`.
    assert set(resumed.kinds()[1:-1]) == {"on_message_delta"}
    assert resumed.kinds()[-1] == "final"
    assert caught_up + resumed.text() == FULL_TEXT
    final = resumed.events[-1].data
    assert final["responseMessage"]["content"] == [{"type": "text", "text": FULL_TEXT}]
    saved = client.get(f"/api/messages/{stream_id}").json()[1]
    assert (saved["unfinished"], saved["text"]) == (False, "")
    assert (state.generations_completed, state.stream_subscriptions) == (1, 2)


def test_plain_resubscribe_gets_only_the_gap_and_live_events(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**SLOW20)
    client = chat_user(double, clients, "again@example.com")
    started = start(client, "SLOW please")
    first = hang_up_after(double, client, started["streamId"], 7)
    time.sleep(0.12)

    second = read_stream(client, started["streamId"])

    assert set(second.kinds()[:-1]) == {"on_message_delta"}  # no created, no sync, no run step
    assert second.kinds()[-1] == "final"
    # The gap arrives first (buffered while nobody listened), then the live words.
    assert second.text().startswith(" w0")
    assert FULL_TEXT.endswith(second.text())
    assert len(first.text()) + len(second.text()) <= len(FULL_TEXT)


def test_a_second_subscriber_shares_the_live_events(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "tabs@example.com")
    started = start(client, "SLOW two tabs")
    first_tab = hang_up_after(double, client, started["streamId"], 5)
    both = read_stream(client, started["streamId"], resume=True)
    assert both.kinds()[0] == "sync"
    assert both.kinds()[-1] == "final"
    assert first_tab.kinds()[0] == "created"
