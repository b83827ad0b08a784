"""The code tool (`RUNCODE` with execute_code): tool-call events, the plot, its download routes."""

from __future__ import annotations

import json

import httpx

from tests.librechat_double.fake_model import PLOT_PNG, TOOL_OUTPUT
from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_user, read_stream, start

CODE_TOOLS = {"mcp": [], "execute_code": True, "file_search": False, "web_search": False}


def test_runcode_streams_the_tool_call_and_the_attachment(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "coder@example.com")
    started = start(client, "RUNCODE: compute 6*7 and plot it.", ephemeralAgent=CODE_TOOLS)
    conversation_id = started["conversationId"]

    stream = read_stream(client, started["streamId"])

    kinds = [kind for kind in stream.kinds() if kind != "title"]  # the title lands anywhere
    assert kinds == [
        "created",
        "on_context_usage",
        "on_run_step",
        "on_run_step",
        *["on_run_step_delta"] * 4,
        "on_run_step_completed",
        "on_context_usage",
        "attachment",
        "on_run_step",
        *["on_message_delta"] * 6,
        "final",
    ]
    assert stream.text() == "The code ran and printed 42."
    empty_step, tool_step = (e.data["data"] for e in stream.of("on_run_step")[:2])
    assert (empty_step["index"], empty_step["type"]) == (0, "message_creation")
    assert empty_step["stepDetails"]["message_creation"]["message_id"].startswith("msg_")
    assert (tool_step["stepIndex"], tool_step["index"], tool_step["type"]) == (1, 1, "tool_calls")
    call = tool_step["stepDetails"]["tool_calls"][0]
    assert (call["name"], call["args"]) == ("bash_tool", {})
    deltas = [e.data["data"]["delta"]["tool_calls"][0] for e in stream.of("on_run_step_delta")]
    assert deltas[0] == {
        "name": "bash_tool",
        "args": "",
        "id": call["id"],
        "index": 0,
        "type": "tool_call_chunk",
    }
    assert "".join(d["args"] for d in deltas) == '{"command": "python3 -c \'print(6*7)\'"}'
    completed = stream.of("on_run_step_completed")[0].data["data"]["result"]
    assert (completed["index"], completed["type"]) == (0, "tool_call")  # index 0, as captured
    assert completed["tool_call"] == {
        "args": '{"command":"python3 -c \'print(6*7)\'"}',
        "name": "bash_tool",
        "id": call["id"],
        "output": TOOL_OUTPUT,
        "progress": 1,
    }
    assert stream.of("on_context_usage")[1].data["data"]["breakdown"]["messageCount"] == 3
    attachment = stream.of("attachment")[0].data["data"]
    user_id = client.get("/api/user").json()["id"]
    assert attachment["filepath"] == f"/images/{user_id}/{attachment['file_id']}.png"
    assert attachment["metadata"]["codeEnvRef"] == {
        "kind": "user",
        "id": user_id,
        "storage_session_id": "SeSsIoN0123456789abcd",
        "file_id": "FiLe0123456789abcdefg",
    }
    assert (attachment["context"], attachment["toolCallId"], attachment["usage"]) == (
        "execute_code",
        call["id"],
        1,
    )
    assert stream.of("on_run_step")[2].data["data"]["index"] == 2

    final = stream.events[-1].data["responseMessage"]
    assert [part["type"] for part in final["content"]] == ["tool_call", "text"]
    assert list(final["content"][0]["tool_call"]) == [
        "id",
        "name",
        "args",
        "type",
        "progress",
        "output",
    ]
    assert final["attachments"] == [attachment]

    image = httpx.get(f"{double.url}{attachment['filepath']}")  # public, no token
    assert (image.status_code, image.content) == (200, PLOT_PNG)
    assert image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "public, max-age=172800, s-maxage=86400"
    assert attachment["bytes"] == len(PLOT_PNG)
    listed = client.get("/api/files").json()
    assert [f["file_id"] for f in listed] == [attachment["file_id"]]

    again = start(
        client,
        "RUNCODE again on the same file.",
        ephemeralAgent=CODE_TOOLS,
        conversationId=conversation_id,
        parentMessageId=final["messageId"],
    )
    rerun = read_stream(client, again["streamId"]).of("attachment")[0].data["data"]
    assert rerun["file_id"] == attachment["file_id"]
    assert rerun["filepath"].startswith(f"{attachment['filepath']}?v=")
    assert rerun["usage"] == 3
    cache_busted = httpx.get(f"{double.url}{rerun['filepath']}")
    assert cache_busted.content == PLOT_PNG


def test_runcode_without_the_tool_is_a_plain_reply(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "notools@example.com")
    stream = read_stream(client, start(client, "RUNCODE please")["streamId"])
    assert stream.text() == "Hello from the fake model."
    usage = stream.of("on_context_usage")[0].data["data"]["breakdown"]
    assert (usage["toolCount"], usage["toolSchemaTokens"]) == (0, 0)


def test_code_output_download_route_checks_the_ids(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "ids@example.com")
    bad = client.get("/api/files/code/download/short/FiLe0123456789abcdefg")
    assert (bad.status_code, bad.text) == (400, "Bad request")
    plot = client.get("/api/files/code/download/SeSsIoN0123456789abcd/FiLe0123456789abcdefg")
    assert (plot.status_code, plot.content) == (200, PLOT_PNG)
    gone = client.get("/api/files/code/download/SeSsIoN0123456789abcd/NoSuchFile01234567890")
    assert (gone.status_code, gone.text) == (500, "Error downloading file")
    spa = httpx.get(f"{double.url}/images/nobody/nothing.png")
    assert spa.headers["content-type"].startswith("text/html")
    assert json.loads(client.get("/api/files").text) == []
