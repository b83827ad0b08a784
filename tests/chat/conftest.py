from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer
from users.models import ProvisioningState, User
from users.services import librechat_password_decrypt


@pytest.fixture
def app_server(
    librechat: LibreChatDouble, transactional_db: None, settings: Any
) -> Iterator[AppServer]:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http on loopback
    with AppServer() as server:
        yield server


def activate(user: User, librechat: LibreChatDouble, *, role: str = "USER") -> User:
    """Give the user a LibreChat account in the double, as the provisioning workflow would
    (a plain USER: an operator admin came first, docs/operations.md)."""
    account = librechat.state.add_user(
        user.email, librechat_password_decrypt(user), name=user.name, role=role
    )
    User.objects.filter(pk=user.pk).update(
        provisioning_state=ProvisioningState.ACTIVE, librechat_user_id=account.id
    )
    user.refresh_from_db()
    return user


@pytest.fixture
def alice(transactional_db: None, librechat: LibreChatDouble) -> User:
    return activate(make_legacy_user(email="alice@example.com", name="Alice"), librechat)


@pytest.fixture
def bob(transactional_db: None, librechat: LibreChatDouble) -> User:
    return activate(make_legacy_user(email="bob@example.com", name="Bobby"), librechat)


def jwt_for(user: User) -> str:
    # An access token alone: no database row (a refresh token would write an OutstandingToken,
    # from test threads that never hand their connection back).
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


def api(server: AppServer, user: User | None = None, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {jwt_for(user)}"} if user else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30, **kwargs)


__all__ = ["DEFAULT_PASSWORD", "AppServer", "activate", "api", "jwt_for"]
