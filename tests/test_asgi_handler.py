"""The ASGI handler: each request borrows a single-thread executor from a pool and gives it back."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection, connections, reset_queries
from rest_framework_simplejwt.tokens import AccessToken

from core import asgi_handler
from core.asgi_handler import ExecutorPool, PooledASGIHandler
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def call(
    handler: PooledASGIHandler,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    body_ready: asyncio.Event | None = None,
) -> tuple[int, bytes]:
    """One HTTP request through the handler, in process."""
    messages: list[dict[str, Any]] = []
    finished = asyncio.Event()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            if body_ready is not None:
                await body_ready.wait()
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await handler(scope, receive, send)
    finished.set()
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return messages[0]["status"], body


def test_sequential_requests_reuse_one_executor() -> None:
    handler = PooledASGIHandler()

    async def run() -> list[int]:
        return [(await call(handler, "/api/nothing-here/"))[0] for _ in range(5)]

    assert asyncio.run(run()) == [404] * 5
    assert (handler.executors.created, handler.executors.idle) == (1, 1)


def test_concurrent_requests_get_executors_of_their_own() -> None:
    handler = PooledASGIHandler()

    async def run() -> tuple[int, int]:
        held = asyncio.Event()
        # The first request holds its executor until its body arrives; the second runs meanwhile.
        first = asyncio.create_task(call(handler, "/api/nothing-here/", body_ready=held))
        await asyncio.sleep(0.05)
        second_status, _ = await call(handler, "/api/nothing-here/")
        created_meanwhile = handler.executors.created
        held.set()
        first_status, _ = await first
        assert (first_status, second_status) == (404, 404)
        return created_meanwhile, handler.executors.idle

    assert asyncio.run(run()) == (2, 2)


def _connection_after_requests(count: int) -> list[tuple[int | None, str]]:
    """(id of the pooled thread's database connection, the thread's name) after each of
    ``count`` requests (None: closed)."""
    user = make_user()
    token = str(AccessToken.for_user(user))
    handler = PooledASGIHandler()

    async def run() -> list[tuple[int | None, str]]:
        seen = []
        for _ in range(count):
            status, body = await call(
                handler, "/api/users/me/", headers=[(b"authorization", f"Bearer {token}".encode())]
            )
            assert status == 200, body
            assert user.email.encode() in body
            (executor,) = handler.executors._idle

            def inspect() -> tuple[int | None, str]:
                raw = connection.connection
                return (None if raw is None else id(raw)), threading.current_thread().name

            seen.append(await asyncio.wrap_future(executor.submit(inspect)))
        return seen

    return asyncio.run(run())


def test_database_connection_is_closed_when_the_request_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pooled thread outlives the request; without persistent connections, its database
    connection does not."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    [(kept, thread_name)] = _connection_after_requests(1)
    assert kept is None, "the request's database connection was left open on the pooled thread"
    assert thread_name.startswith("django-request")


def test_the_configured_database_connection_lifetime_holds_on_the_pooled_thread() -> None:
    """As configured: on SQLite a request thread keeps its connection for the next request
    (closing a WAL database's last connection checkpoints it); PostgreSQL's pool gets it back."""
    first, second = _connection_after_requests(2)
    if connection.vendor == "sqlite":
        assert connections.settings["default"]["CONN_MAX_AGE"] > 0
        assert first[0] is not None, "SQLite's connection was closed when the request ended"
        assert second[0] == first[0], "the next request did not reuse the thread's connection"
    else:
        assert "pool" in connections.settings["default"]["OPTIONS"]
        assert (first[0], second[0]) == (None, None)


def test_pool_keeps_a_bounded_number_of_idle_executors() -> None:
    pool = ExecutorPool(max_idle=2)
    executors = [pool.acquire() for _ in range(4)]
    used = executors[3]
    assert used.submit(lambda: 42).result(timeout=5) == 42
    for executor in executors:
        pool.release(executor)
    assert (pool.created, pool.idle) == (4, 2)
    assert pool.acquire() is executors[1]  # the most recently returned idle one
    with pytest.raises(RuntimeError):  # returned beyond the bound: shut down
        used.submit(lambda: 0)


def test_request_started_work_runs_once_per_request_on_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Django's request_started receivers run lazily: on the request's pooled thread, before the
    request's first sync call there, once per request (also for a request with no sync work)."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        asgi_handler,
        "STARTED_RECEIVERS",
        (lambda: calls.append(("started", threading.current_thread().name)),),
    )
    user = make_user()
    token = str(AccessToken.for_user(user))
    handler = PooledASGIHandler()

    async def run() -> list[int]:
        me = await call(
            handler, "/api/users/me/", headers=[(b"authorization", f"Bearer {token}".encode())]
        )
        missing = await call(handler, "/api/nothing-here/")
        return [me[0], missing[0]]

    assert asyncio.run(run()) == [200, 404]
    assert [name for name, _ in calls] == ["started", "started"]
    assert all(thread.startswith("django-request") for _, thread in calls)


def test_started_receivers_stay_connected_for_other_handlers() -> None:
    PooledASGIHandler()
    assert not signals.request_started.has_listeners(PooledASGIHandler)
    for sender in (WSGIHandler, ASGIHandler):
        receivers = [receiver for receiver, _ in signals.request_started.send(sender=sender)]
        assert set(receivers) >= {close_old_connections, reset_queries}, sender
