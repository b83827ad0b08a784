"""A live server, the LibreChat double, and users whose LibreChat role may use remote agents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chat import remote_agents
from tests.chat.conftest import activate, jwt_for
from tests.factories import make_legacy_user
from tests.librechat_double.remote_store import Agent
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer
from users.models import User


@pytest.fixture(autouse=True)
def _forget_key_memo() -> Iterator[None]:
    remote_agents._memo.clear()
    yield
    remote_agents._memo.clear()


@pytest.fixture
def server(
    librechat: LibreChatDouble, transactional_db: None, settings: Any
) -> Iterator[AppServer]:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    with AppServer() as app:
        yield app


@pytest.fixture
def granted(librechat: LibreChatDouble) -> LibreChatDouble:
    """LibreChat with `interface.remoteAgents.use: true` (docs/openai-api.md)."""
    librechat.state.remote.grant("USER", "USE")
    return librechat


@pytest.fixture
def ada(transactional_db: None, librechat: LibreChatDouble) -> User:
    return activate(make_legacy_user(email="ada@example.com", name="Ada"), librechat)


@pytest.fixture
def agent(granted: LibreChatDouble, ada: User) -> Agent:
    """An agent of the operator's, shared with Ada for remote use."""
    admin = next(u for u in granted.state.users() if u.role == "ADMIN")
    return granted.state.remote.add_agent(
        name="Helper", author_id=admin.id, description="helps", shared_with=(ada.librechat_user_id,)
    )


def sdk(server: AppServer, user: User, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/api/v1", api_key=jwt_for(user), max_retries=0, **kwargs
    )


def raw(server: AppServer, user: User | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {jwt_for(user)}"} if user else {}
    return httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30)


def hello(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}
