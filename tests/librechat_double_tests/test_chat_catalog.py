"""GET /api/endpoints, /api/models, /api/balance: what the web client loads before chatting."""

from __future__ import annotations

import httpx

from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, chat_user


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
