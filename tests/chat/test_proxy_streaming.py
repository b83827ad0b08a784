"""Event streams and uploads through the proxy under uvicorn, against the double's chat API."""

from __future__ import annotations

import itertools
import json
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chat.conftest import AppServer, api
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.librechat_double_tests.chat_helpers import FAST, chat_body
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Received:
    status: int
    headers: httpx.Headers
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    comments: list[float] = field(default_factory=list)
    ended: bool = False

    def kinds(self) -> list[str]:
        kinds = []
        for _, data in self.events:
            marker = next((k for k in ("created", "sync", "final") if data.get(k) is True), None)
            kinds.append(marker or str(data.get("event")))
        return kinds


def read(
    client: httpx.Client, stream_id: str, *, resume: bool = False, stop_after: int | None = None
) -> Received:
    url = f"/api/chat/agents/chat/stream/{stream_id}" + ("?resume=true" if resume else "")
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        received = Received(response.status_code, response.headers)
        if response.status_code != 200:
            response.read()
            return received
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                now = time.monotonic()
                if frame.startswith(b":"):
                    received.comments.append(now)
                    continue
                data_line = next(line for line in frame.split(b"\n") if line.startswith(b"data: "))
                received.events.append((now, json.loads(data_line[6:])))
            if stop_after is not None and len(received.events) >= stop_after:
                return received
        received.ended = True
        return received


def start(client: httpx.Client, text: str) -> str:
    response = client.post("/api/chat/agents/chat/Fake", json=chat_body(text))
    assert response.status_code == 200, response.text
    return str(response.json()["streamId"])


@pytest.fixture
def chat(librechat: LibreChatDouble) -> LibreChatDouble:
    librechat.config.update(**FAST)
    return librechat


def test_events_arrive_one_by_one_while_being_produced(
    app_server: AppServer, chat: LibreChatDouble, alice: User
) -> None:
    chat.config.update(fake_token_delay_s=0.25)
    with api(app_server, alice) as client:
        sent_at = time.monotonic()
        received = read(client, start(client, "Hello there"))
    assert received.status == 200
    assert received.headers["content-type"].startswith("text/event-stream")
    assert received.headers["x-accel-buffering"] == "no"
    assert (
        "content-encoding" not in received.headers
        or received.headers["content-encoding"] == "identity"
    )
    kinds = received.kinds()
    assert kinds[0] == "created"
    assert kinds[-1] == "final"
    assert received.ended
    deltas = [
        at
        for (at, _), kind in zip(received.events, kinds, strict=True)
        if kind == "on_message_delta"
    ]
    assert len(deltas) == 5
    # Each delta reached us about when the fake model made it (0.25 s apart), not all at the end.
    gaps = [b - a for a, b in itertools.pairwise(deltas)]
    assert statistics.median(gaps) > 0.15
    assert deltas[0] - sent_at < 0.6
    assert received.events[-1][0] - deltas[0] > 0.8


def test_client_disconnect_closes_upstream_and_generation_goes_on(
    app_server: AppServer, chat: LibreChatDouble, alice: User
) -> None:
    chat.config.update(fake_slow_token_delay_s=0.1, fake_slow_token_count=15)
    with api(app_server, alice) as client:
        stream_id = start(client, "SLOW please")
        partial = read(client, stream_id, stop_after=4)
        assert not partial.ended
        wait_for(lambda: chat.state.counter("stream_disconnects") >= 1, message="upstream closed")
        wait_for(
            lambda: chat.state.counter("generations_completed") >= 1, timeout=15, message="done"
        )
        assert chat.state.counter("generations_aborted") == 0
        messages = client.get(f"/api/chat/messages/{stream_id}").json()
    answer = messages[-1]["content"][0]["text"]
    assert answer.split() == [f"w{n:02d}" for n in range(1, 16)]


def test_abort_stops_generation(app_server: AppServer, chat: LibreChatDouble, alice: User) -> None:
    chat.config.update(fake_slow_token_delay_s=0.1, fake_slow_token_count=40)
    with api(app_server, alice) as client:
        stream_id = start(client, "SLOW please")
        first = read(client, stream_id, stop_after=5)
        assert not first.ended
        aborted = client.post("/api/chat/agents/chat/abort", json={"streamId": stream_id})
        assert aborted.status_code == 200
        assert aborted.json()["success"] is True
    wait_for(lambda: chat.state.counter("generations_aborted") == 1, message="aborted")
    assert chat.state.counter("generations_completed") == 0


