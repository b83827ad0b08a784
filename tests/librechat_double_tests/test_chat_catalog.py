"""GET /api/endpoints, /api/models, /api/balance: what the web client loads before chatting."""

from __future__ import annotations

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_user, read_stream, start


def test_endpoints_models_and_balance(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**FAST)
    client = chat_user(double, clients, "catalog@example.com")

    endpoints = client.get("/api/endpoints").json()
    assert endpoints["Fake"] == {
        "order": 9999,
        "type": "custom",
        "userProvide": False,
        "userProvideURL": False,
        "modelDisplayLabel": "Fake",
    }
    assert endpoints["agents"]["capabilities"] == [
        "deferred_tools",
        "execute_code",
        "file_search",
        "actions",
        "tools",
        "context",
    ]
    assert client.get("/api/models").json()["Fake"] == ["fake-model"]
    balance = client.get("/api/balance")
    assert (balance.status_code, balance.content) == (204, b"")
    for path in ("/api/endpoints", "/api/models", "/api/balance"):
        assert httpx.get(f"{double.url}{path}").status_code == 401

    double.config.update(balance_enabled=True)
    assert client.get("/api/balance").json()["tokenCredits"] == 20000


def test_user_provided_keys_as_from_librechats_env_example(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    """`OPENAI_API_KEY=user_provided` and friends: listed with `userProvide: true` in
    defaultEndpoints order, with models, and a chat on them fails for want of the user's key."""
    double = make_librechat_double(
        **FAST, user_provided_endpoints=("openAI", "anthropic", "google")
    )
    client = chat_user(double, clients, "keys@example.com")

    endpoints = client.get("/api/endpoints").json()
    assert list(endpoints) == ["openAI", "agents", "google", "anthropic", "Fake"]
    assert endpoints["openAI"] == {"userProvide": True, "order": 0}
    assert endpoints["anthropic"] == {"userProvide": True, "order": 6}
    assert client.get("/api/models").json()["openAI"][0] == "gpt-5.5"

    started = start(client, "Hello", endpoint="openAI", model="gpt-5.5")
    stream = read_stream(client, started["streamId"])
    [event] = stream.events
    assert (event.name, event.data) == ("error", {"error": '{"type":"no_user_key"}'})
