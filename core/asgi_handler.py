"""Django's ASGI handler, with each request's "sync thread" taken from a pool instead of made anew.

Under ASGI, Django runs a request's synchronous work (its signal receivers, `response.close()`,
any `sync_to_async` code such as the ORM) on a thread of that request's own. Stock Django gives
every request a fresh single-thread executor: a new OS thread on its first sync call, and at the
end a second thread whose only job is to join the first. And its first sync call comes at once:
`request_started` has two synchronous receivers (`reset_queries`, `close_old_connections`), so
every request waits for a thread hop before its view runs. For the chat proxy, which never
touches the database, those two costs were most of the latency it added (`bench/proxy.py`).

Here:

- A request borrows an idle single-thread executor and gives it back when it ends, the way a WSGI
  server reuses its worker threads. One request uses an executor at a time, so each request still
  has one thread of its own for thread-sensitive work, as Django expects.
- The two `request_started` receivers run on that thread just before the request's first sync
  call there, instead of in a hop of their own. Nothing else touches that thread's database
  connections in between, so they see what they would have seen; a request with no sync work
  runs them in the same hop as `response.close()`. For every other sender (WSGI, Django's own
  ASGI handler) they stay connected as before.

The thread keeps its database connections between requests; `request_finished`'s
`close_old_connections` runs on that same thread (inside `response.close()`) and closes them as
it would under WSGI.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, reset_queries

# Idle executors kept for the next requests; beyond this, a returned one is shut down.
MAX_IDLE_EXECUTORS = 64
# Django's own request_started receivers (django/db/__init__.py), run lazily for our requests.
STARTED_RECEIVERS = (reset_queries, close_old_connections)


def _request_started_work() -> None:
    for receiver in STARTED_RECEIVERS:
        receiver()


class RequestExecutor(ThreadPoolExecutor):
    """One worker thread; runs `request_started`'s work before the first call of each request."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self.request_pending = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not self.request_pending:
            return super().submit(fn, *args, **kwargs)
        self.request_pending = False

        def first_call() -> Any:
            _request_started_work()
            return fn(*args, **kwargs)

        return super().submit(first_call)


class ExecutorPool:
    """Executors for requests. Used from the event loop thread only: no lock."""

    def __init__(self, max_idle: int = MAX_IDLE_EXECUTORS) -> None:
        self.max_idle = max_idle
        self._idle: list[RequestExecutor] = []
        self.created = 0

    def acquire(self) -> RequestExecutor:
        if self._idle:
            return self._idle.pop()
        self.created += 1
        return RequestExecutor()

    def release(self, executor: RequestExecutor) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(executor)
        else:
            # Its worker is idle (sync_to_async waits for the call it made, even when the
            # request is cancelled), so the thread ends at once; nothing waits for it here.
            executor.shutdown(wait=False)

    @property
    def idle(self) -> int:
        return len(self._idle)


def _defer_started_receivers() -> None:
    """Take Django's receivers off `request_started` for our handler only. A signal cannot leave
    out one sender, so they are connected again for the senders that need them (idempotent:
    `connect` ignores a receiver it already has for that sender)."""
    for receiver in STARTED_RECEIVERS:
        signals.request_started.disconnect(receiver)
        for sender in (WSGIHandler, ASGIHandler):
            signals.request_started.connect(receiver, sender=sender)


class PooledASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.executors = ExecutorPool()
        _defer_started_receivers()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.executors.acquire()
        executor.request_pending = True
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            executor.request_pending = False
            self.executors.release(executor)