def test_resume_after_reconnect_starts_with_sync(
    app_server: AppServer, chat: LibreChatDouble, alice: User
) -> None:
    chat.config.update(fake_slow_token_delay_s=0.1, fake_slow_token_count=12)
    with api(app_server, alice) as client:
        stream_id = start(client, "SLOW please")
        read(client, stream_id, stop_after=3)
        resumed = read(client, stream_id, resume=True)
    assert resumed.status == 200
    assert resumed.kinds()[0] == "sync"
    assert resumed.kinds()[-1] == "final"


def test_idle_streams_get_ping_comments_between_events(
    app_server: AppServer, chat: LibreChatDouble, alice: User, settings: Any
) -> None:
    settings.CHAT_PROXY_PING_INTERVAL_S = 0.1
    chat.config.update(fake_slow_token_delay_s=0.45, fake_slow_token_count=4)
    with api(app_server, alice) as client:
        received = read(client, start(client, "SLOW please"))
    assert received.ended
    assert len(received.comments) >= 4
    # The client parsed every event intact: pings never split one.
    assert received.kinds()[-1] == "final"


def test_a_stream_librechat_breaks_off_ends_with_an_error_event(
    app_server: AppServer, chat: LibreChatDouble, alice: User
) -> None:
    chat.config.update(fake_slow_token_delay_s=0.2, fake_slow_token_count=40)
    raw = b""
    with api(app_server, alice) as client:
        stream_id = start(client, "SLOW please")
        with client.stream("GET", f"/api/chat/agents/chat/stream/{stream_id}") as response:
            chunks = response.iter_raw()
            for chunk in chunks:
                raw += chunk
                if raw.count(b"on_message_delta") >= 2:
                    break
            chat.set_mode("crash")  # LibreChat killed mid-answer: its chunked body breaks off
            for chunk in chunks:  # the client's own stream ends cleanly ...
                raw += chunk
    frames = [frame for frame in raw.split(b"\n\n") if frame.strip()]
    # ... with LibreChat's error shape last, not a silent end that looks like a finished answer.
    assert frames[-1].startswith(b"event: error\ndata: ")
    assert b'"final":true' not in raw
    error = json.loads(frames[-1].split(b"data: ", 1)[1])
    detail = json.loads(error["error"])
    assert detail["type"] == "librechat_stream_interrupted"
    assert "may be incomplete" in detail["message"]
    assert all(frame.startswith(b"event: message\ndata: {") for frame in frames[:-1])


def test_late_subscriber_gets_librechats_404(
    app_server: AppServer, chat: LibreChatDouble, alice: User
) -> None:
    with api(app_server, alice) as client:
        stream_id = start(client, "Hello")
        read(client, stream_id)
        late = client.get(f"/api/chat/agents/chat/stream/{stream_id}")
    assert late.status_code == 404
    assert late.json()["error"] == "Stream not found"


def test_sse_denial_on_the_chat_post_becomes_a_json_error(
    app_server: AppServer, chat: LibreChatDouble, alice: User
) -> None:
    chat.config.update(message_ip_max=1)
    with api(app_server, alice) as client:
        assert client.post("/api/chat/agents/chat/Fake", json=chat_body("one")).status_code == 200
        denied = client.post("/api/chat/agents/chat/Fake", json=chat_body("two"))
    assert denied.status_code == 429
    error = denied.json()["error"]
    assert error["code"] == "librechat_rate_limited"
    assert "message limit is reached (1 per 1 minute(s))" in error["message"]
    assert error["librechat"]["type"] == "message_limit"


def test_sse_denial_of_someone_elses_conversation(
    app_server: AppServer, chat: LibreChatDouble, alice: User, bob: User
) -> None:
    with api(app_server, alice) as client:
        convo = start(client, "mine")
    with api(app_server, bob) as client:
        denied = client.post(
            "/api/chat/agents/chat/Fake",
            json=chat_body("yours?", conversationId=convo, parentMessageId=convo),
        )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "librechat_denied"


def test_50mb_upload_streams_through_with_flat_memory(
    app_server: AppServer, chat: LibreChatDouble, alice: User, tmp_path: Path
) -> None:
    upload = tmp_path / "big.bin"
    with upload.open("wb") as f:
        for _ in range(50):
            f.write(b"\x00" * (1024 * 1024))
    tracemalloc.start()
    try:
        with api(app_server, alice) as client, upload.open("rb") as handle:
            response = client.post(
                "/api/chat/files",
                data={
                    "file_id": "0d4b5e1c-7a8b-4c2d-9e3f-1a2b3c4d5e6f",
                    "endpoint": "Fake",
                    "message_file": "true",
                },
                files={"file": ("big.bin", handle, "application/octet-stream")},
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == 50 * 1024 * 1024
    # Client, proxy and double all run in this process: none of them held the 50 MB.
    assert peak < 16 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
