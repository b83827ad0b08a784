"""Per-user request counters for `/api/v1` (chat/openai_api.py), without a thread hop.

Django's cache has no native async API: its ``a*`` methods run the call on a thread, which under
load costs more than the rest of a proxied request. So with Redis (production, and every process
shares the counts) the counter is one ``INCR`` through redis-py's asyncio client on the cache's
own key; with the in-memory cache (development, tests) the call is plain memory work, made in
place; any other backend gets a thread.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.core.cache import cache
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCMEM_BACKEND = "django.core.cache.backends.locmem.LocMemCache"
_clients: dict[int, Redis] = {}  # one per event loop, as the upstream pool (librechat/upstream.py)


def _redis_url() -> str | None:
    config = settings.CACHES["default"]
    if config["BACKEND"] != REDIS_BACKEND:
        return None
    location = config["LOCATION"]
    return str(location if isinstance(location, str) else location[0])


def _redis(url: str) -> Redis:
    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = Redis.from_url(url)
    return client


def _count_sync(key: str, period: int) -> int:
    if cache.add(key, 1, timeout=period + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # the window just expired
        return 1


async def hit(key: str, *, period: int) -> int:
    """Count one request under ``key`` (a fixed window of ``period`` seconds): the count so far.
    Should Redis fail, the request is let through (and logged): a limit is no log-in."""
    url = _redis_url()
    if url is not None:
        name = cache.make_key(key)  # in the cache's namespace: cleared with it
        try:
            client = _redis(url)
            count = int(await client.incr(name))
            if count == 1:
                await client.expire(name, period + 1)
        except RedisError as exc:
            logger.warning("rate limit not counted: %s", type(exc).__name__)
            return 0
        return count
    if settings.CACHES["default"]["BACKEND"] == LOCMEM_BACKEND:
        return _count_sync(key, period)
    return await asyncio.to_thread(_count_sync, key, period)
