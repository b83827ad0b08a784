"""`/api/api-keys` and the remote agents API (`/api/agents/v1/*`) as LibreChat v0.8.7 answers
them: api/server/routes/apiKeys.js, api/server/routes/agents/openai.js,
packages/api/src/apiKeys/{handlers,middleware}.ts, packages/api/src/agents/openai/*."""

from __future__ import annotations

import json

import httpx

from tests.librechat_double import LibreChatDouble
from tests.librechat_double_tests.conftest import connect, register_and_login

FORBIDDEN = {"message": "Forbidden: Insufficient permissions"}


def signed_in(double: LibreChatDouble, clients: list[httpx.Client], email: str) -> httpx.Client:
    client = connect(double, clients)
    login = register_and_login(client, email)
    client.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return client


def user_id(double: LibreChatDouble, email: str) -> str:
    user = double.state.get_user(email)
    assert user is not None
    return user.id


def setup(double: LibreChatDouble, clients: list[httpx.Client]) -> tuple[httpx.Client, str]:
    """An admin first (LibreChat's first account), then a USER whose role may use remote agents,
    with a key; answers the user's JWT client and the key."""
    signed_in(double, clients, "admin@example.com")
    client = signed_in(double, clients, "user@example.com")
    double.state.remote.grant("USER", "USE")
    created = client.post("/api/api-keys", json={"name": "mine"})
    assert created.status_code == 201, created.text
    return client, created.json()["key"]


def v1(double: LibreChatDouble, clients: list[httpx.Client], key: str) -> httpx.Client:
    return connect(double, clients, Authorization=f"Bearer {key}")


