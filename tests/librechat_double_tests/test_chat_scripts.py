"""The fake model's scripts for the chat UI (not from the captures): Markdown and echo."""

from __future__ import annotations

import httpx

from tests.librechat_double.fake_model import MARKDOWN_TEXT, chunks
from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_user, read_stream, start


def test_markdown_streams_in_chunks_and_is_stored_whole(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "fake_token_delay_s": 0.001})
    client = chat_user(double, clients, "md@example.com")
    started = start(client, "MARKDOWN please")
    stream = read_stream(client, started["streamId"])

    deltas = stream.of("on_message_delta")
    assert len(deltas) == len(chunks(MARKDOWN_TEXT)) > 20
    assert stream.text() == MARKDOWN_TEXT
    assert "```python\nimport csv" in MARKDOWN_TEXT
    final = stream.of("final")[0].data
    assert final["responseMessage"]["content"] == [{"type": "text", "text": MARKDOWN_TEXT}]


def test_echo_answers_the_text_after_the_prefix_verbatim(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "echo@example.com")
    text = 'ECHO:  **bold** <img src=x onerror="alert(1)">\nnext line'
    started = start(client, text)
    stream = read_stream(client, started["streamId"])

    assert stream.text() == '**bold** <img src=x onerror="alert(1)">\nnext line'
    pieces = [e.data["data"]["delta"]["content"][0]["text"] for e in stream.of("on_message_delta")]
    assert pieces[:2] == ["**bold**", " <img"]
    # Only at the start: elsewhere ECHO is ordinary text.
    other = start(client, "Say ECHO: twice")
    assert read_stream(client, other["streamId"]).text() == "Hello from the fake model."
