"""``/healthz`` (liveness) and ``/readyz`` (readiness) for load balancers and orchestrators.

* ``/healthz``: the process answers. No I/O, so a slow database never gets a live process killed.
* ``/readyz``: the database (``SELECT 1``), the cache (set and get), DBOS (its system database;
  launched, in a web process that should run workflows), and what the apps register from their
  ``ready()`` (``register_check``: LibreChat's own ``/readyz`` from users, librechat/readiness.py;
  the code sandbox from code_interpreter), all at once, each with ``READYZ_TIMEOUT_S``, with
  a JSON entry per check. 200 ``ok`` when every check passes; 200 ``degraded`` when only
  optional ones fail
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
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from dbos import DBOS
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.http.response import HttpResponseBase

from core import dbos
from core.middleware import SyncAndAsyncMiddleware

logger = logging.getLogger(__name__)

HEALTH_PATHS = ("/healthz", "/readyz")
_NO_STORE = {"Cache-Control": "no-store"}


class CheckFailed(Exception):
    """A check failed for a reason that is safe to show in /readyz."""


# -- the checks: each returns a short detail or raises ------------------------------------------


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # a probe thread must not keep (or hold a pooled) connection
    return connection.vendor


def check_cache() -> str:
    key, value = f"readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise CheckFailed("The cache did not return what was just stored.")
    cache.delete(key)
    return str(settings.CACHES["default"]["BACKEND"]).rsplit(".", 1)[-1]


def check_dbos() -> str:
    if dbos.is_launched():
        DBOS.list_workflows(limit=1, load_input=False, load_output=False)
        return "launched; system database reachable"
    if settings.DBOS_IN_WEB and not settings.TESTING:
        raise CheckFailed("DBOS is not launched in this web process (DBOS_IN_WEB is on).")
    dbos.client().check_connection()
    return "not launched here (DBOS_IN_WEB off); system database reachable"


# -- the registry: the ground's own checks, then what each app registers from its ready() -------

SYNC_CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
    "dbos": check_dbos,
}
ASYNC_CHECKS: dict[str, Callable[[], Awaitable[str]]] = {}
CHECK_NAMES: list[str] = list(SYNC_CHECKS)
STARTUP_REPORTS: list[Callable[[], None]] = []


def register_check(name: str, check: Callable[[], str] | Callable[[], Awaitable[str]]) -> None:
    """Add a readiness check: it returns a short detail or raises (``CheckFailed`` for a reason
    safe to show). A coroutine function runs on the event loop, anything else on a thread.
    ``READYZ_OPTIONAL_CHECKS`` names the ones whose failure only degrades."""
    if name not in CHECK_NAMES:
        CHECK_NAMES.append(name)
    if inspect.iscoroutinefunction(check):
        ASYNC_CHECKS[name] = check
    else:
        SYNC_CHECKS[name] = check  # type: ignore[assignment]


def register_startup_report(report: Callable[[], None]) -> None:
    """Something the web server says once at start-up (uvicorn runs no system checks)."""
    if report not in STARTUP_REPORTS:
        STARTUP_REPORTS.append(report)


def run_startup_reports() -> None:
    for report in STARTUP_REPORTS:
        report()


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
        if name in ASYNC_CHECKS:
            awaitable: Any = ASYNC_CHECKS[name]()
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
