"""Every refusal under /api/v1 in OpenAI's error shape, with a fitting status, through the real
`openai` package where it raises its typed errors."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.chat.conftest import activate
from tests.factories import make_legacy_user
from tests.librechat_double.remote_store import Agent
from tests.librechat_double.server import LibreChatDouble
from tests.openai_api.conftest import hello, raw, sdk
from tests.servers import AppServer
from users.models import ProvisioningState, User

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert {"message", "type", "code"} <= set(body["error"])
    return dict(body["error"])


def test_no_or_a_bad_token(server: AppServer, ada: User) -> None:
    with raw(server) as client:
        missing = client.get("/models")
        assert missing.status_code == 401
        assert error_of(missing)["type"] == "authentication_error"
        bad = client.get("/models", headers={"Authorization": "Bearer nope"})
        assert (bad.status_code, error_of(bad)["code"]) == (401, "token_not_valid")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/api/v1", api_key="x", max_retries=0).models.list()


def test_unknown_urls_methods_and_bodies(server: AppServer, ada: User, granted: Any) -> None:
    with raw(server, ada) as client:
        unknown = client.get("/embeddings")
        assert (unknown.status_code, error_of(unknown)["code"]) == (404, "unknown_url")
        wrong = client.get("/chat/completions")
        assert (wrong.status_code, error_of(wrong)["code"]) == (405, "method_not_allowed")
        assert wrong.headers["allow"] == "POST"
        broken = client.post(
            "/chat/completions", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert (broken.status_code, error_of(broken)["code"]) == (400, "invalid_json")
        huge = client.post(
            "/chat/completions",
            content=b"x" * (3 * 1024 * 1024 + 1),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        # Above Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB) and within ours: read, not refused.
        large = client.post(
            "/chat/completions",
            content=b"{" + b" " * (2 * 1024 * 1024 + 900 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert (large.status_code, error_of(large)["code"]) == (400, "invalid_json")


def test_a_dot_segment_model_id_never_reaches_librechat(
    server: AppServer, ada: User, granted: LibreChatDouble
) -> None:
    seen = len(granted.state.requests)
    with raw(server, ada) as client:
        # Percent-encoded, as httpx (like most clients) removes literal dot segments itself.
        for spelled in ("/models/%2e%2e", "/models/%2E%2e", "/models/%2e"):
            answer = client.get(spelled)
            assert (answer.status_code, error_of(answer)["code"]) == (404, "unknown_url"), spelled
    assert not [r for r in granted.state.requests[seen:] if "/agents/v1" in r.path]


def test_the_role_lacks_remote_agents(
    server: AppServer, librechat: LibreChatDouble, ada: User
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(server, ada).models.list()
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "remote_agents_not_granted"
    assert "remoteAgents: use: true" in error["message"]
    # Granted later (LibreChat restarted with the setting): works without anything else.
    librechat.state.remote.grant("USER", "USE")
    assert sdk(server, ada).models.list().data == []


def test_agent_unknown_or_not_shared(
    server: AppServer, granted: LibreChatDouble, ada: User
) -> None:
    admin = next(u for u in granted.state.users() if u.role == "ADMIN")
    private = granted.state.remote.add_agent(name="Private", author_id=admin.id)
    client = sdk(server, ada)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(**hello("agent_nope"))
    assert isinstance(unknown.value.body, dict)
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(openai.PermissionDeniedError) as unshared:
        client.chat.completions.create(**hello(private.id))
    assert isinstance(unshared.value.body, dict)
    assert unshared.value.body["code"] == "access_denied"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.retrieve(private.id)
    # Access is checked before the body (createCheckRemoteAgentAccess, then validateRequest).
    own = granted.state.remote.add_agent(name="Own", author_id=ada.librechat_user_id)
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(model=own.id, messages=[])
    assert isinstance(invalid.value.body, dict)
    assert invalid.value.body["message"] == "messages array cannot be empty"


def test_account_not_ready(server: AppServer, librechat: LibreChatDouble) -> None:
    pending = make_legacy_user(email="new@example.com")
    User.objects.filter(pk=pending.pk).update(provisioning_state=ProvisioningState.FAILED)
    pending.refresh_from_db()
    with raw(server, pending) as client:
        response = client.get("/models")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "librechat_not_provisioned"
    assert error["type"] == "invalid_request_error"


def test_librechat_down_slow_or_failing(
    server: AppServer, granted: LibreChatDouble, ada: User, agent: Agent, settings: Any
) -> None:
    client = sdk(server, ada)
    assert client.models.list().data  # the key exists now
    granted.set_mode("error500", path_prefix="/api/agents/v1")
    with pytest.raises(openai.APIStatusError) as failing:
        client.models.list()
    assert failing.value.status_code == 502
    granted.set_mode("ratelimit429", path_prefix="/api/agents")
    with pytest.raises(openai.RateLimitError) as limited:
        client.models.list()
    assert limited.value.response.headers["retry-after"] == "60"
    settings.CHAT_PROXY_TIMEOUT_S = 0.3
    granted.set_mode("slow", seconds=1.0)
    with pytest.raises(openai.APIStatusError) as slow:
        client.models.list()
    assert slow.value.status_code == 504
    granted.set_mode("down")
    try:
        with pytest.raises(openai.APIStatusError) as down:
            client.models.list()
        assert down.value.status_code == 502
        assert isinstance(down.value.body, dict)
        assert down.value.body["code"] == "librechat_unreachable"
    finally:
        granted.set_mode("ok")


def test_per_user_rate_limits(
    server: AppServer, granted: LibreChatDouble, ada: User, agent: Agent, settings: Any
) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "openai_models": "2/min"}
    bob = activate(make_legacy_user(email="bob@example.com"), granted)
    client = sdk(server, ada)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        client.models.list()
    assert isinstance(limited.value.body, dict)
    assert limited.value.body["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    # Per user: Bob is not limited by Ada's calls; completions have their own limit.
    with raw(server, bob) as other:
        assert other.get("/models").status_code == 200
    assert client.chat.completions.create(**hello(agent.id)).choices
