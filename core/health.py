"""``/healthz`` (liveness) and ``/readyz`` (readiness) for load balancers and orchestrators.

* ``/healthz``: the process answers. No I/O, so a slow database never gets a live process killed.
* ``/readyz``: the database (``SELECT 1``), the cache (set and get), DBOS (its system database;
  launched, in a web process that should run workflows), LibreChat's own ``/readyz`` and the code
  sandbox, all at once, each with ``READYZ_TIMEOUT_S``, with a JSON entry per check. 200
  ``ok`` when every check passes; 200 ``degraded`` when only optional ones fail
  (``READYZ_OPTIONAL_CHECKS``, LibreChat by default: sign-up, accounts, the Code API and queued
  provisioning work without it, so a LibreChat restart must not take every web process out of
  a load balancer's rotation); 503 ``unavailable`` when a required one fails. Messages name
  what failed, never a URL or a secret; the details go to the log.

Both are answered by ``HealthCheckMiddleware`` at the top of the middleware stack, before host
validation, HTTPS redirects, sessions, CSRF and authentication: load balancers probe by IP
address and over plain HTTP (docs/observability.md). Nothing here is throttled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.http.response import HttpResponseBase

from core.logs import outgoing_request_id
from core.middleware import SyncAndAsyncMiddleware

logger = logging.getLogger(__name__)

HEALTH_PATHS = ("/healthz", "/readyz")
_NO_STORE = {"Cache-Control": "no-store"}


class CheckFailed(Exception):
    """A check failed for a reason that is safe to show in /readyz."""


# -- the checks: each returns a short detail or raises ------------------------------------------


def check_database() -> str:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # a probe thread must not keep (or hold a pooled) connection
    return connection.vendor


def check_cache() -> str:
    from django.core.cache import cache

    key, value = f"readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise CheckFailed("The cache did not return what was just stored.")
    cache.delete(key)
    return str(settings.CACHES["default"]["BACKEND"]).rsplit(".", 1)[-1]


def check_dbos() -> str:
    from dbos import DBOS

    from core import dbos

    if dbos.is_launched():
        DBOS.list_workflows(limit=1, load_input=False, load_output=False)
        return "launched; system database reachable"
    if settings.DBOS_IN_WEB and not settings.TESTING:
        raise CheckFailed("DBOS is not launched in this web process (DBOS_IN_WEB is on).")
    dbos.client().check_connection()
    return "not launched here (DBOS_IN_WEB off); system database reachable"


_sandbox_memo: tuple[float, bool, str] | None = None
SANDBOX_MEMO_S = 30.0


def check_sandbox() -> str:
    """The sandbox's own readiness function; a failing result is re-checked every 30 s only,
    because checking can start a real sandbox. The detail says how memory is enforced."""
    global _sandbox_memo
    from code_interpreter.sandbox import memory_enforcement, sandbox_status

    now = time.monotonic()
    if _sandbox_memo is None or now - _sandbox_memo[0] > SANDBOX_MEMO_S:
        ready, message = sandbox_status()
        _sandbox_memo = (now, ready, message)
    _, ready, message = _sandbox_memo
    if not ready:
        raise CheckFailed(message)
    return f"ready; {memory_enforcement().describe()}"


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


SYNC_CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
    "dbos": check_dbos,
    "sandbox": check_sandbox,
}

# The synchronous checks run on a few threads of their own. A check still running (a database
# that hangs) is joined by the next probe instead of started again, so threads never pile up.
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_inflight: dict[str, concurrent.futures.Future[str]] = {}
_inflight_lock = threading.Lock()


def _submit(name: str, check: Callable[[], str]) -> concurrent.futures.Future[str]:
    global _executor
    with _inflight_lock:
        running = _inflight.get(name)
        if running is not None and not running.done():
            return running
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=len(SYNC_CHECKS), thread_name_prefix="readyz"
            )
        future = _executor.submit(check)
        _inflight[name] = future
        return future


async def _run(name: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        if name == "librechat":
            awaitable: Any = check_librechat()
        else:
            # Shielded: a timeout here must not cancel a run another probe is waiting for.
            awaitable = asyncio.shield(asyncio.wrap_future(_submit(name, SYNC_CHECKS[name])))
        detail = await asyncio.wait_for(awaitable, timeout=settings.READYZ_TIMEOUT_S)
        result: dict[str, Any] = {"status": "ok", "detail": detail}
    except CheckFailed as exc:
        result = {"status": "fail", "detail": str(exc)}
    except TimeoutError:
        result = {"status": "fail", "detail": f"No answer within {settings.READYZ_TIMEOUT_S} s."}
    except Exception as exc:
        # The exception's text can hold a host, a user or worse: it goes to the log only.
        logger.warning("readiness check %s failed", name, exc_info=True)
        result = {"status": "fail", "detail": f"{type(exc).__name__} (see the server log)."}
    result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    result["required"] = name not in settings.READYZ_OPTIONAL_CHECKS
    return result


CHECK_NAMES = ("database", "cache", "dbos", "librechat", "sandbox")


async def readiness() -> dict[str, Any]:
    results = await asyncio.gather(*(_run(name) for name in CHECK_NAMES))
    checks = dict(zip(CHECK_NAMES, results, strict=True))
    failed = [name for name, r in checks.items() if r["status"] != "ok"]
    ready = all(not checks[name]["required"] for name in failed)
    if failed:
        logger.warning(
            "%s: %s",
            "degraded" if ready else "not ready",
            ", ".join(f"{n}: {checks[n]['detail']}" for n in failed),
        )
    status = "unavailable" if not ready else "degraded" if failed else "ok"
    return {"status": status, "checks": checks}


# -- views and the middleware that serves them ----------------------------------------------------


async def healthz(request: HttpRequest) -> HttpResponseBase:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return JsonResponse({"status": "ok"}, headers=_NO_STORE)


async def readyz(request: HttpRequest) -> HttpResponseBase:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    report = await readiness()
    response = JsonResponse(
        report, status=503 if report["status"] == "unavailable" else 200, headers=_NO_STORE
    )
    # readiness() logged the failed checks; spare Django's "Service Unavailable" line per probe.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


_VIEWS = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware(SyncAndAsyncMiddleware):
    """Answers /healthz and /readyz before any other middleware: whatever the Host header (load
    balancers probe by IP), over plain HTTP, without sessions, CSRF or authentication."""

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        view = _VIEWS.get(request.path_info)
        if view is not None:
            return async_to_sync(view)(request)
        response: HttpResponseBase = self.get_response(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        view = _VIEWS.get(request.path_info)
        if view is not None:
            return await view(request)
        response: HttpResponseBase = await self.get_response(request)
        return response
