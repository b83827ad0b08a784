"""The `openai` package, pointed at our server with a user's JWT: models, completions streamed and
not; on the wire, our JWT never reaches LibreChat and LibreChat's key never reaches the client."""

from __future__ import annotations

import json

import pytest

from tests.chat.conftest import jwt_for
from tests.helpers import wait_for
from tests.librechat_double.remote_store import Agent
from tests.librechat_double.server import LibreChatDouble
from tests.openai_api.conftest import hello, raw, sdk
from tests.servers import AppServer
from users.agent_keys import agent_key_get
from users.models import LibreChatAgentKey, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sdk_lists_models_and_gets_answers(
    server: AppServer, granted: LibreChatDouble, ada: User, agent: Agent
) -> None:
    client = sdk(server, ada)

    models = client.models.list()
    assert [m.id for m in models.data] == [agent.id]
    one = client.models.retrieve(agent.id)
    assert (one.id, one.owned_by) == (agent.id, "librechat")

    whole = client.chat.completions.create(
        model=agent.id, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert whole.choices[0].message.content == "Hello from the fake model."
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 5

    stream = client.chat.completions.create(
        model=agent.id, messages=[{"role": "user", "content": "ECHO: one two three"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    # One key, created once, as Ada, through LibreChat's /api/api-keys.
    assert len(granted.state.remote.keys_of(ada.librechat_user_id)) == 1
    assert len(granted.state.requests_to("/api/api-keys", "POST")) == 1


def test_tool_call_chunks_pass_through(
    server: AppServer, granted: LibreChatDouble, ada: User
) -> None:
    coder = granted.state.remote.add_agent(
        name="Coder", author_id=ada.librechat_user_id, tools=("execute_code",)
    )
    stream = sdk(server, ada).chat.completions.create(
        model=coder.id, messages=[{"role": "user", "content": "RUNCODE please"}], stream=True
    )
    calls = [c.choices[0].delta.tool_calls for c in stream if c.choices[0].delta.tool_calls]
    functions = [call[0].function for call in calls if call[0].function is not None]
    assert functions[0].name == "bash_tool"
    arguments = "".join(function.arguments or "" for function in functions)
    assert json.loads(arguments) == {"command": "python3 -c 'print(6*7)'"}


def test_our_jwt_never_reaches_librechat_and_its_key_never_reaches_the_client(
    server: AppServer, granted: LibreChatDouble, ada: User, agent: Agent
) -> None:
    token = jwt_for(ada)
    seen = len(granted.state.requests)
    received: list[bytes] = []
    with raw(server, ada) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for response in (
            client.get("/models"),
            client.get(f"/models/{agent.id}"),
            client.post("/chat/completions", json=hello(agent.id)),
            client.post("/chat/completions", json=hello(agent.id, stream=True)),
        ):
            assert response.status_code == 200, response.text
            received.append(str(response.headers).encode() + response.content)
    key = agent_key_get(user_id=ada.pk)
    assert key is not None
    assert key.key.startswith("sk-")
    assert not any(key.key.encode() in r or key.key_id.encode() in r for r in received)
    assert received[-1].rstrip().endswith(b"data: [DONE]")

    upstream = granted.state.requests[seen:]
    remote = [r for r in upstream if r.path.startswith("/api/agents/v1/")]
    assert len(remote) == 4
    assert {r.header("authorization") for r in remote} == {f"Bearer {key.key}"}
    assert {r.header("accept-encoding") for r in remote} == {"identity"}
    for request in upstream:
        assert token not in json.dumps(request.headers)
        assert token.encode() not in request.body
    # The key is stored encrypted, never in the clear.
    stored = LibreChatAgentKey.objects.get(user=ada)
    assert key.key not in stored.key_encrypted


def test_a_revoked_key_is_replaced(
    server: AppServer, granted: LibreChatDouble, ada: User, agent: Agent
) -> None:
    client = sdk(server, ada)
    assert len(client.models.list().data) == 1
    first = agent_key_get(user_id=ada.pk)
    assert first is not None
    granted.state.remote.delete_user_keys(ada.librechat_user_id)  # revoked in LibreChat's UI

    assert client.chat.completions.create(**hello(agent.id)).choices[0].message.content
    second = agent_key_get(user_id=ada.pk)
    assert second is not None
    assert second.key_id != first.key_id
    [live] = granted.state.remote.keys_of(ada.librechat_user_id)
    assert live.id == second.key_id


def test_a_client_that_goes_away_ends_the_upstream_stream(
    server: AppServer, granted: LibreChatDouble, ada: User, agent: Agent
) -> None:
    body = {"model": agent.id, "stream": True, "messages": [{"role": "user", "content": "SLOW"}]}
    with raw(server, ada) as client, client.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        first = next(r.iter_lines())
        assert first.startswith("data: ")
    wait_for(
        lambda: granted.state.remote.completions_aborted == 1,
        timeout=5,
        message="the double's stream aborted",
    )
