"""LibreChat's own ``/readyz``, as a check of ours (registered by users from its ``ready()``)."""

from __future__ import annotations

import asyncio
import time

import httpx
from django.conf import settings

from core.health import CheckFailed
from core.logs import outgoing_request_id

# LibreChat's answer is shared for a second: /readyz is public and unthrottled, and a burst of
# probes (or of anyone) must not turn into a burst of requests to LibreChat.
LIBRECHAT_MEMO_S = 1.0
_librechat_memo: tuple[float, str | None] | None = None  # (when, failure message or None)
_librechat_inflight: dict[int, asyncio.Task[str | None]] = {}


async def check_librechat() -> str:
    if not settings.LIBRECHAT_API_URL:
        raise CheckFailed("LIBRECHAT_API_URL is not set.")
    memo = _librechat_memo
    if memo is None or time.monotonic() - memo[0] >= LIBRECHAT_MEMO_S:
        # Probes arriving while one is on its way wait for its answer instead of sending theirs.
        loop = id(asyncio.get_running_loop())
        task = _librechat_inflight.get(loop)
        if task is None:
            task = _librechat_inflight[loop] = asyncio.ensure_future(_probe_librechat())
            task.add_done_callback(lambda _: _librechat_inflight.pop(loop, None))
        failure = await asyncio.shield(task)
    else:
        failure = memo[1]
    if failure is not None:
        raise CheckFailed(failure)
    return "ready"


async def _probe_librechat() -> str | None:
    """None when LibreChat's /readyz says ready, else what went wrong. The answer is remembered
    here, before the task ends: a probe arriving between the end of this task and its waiters
    waking must find it, not start another."""
    global _librechat_memo
    try:
        await _get_librechat_readyz()
        failure = None
    except CheckFailed as exc:
        failure = str(exc)
    _librechat_memo = (time.monotonic(), failure)
    return failure


async def _get_librechat_readyz() -> None:
    # A client per probe, not the proxy's pool: a probe must not queue behind busy streams, and
    # a pooled client belongs to one event loop.
    try:
        async with httpx.AsyncClient(timeout=settings.READYZ_TIMEOUT_S) as client:
            response = await client.get(
                f"{settings.LIBRECHAT_API_URL}/readyz",
                headers={
                    "User-Agent": settings.LIBRECHAT_USER_AGENT,
                    "X-Request-ID": outgoing_request_id(),
                },
            )
    except httpx.TimeoutException:
        raise CheckFailed("LibreChat did not answer in time.") from None
    except httpx.HTTPError as exc:
        raise CheckFailed(f"LibreChat is unreachable ({type(exc).__name__}).") from None
    if response.status_code != 200:
        raise CheckFailed(f"LibreChat's /readyz answered {response.status_code}.")
