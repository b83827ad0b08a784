"""chat/throttle.py: the per-user counters of /api/v1, in memory and on Redis (db 2 on loopback,
the test run's own), and what a Redis failure does."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from chat import throttle

REDIS_URL = "redis://127.0.0.1:6379/2"


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    throttle._clients.clear()  # each asyncio.run below has a loop of its own
    yield
    throttle._clients.clear()


def count_twice(key: str) -> list[int]:
    async def run() -> list[int]:
        return [await throttle.hit(key, period=60), await throttle.hit(key, period=60)]

    return asyncio.run(run())


def test_counts_in_memory() -> None:
    key = f"throttle:test:{secrets.token_hex(4)}"
    assert count_twice(key) == [1, 2]


def test_counts_on_redis_under_the_caches_own_key(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": throttle.REDIS_BACKEND, "LOCATION": REDIS_URL}}
    key = f"throttle:test:{secrets.token_hex(4)}"
    assert count_twice(key) == [1, 2]
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        name = f":1:{key}"  # Django's default key function: prefix, version, key
        assert raw.get(name) == b"2"
        assert 0 < cast(int, raw.ttl(name)) <= 61
    finally:
        raw.delete(f":1:{key}")
        raw.close()


def test_a_redis_failure_lets_the_request_through(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": throttle.REDIS_BACKEND, "LOCATION": "redis://127.0.0.1:1/0"}
    }
    assert count_twice("throttle:test:down") == [0, 0]
