"""/api/convos and /api/messages: paging, archive, search, rename, delete, edit, regenerate."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, NO_PARENT, chat_user, read_stream, start

LISTING_KEYS = [
    "_id",
    "conversationId",
    "user",
    "agent_id",
    "chatProjectId",
    "createdAt",
    "endpoint",
    "model",
    "title",
    "updatedAt",
]


def _turn(client: httpx.Client, text: str, **overrides: Any) -> dict[str, Any]:
    started = start(client, text, **overrides)
    final: dict[str, Any] = read_stream(client, started["streamId"]).events[-1].data
    return final


def _two_turns(client: httpx.Client, first_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new conversation and a follow-up answering its reply: both turns' `final` data."""
    first = _turn(client, first_text)
    second = _turn(
        client,
        "And a second message.",
        conversationId=first["conversation"]["conversationId"],
        parentMessageId=first["responseMessage"]["messageId"],
    )
    return first, second


def test_conversations_page_with_limit_and_a_cursor(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "pages@example.com")
    chat = _turn(client, "Hello")["conversation"]["conversationId"]
    made = [chat]
    for index in range(4):
        convo_id = f"00000000-0000-4000-8000-00000000000{index}"
        renamed = client.post(
            "/api/convos/update", json={"arg": {"conversationId": convo_id, "title": f"T{index}"}}
        )
        assert renamed.status_code == 201
        made.append(convo_id)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/convos", params=params).json()
        assert list(page) == ["conversations", "nextCursor"]
        seen += [c["conversationId"] for c in page["conversations"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
        decoded = json.loads(base64.b64decode(cursor))
        assert list(decoded) == ["primary", "secondary"]
    assert pages == 3
    assert seen == list(reversed(made))  # newest update first
    listing = client.get("/api/convos").json()["conversations"]
    assert list(listing[-1]) == LISTING_KEYS
    assert listing[-1]["title"] == "Fake Chat Title"

    archived = client.post(
        "/api/convos/archive", json={"arg": {"conversationId": made[1], "isArchived": True}}
    )
    assert (archived.status_code, archived.json()["isArchived"]) == (200, True)
    active = [c["conversationId"] for c in client.get("/api/convos").json()["conversations"]]
    assert made[1] not in active
    only_archived = client.get("/api/convos", params={"isArchived": "true"}).json()
    assert [c["conversationId"] for c in only_archived["conversations"]] == [made[1]]
    found = client.get("/api/convos", params={"search": "fake chat"}).json()["conversations"]
    assert [c["conversationId"] for c in found] == [chat]
    by_title = client.get("/api/convos", params={"sortBy": "title", "sortDirection": "asc"})
    assert [c["title"] for c in by_title.json()["conversations"]][:2] == ["Fake Chat Title", "T1"]
    bad_sort = client.get("/api/convos", params={"sortBy": "nope"})
    assert (bad_sort.status_code, bad_sort.json()) == (
        500,
        {"error": "Error fetching conversations"},
    )
    assert httpx.get(f"{double.url}/api/convos").status_code == 401


def test_rename_get_and_delete_a_conversation(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "rename@example.com")
    final, _ = _two_turns(client, "Hello")
    convo_id = final["conversation"]["conversationId"]

    renamed = client.post(
        "/api/convos/update", json={"arg": {"conversationId": convo_id, "title": "  Renamed  "}}
    )
    assert renamed.status_code == 201
    document = renamed.json()
    assert document["title"] == "Renamed"
    assert list(document) == [
        "_id",
        "conversationId",
        "user",
        "__v",
        "agent_id",
        "chatProjectId",
        "createdAt",
        "endpoint",
        "endpointType",
        "expiredAt",
        "files",
        "isArchived",
        "isTemporary",
        "maxContextTokens",
        "messages",
        "model",
        "resendFiles",
        "tags",
        "title",
        "updatedAt",
    ]
    assert client.get(f"/api/convos/{convo_id}").json() == document
    no_title = client.post("/api/convos/update", json={"arg": {"conversationId": convo_id}})
    assert (no_title.status_code, no_title.json()) == (400, {"error": "title is required"})

    deleted = client.request("DELETE", "/api/convos", json={"arg": {"conversationId": convo_id}})
    assert (deleted.status_code, deleted.json()) == (
        201,
        {
            "acknowledged": True,
            "deletedCount": 1,
            "messages": {"acknowledged": True, "deletedCount": 4},
        },
    )
    missing = client.get(f"/api/convos/{convo_id}")
    assert (missing.status_code, missing.content) == (404, b"")
    assert "content-type" not in missing.headers
    messages = client.get(f"/api/messages/{convo_id}")
    assert (messages.status_code, messages.json()) == (404, {"error": "Conversation not found"})
    twice = client.request("DELETE", "/api/convos", json={"arg": {"conversationId": convo_id}})
    assert (twice.status_code, twice.text) == (500, "Error clearing conversations")
    assert twice.headers["content-type"] == "text/html; charset=utf-8"
    nothing = client.request("DELETE", "/api/convos", json={"arg": {}})
    assert (nothing.status_code, nothing.json()) == (400, {"error": "no parameters provided"})

    upserted = client.post(
        "/api/convos/update", json={"arg": {"conversationId": "brand-new", "title": "x"}}
    ).json()
    assert (upserted["endpoint"], upserted["messages"], upserted["title"]) == (None, [], "x")


def test_messages_plain_and_paged(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "msgs@example.com")
    first, second = _two_turns(client, "Hello there, say something.")
    convo_id = first["conversation"]["conversationId"]

    plain = client.get(f"/api/messages/{convo_id}").json()
    assert [m["messageId"] for m in plain] == [
        first["requestMessage"]["messageId"],
        first["responseMessage"]["messageId"],
        second["requestMessage"]["messageId"],
        second["responseMessage"]["messageId"],
    ]
    assert list(plain[0]) == [
        "messageId",
        "conversationId",
        "createdAt",
        "endpoint",
        "error",
        "expiredAt",
        "isCreatedByUser",
        "isTemporary",
        "model",
        "parentMessageId",
        "sender",
        "text",
        "tokenCount",
        "unfinished",
        "updatedAt",
    ]
    assert plain[1]["text"] == ""
    assert plain[1]["content"] == [{"type": "text", "text": "Hello from the fake model."}]
    assert list(plain[1])[:3] == ["messageId", "attachments", "content"]

    paged = client.get("/api/messages", params={"conversationId": convo_id, "pageSize": "25"})
    body = paged.json()
    assert body["nextCursor"] is None
    assert list(body["messages"][0])[:4] == ["_id", "messageId", "user", "__v"]
    updated = [m["updatedAt"] for m in body["messages"]]
    assert updated == sorted(updated, reverse=True)
    one = client.get("/api/messages", params={"conversationId": convo_id, "pageSize": "1"})
    assert one.json()["nextCursor"].endswith("GMT+0000 (Coordinated Universal Time)")
    assert client.get("/api/messages/new").json() == []
    single = client.get(f"/api/messages/{convo_id}/{plain[0]['messageId']}").json()
    assert single == [plain[0]]


def test_edit_and_regenerate(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "edit@example.com")
    first = _turn(client, "Hello")
    convo_id = first["conversation"]["conversationId"]
    user_message_id = first["requestMessage"]["messageId"]
    answer_id = first["responseMessage"]["messageId"]

    edited = client.put(f"/api/messages/{convo_id}/{user_message_id}", json={"text": "Hi there"})
    assert edited.status_code == 200
    assert edited.json() == {
        "messageId": user_message_id,
        "conversationId": convo_id,
        "parentMessageId": NO_PARENT,
        "sender": "User",
        "text": "Hi there",
        "isCreatedByUser": True,
        "tokenCount": 2,
        "endpoint": "Fake",
    }
    part = client.put(
        f"/api/messages/{convo_id}/{answer_id}", json={"text": "Edited answer", "index": 0}
    )
    assert part.status_code == 200
    saved = client.get(f"/api/messages/{convo_id}").json()[1]
    assert saved["content"] == [{"type": "text", "text": "Edited answer"}]
    bad_index = client.put(f"/api/messages/{convo_id}/{answer_id}", json={"text": "x", "index": 5})
    assert (bad_index.status_code, bad_index.json()) == (400, {"error": "Invalid index"})

    regenerated = _turn(
        client,
        "Hi there",
        conversationId=convo_id,
        parentMessageId=NO_PARENT,
        overrideParentMessageId=user_message_id,
        isRegenerate=True,
    )
    assert regenerated["requestMessage"]["messageId"] == user_message_id
    assert regenerated["responseMessage"]["parentMessageId"] == user_message_id
    assert regenerated["responseMessage"]["messageId"] != answer_id
    siblings = [
        m
        for m in client.get(f"/api/messages/{convo_id}").json()
        if m["parentMessageId"] == user_message_id
    ]
    assert len(siblings) == 2
