"""The account's end reaches /api/v1 at once and LibreChat's agent key after commit."""

from __future__ import annotations

import time

import pytest

from tests.helpers import wait_for
from tests.librechat_double.remote_store import Agent
from tests.librechat_double.server import LibreChatDouble
from tests.openai_api.conftest import raw
from tests.servers import AppServer
from users.agent_keys import agent_key_exists
from users.lifecycle import account_deactivate, account_delete, account_reactivate
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(workflows: str, server: AppServer) -> AppServer:
    return server


def keys(librechat: LibreChatDouble, user: User) -> list[str]:
    return [k.id for k in librechat.state.remote.keys_of(user.librechat_user_id)]


def test_deactivation_refuses_at_once_and_deletes_the_key(
    running: AppServer, granted: LibreChatDouble, ada: User, agent: Agent
) -> None:
    with raw(running, ada) as client:
        assert client.get("/models").status_code == 200
        assert len(keys(granted, ada)) == 1
        account_deactivate(user=ada)
        deactivated_at = time.monotonic()

        def refused() -> int:
            status = client.get("/models").status_code
            return status if status != 200 else 0

        status = wait_for(refused, timeout=2.0, interval=0.01, message="/api/v1 refusing")
        assert status in {401, 403}
        assert time.monotonic() - deactivated_at < 1.0
        body = client.post("/chat/completions", json={"model": agent.id, "messages": []}).json()
        assert body["error"]["code"] == "account_inactive"
        assert body["error"]["type"] == "permission_error"

    wait_for(lambda: not keys(granted, ada), message="the LibreChat key deleted")
    wait_for(lambda: not agent_key_exists(user_id=ada.pk), message="our copy deleted")
    [deletion] = [
        r
        for r in granted.state.requests
        if r.method == "DELETE" and r.path.startswith("/api/api-keys/")
    ]
    assert deletion.status == 204
    # No LibreChat session is left behind by the clean-up's own log-in.
    wait_for(lambda: not granted.state.sessions_of(ada.email), message="no LibreChat session")

    # Reactivated, with a new token: a new key is made on first use.
    account_reactivate(user=ada)
    ada.refresh_from_db()
    # Tokens carry whole seconds: one issued in the revocation's second is refused too.
    revoked = ada.credentials_revoked_at
    assert revoked is not None
    time.sleep(max(0.0, int(revoked.timestamp()) + 1.05 - time.time()))
    with raw(running, ada) as client:
        assert client.get("/models").status_code == 200
    assert len(keys(granted, ada)) == 1


def test_deletion_removes_the_key_with_the_account(
    running: AppServer, granted: LibreChatDouble, ada: User, agent: Agent
) -> None:
    with raw(running, ada) as client:
        assert client.get("/models").status_code == 200
        librechat_id = ada.librechat_user_id
        account_delete(user=ada)
        wait_for(
            lambda: client.get("/models").status_code in {401, 403},
            timeout=1.0,
            interval=0.01,
            message="/api/v1 refusing",
        )
    wait_for(lambda: not User.objects.filter(pk=ada.pk).exists(), message="the row deleted")
    assert granted.state.remote.keys_of(librechat_id) == []
    assert granted.state.get_user(ada.email) is None
