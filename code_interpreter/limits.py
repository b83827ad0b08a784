"""How many executions run at once: a bounded number per process and per caller.

An execution over the limit waits its turn for a short while (so a burst is served, not refused)
and then gets a 429 with ``retry_after_seconds``; so does one that finds the queue full. The
count is per process: with several web processes, multiply (see docs/code-interpreter.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from hestami_ai.errors import ApplicationError


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(
            message,
            extra={"retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class ExecutionSlots:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._by_caller: Counter[str] = Counter()

    @property
    def running(self) -> int:
        return self._running

    @contextmanager
    def slot(self, caller: str | None) -> Iterator[None]:
        total = settings.CODE_INTERPRETER_MAX_CONCURRENT
        per_caller = settings.CODE_INTERPRETER_MAX_CONCURRENT_PER_USER
        wait_s = float(settings.CODE_INTERPRETER_QUEUE_WAIT_S)
        retry_after = max(1, math.ceil(wait_s))

        def free() -> bool:
            return self._running < total and (
                caller is None or self._by_caller[caller] < per_caller
            )

        with self._condition:
            if not free():
                if self._waiting >= settings.CODE_INTERPRETER_MAX_QUEUED:
                    raise RateLimited(
                        f"Too many executions at once ({self._running} running, "
                        f"{self._waiting} waiting). Retry in {retry_after} s.",
                        retry_after=retry_after,
                    )
                self._waiting += 1
                deadline = time.monotonic() + wait_s
                try:
                    while not free():
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise RateLimited(
                                f"Too many executions at once: none could start within "
                                f"{wait_s:g} s. Retry in {retry_after} s.",
                                retry_after=retry_after,
                            )
                        self._condition.wait(remaining)
                finally:
                    self._waiting -= 1
            self._running += 1
            if caller is not None:
                self._by_caller[caller] += 1
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                if caller is not None:
                    self._by_caller[caller] -= 1
                    if self._by_caller[caller] <= 0:
                        del self._by_caller[caller]
                self._condition.notify_all()


execution_slots = ExecutionSlots()
