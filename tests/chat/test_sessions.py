"""The per-user refresh lock outlives the work it guards, whatever the LibreChat timeouts are."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache

from chat import sessions
from tests.chat.conftest import activate
from tests.factories import make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble

pytestmark = pytest.mark.django_db(transaction=True)


def remaining_ttl(key: str) -> float | None:
    """Seconds the cache keeps `key` (locmem in development, Redis in CI), None if absent."""
    full = cache.make_and_validate_key(key)
    backend: Any = cache
    if hasattr(backend, "_expire_info"):  # LocMemCache
        expiry = backend._expire_info.get(full)
        return None if expiry is None else float(expiry - time.time())
    ttl = backend._cache.get_client(full).ttl(full)  # RedisCache
    return None if ttl < 0 else float(ttl)


@pytest.mark.parametrize(("connect_s", "read_s"), [(5.0, 30.0), (10.0, 120.0)])
def test_the_refresh_lock_lives_longer_than_the_calls_it_guards(
    librechat: LibreChatDouble, settings: Any, connect_s: float, read_s: float
) -> None:
    """Held while a renewal waits for LibreChat: its lifetime must exceed the longest the
    renewal can take (a refresh and then a log-in, each up to connect + read timeout), or a
    second request takes the lock and spends the rotating refresh token a second time. The lock
    used to live a fixed 30 s against one call's 35 s."""
    settings.LIBRECHAT_CONNECT_TIMEOUT_S, settings.LIBRECHAT_TIMEOUT_S = connect_s, read_s
    user = activate(make_legacy_user(email="slow@example.com"), librechat)
    librechat.set_mode("slow", seconds=1.0)
    renewing = threading.Thread(
        target=lambda: asyncio.run(sessions.access_token(user, client_ip="192.0.2.5"))
    )
    renewing.start()
    key = f"librechat:session-lock:{user.pk}"
    ttl = wait_for(lambda: remaining_ttl(key) or 0.0, message="the lock taken")
    renewing.join(10)
    guarded_work = 2 * (connect_s + read_s)
    assert ttl > guarded_work
    assert ttl <= guarded_work + sessions.LOCK_MARGIN_S + 1
    assert remaining_ttl(key) is None  # released when done
    assert librechat.state.login_successes == 1