def test_the_default_user_role_may_not_create_keys(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    signed_in(librechat_double, clients, "admin@example.com")
    client = signed_in(librechat_double, clients, "user@example.com")
    for response in (
        client.post("/api/api-keys", json={"name": "x"}),
        client.get("/api/api-keys"),
        client.delete("/api/api-keys/0123456789abcdef01234567"),
    ):
        assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert connect(librechat_double, clients).get("/api/api-keys").json() == {
        "message": "No auth token"
    }
    role = client.get("/api/roles/user").json()
    assert role["permissions"]["REMOTE_AGENTS"]["USE"] is False
    assert client.get("/api/roles/admin").json()["permissions"]["REMOTE_AGENTS"]["USE"] is True


def test_keys_are_created_once_listed_without_the_secret_and_deleted(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client, key = setup(librechat_double, clients)
    assert key.startswith("sk-")
    assert len(key) == 3 + 64
    assert client.post("/api/api-keys", json={"name": "  "}).json() == {
        "error": "API key name is required"
    }
    [listed] = client.get("/api/api-keys").json()["keys"]
    assert set(listed) == {"id", "name", "keyPrefix", "createdAt"}
    assert listed["keyPrefix"] == key[:8]
    assert key not in json.dumps(listed)
    assert client.get(f"/api/api-keys/{listed['id']}").json()["id"] == listed["id"]
    assert client.delete(f"/api/api-keys/{listed['id']}").status_code == 204
    again = client.delete(f"/api/api-keys/{listed['id']}")
    assert (again.status_code, again.json()) == (404, {"error": "API key not found"})
    # A revoked key no longer opens the remote agents API.
    refused = v1(librechat_double, clients, key).get("/api/agents/v1/models")
    assert refused.status_code == 401
    assert refused.json() == {
        "error": {
            "message": "Invalid API key",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }


def test_v1_needs_a_key_and_the_role_permission(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client, key = setup(librechat_double, clients)
    bare = connect(librechat_double, clients)
    missing = bare.get("/api/agents/v1/models")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    # A LibreChat JWT is no agent key.
    jwt = client.get("/api/agents/v1/models")
    assert (jwt.status_code, jwt.json()["error"]["code"]) == (401, "invalid_api_key")
    # The permission is checked on every call, not only when the key was created.
    librechat_double.state.remote.grant("USER", "USE", value=False)
    denied = v1(librechat_double, clients, key).get("/api/agents/v1/models")
    assert (denied.status_code, denied.json()) == (403, FORBIDDEN)


def test_models_list_only_agents_shared_for_remote_use(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    _, key = setup(librechat_double, clients)
    remote = librechat_double.state.remote
    me = user_id(librechat_double, "user@example.com")
    admin = user_id(librechat_double, "admin@example.com")
    shared = remote.add_agent(name="Shared", author_id=admin, shared_with=(me,))
    private = remote.add_agent(name="Private", author_id=admin)
    own = remote.add_agent(name="Own", author_id=me, description="mine")
    client = v1(librechat_double, clients, key)

    listed = client.get("/api/agents/v1/models").json()
    assert listed["object"] == "list"
    assert {m["id"] for m in listed["data"]} == {shared.id, own.id}
    one = client.get(f"/api/agents/v1/models/{own.id}").json()
    assert (one["object"], one["owned_by"], one["name"], one["description"]) == (
        "model",
        "librechat",
        "Own",
        "mine",
    )
    hidden = client.get(f"/api/agents/v1/models/{private.id}")
    assert hidden.status_code == 403
    assert hidden.json()["error"] == {
        "message": f"No remote access to model: {private.id}",
        "type": "permission_error",
        "param": None,
        "code": "access_denied",
    }
    unknown = client.get("/api/agents/v1/models/agent_nope")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "model_not_found")


def test_completion_refusals(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    _, key = setup(librechat_double, clients)
    admin = user_id(librechat_double, "admin@example.com")
    private = librechat_double.state.remote.add_agent(name="Private", author_id=admin)
    client = v1(librechat_double, clients, key)
    hello = [{"role": "user", "content": "hi"}]

    no_model = client.post("/api/agents/v1/chat/completions", json={"messages": hello})
    assert (no_model.status_code, no_model.json()["error"]["code"]) == (400, "missing_model")
    unknown = client.post(
        "/api/agents/v1/chat/completions", json={"model": "agent_x", "messages": hello}
    )
    assert unknown.json()["error"]["message"] == "Agent not found: agent_x"
    unshared = client.post(
        "/api/agents/v1/chat/completions", json={"model": private.id, "messages": hello}
    )
    assert (unshared.status_code, unshared.json()["error"]["code"]) == (403, "access_denied")
    malformed = client.post(
        "/api/agents/v1/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert (malformed.status_code, malformed.text) == (400, "{not json")


def test_streamed_and_whole_completions(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    _, key = setup(librechat_double, clients)
    me = user_id(librechat_double, "user@example.com")
    agent = librechat_double.state.remote.add_agent(
        name="Coder", author_id=me, tools=("execute_code",)
    )
    client = v1(librechat_double, clients, key)
    invalid = client.post(
        "/api/agents/v1/chat/completions",
        json={"model": agent.id, "messages": [{"role": "robot", "content": "x"}]},
    )
    assert invalid.json()["error"]["message"] == (
        "messages[0].role must be one of: system, user, assistant, tool"
    )

    whole = client.post(
        "/api/agents/v1/chat/completions",
        json={"model": agent.id, "messages": [{"role": "user", "content": "ECHO: one two"}]},
    ).json()
    assert whole["object"] == "chat.completion"
    assert whole["model"] == agent.id
    assert whole["choices"][0]["message"]["content"] == "one two"
    assert whole["usage"]["total_tokens"] == (
        whole["usage"]["prompt_tokens"] + whole["usage"]["completion_tokens"]
    )

    body = {"model": agent.id, "stream": True, "messages": [{"role": "user", "content": "RUNCODE"}]}
    with client.stream("POST", "/api/agents/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert (call["index"], call["type"], call["function"]["name"]) == (0, "function", "bash_tool")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" in chunks[-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert librechat_double.state.remote.completions == 2


def test_deleting_the_account_deletes_its_keys(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client, key = setup(librechat_double, clients)
    me = user_id(librechat_double, "user@example.com")
    assert len(librechat_double.state.remote.keys_of(me)) == 1
    assert client.delete("/api/user/delete").status_code == 200
    assert librechat_double.state.remote.keys_of(me) == []
    assert v1(librechat_double, clients, key).get("/api/agents/v1/models").status_code == 401
