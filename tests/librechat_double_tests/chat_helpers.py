"""Helpers for the chat API tests: a logged-in browser client, chat bodies, an SSE reader."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.librechat_double import LibreChatDouble

from .conftest import BROWSER_UA, connect, register_and_login

NO_PARENT = "00000000-0000-0000-0000-000000000000"
CLIENT_MESSAGE_ID = "5c0b1bd2-3a39-4b5e-9a43-0f7c8b2f4a11"
# Delays short enough for a fast suite, long enough to see the spacing.
FAST = {
    "duplicate_delay_s": 0.0,
    "fake_start_delay_s": 0.01,
    "fake_token_delay_s": 0.04,
    "fake_slow_token_delay_s": 0.05,
    "fake_slow_token_count": 12,
    "fake_title_delay_s": 0.005,
    "fake_final_delay_s": 0.01,
    "gen_title_poll_delays_s": (0.05, 0.05),
}


@dataclass
class Event:
    """One SSE event: its `event:` name, the parsed `data:`, the raw frame, when it arrived."""

    name: str
    data: Any
    raw: bytes
    at: float

    @property
    def kind(self) -> str:
        """What LibreChat's client switches on: created, sync, final, or data.event."""
        if self.name == "error":
            return "error"
        for key in ("created", "sync", "final"):
            if isinstance(self.data, dict) and self.data.get(key) is True:
                return key
        return str(self.data.get("event")) if isinstance(self.data, dict) else "?"


@dataclass
class Stream:
    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    body: bytes = b""
    ended: bool = False

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def text(self) -> str:
        deltas = self.of("on_message_delta")
        return "".join(e.data["data"]["delta"]["content"][0]["text"] for e in deltas)


def chat_user(double: LibreChatDouble, clients: list[httpx.Client], email: str) -> httpx.Client:
    """A browser-like client holding the user's access token."""
    client = connect(double, clients, **{"User-Agent": BROWSER_UA})
    token = register_and_login(client, email).json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def chat_body(text: str, **overrides: Any) -> dict[str, Any]:
    """The body the web client builds for a new conversation on the custom endpoint."""
    body: dict[str, Any] = {
        "text": text,
        "sender": "User",
        "clientTimestamp": "2026-11-21T07:44:40",
        "isCreatedByUser": True,
        "parentMessageId": NO_PARENT,
        "conversationId": None,
        "messageId": CLIENT_MESSAGE_ID,
        "error": False,
        "endpoint": "Fake",
        "endpointType": "custom",
        "model": "fake-model",
        "modelDisplayLabel": "Fake",
        "isTemporary": False,
        "isRegenerate": False,
        "isContinued": False,
        "ephemeralAgent": {"mcp": [], "execute_code": False, "file_search": False},
        "timezone": "UTC",
    }
    body.update(overrides)
    return body


def start(client: httpx.Client, text: str, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/agents/chat/Fake", json=chat_body(text, **overrides))
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    assert started["status"] == "started"
    return started


def parse_frames(buffer: bytes) -> tuple[list[tuple[str, Any, bytes]], bytes]:
    """Complete `event: …\\ndata: …\\n\\n` frames out of a buffer, and what is left over."""
    frames = []
    while b"\n\n" in buffer:
        raw, buffer = buffer.split(b"\n\n", 1)
        name, data = "message", None
        for line in raw.decode().split("\n"):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
        frames.append((name, data, raw + b"\n\n"))
    return frames, buffer


def read_stream(
    client: httpx.Client,
    stream_id: str,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    timeout: float = 10.0,
) -> Stream:
    """Subscribe and read until the server ends the response (or `stop_after` events, then hang
    up, as a browser tab that closes does)."""
    url = f"/api/agents/chat/stream/{stream_id}" + ("?resume=true" if resume else "")
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=timeout) as r:
        stream = Stream(status=r.status_code, headers=r.headers)
        if r.status_code != 200:
            r.read()
            stream.body = r.content
            return stream
        buffer = b""
        for chunk in r.iter_raw():
            buffer += chunk
            frames, buffer = parse_frames(buffer)
            now = time.monotonic()
            for name, data, raw in frames:
                stream.events.append(Event(name, data, raw, now))
            if stop_after is not None and len(stream.events) >= stop_after:
                return stream
        stream.ended = True
        return stream


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def hang_up_after(
    double: LibreChatDouble, client: httpx.Client, stream_id: str, events: int
) -> Stream:
    """Read `events` events, then close the tab; return once the double has seen it leave."""
    disconnects = double.state.stream_disconnects
    stream = read_stream(client, stream_id, stop_after=events)
    wait_for(lambda: double.state.stream_disconnects == disconnects + 1)
    return stream


def raw_chunks(double: LibreChatDouble, path: str, headers: dict[str, str]) -> Iterator[bytes]:
    """The HTTP/1.1 chunks of a response, one by one, from a plain socket."""
    with socket.create_connection((double.host, double.port), timeout=10) as sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: {double.host}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reader = sock.makefile("rb")
        while reader.readline() not in (b"\r\n", b""):
            pass
        while True:
            size = int(reader.readline().strip(), 16)
            chunk = reader.read(size)
            reader.readline()
            yield chunk
            if size == 0:
                return
