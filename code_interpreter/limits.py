"""How many executions run at once: a bounded number per web process, and per caller overall.

An execution takes a slot of this process (``CODE_INTERPRETER_MAX_CONCURRENT``: the CPU of this
host) and a lease of its caller (``CODE_INTERPRETER_MAX_CONCURRENT_PER_USER``, counted across
every web process by ``budgets.lease_store()``). Over either, it waits its turn for a short while
(so a burst is served, not refused) and then gets a 429 with ``retry_after_seconds``; so does one
that finds the queue full.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from code_interpreter.budgets import Lease, LeaseStore, RateLimited, Then, lease_store

__all__ = ["ExecutionSlots", "RateLimited", "execution_slots"]

# A caller's lease freed by another process is noticed within this long.
LEASE_POLL_S = 0.05


class ExecutionSlots:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._running = 0
        self._waiting = 0

    @property
    def running(self) -> int:
        return self._running

    @contextmanager
    def slot(self, caller: str, *, reserve: int = 0, then: Then | None = None) -> Iterator[Lease]:
        """A slot of this process and a lease of the caller's, reserving ``reserve`` bytes of
        their disk (``budgets.grant`` shrinks it to what they have left); ``then(lease)`` runs
        as soon as it is held (see ``LeaseStore.acquire``)."""
        wait_s = float(settings.CODE_INTERPRETER_QUEUE_WAIT_S)
        retry_after = max(1, math.ceil(wait_s))
        deadline = time.monotonic() + wait_s
        store = lease_store()
        lease = self._take(store, caller, reserve, then)
        if lease is None:
            with self._condition:
                if self._waiting >= settings.CODE_INTERPRETER_MAX_QUEUED:
                    raise RateLimited(
                        f"Too many executions at once ({self._running} running, "
                        f"{self._waiting} waiting). Retry in {retry_after} s.",
                        retry_after=retry_after,
                    )
                self._waiting += 1
            try:
                while lease is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise RateLimited(
                            f"Too many executions at once: none could start within {wait_s:g} "
                            f"s. Retry in {retry_after} s.",
                            retry_after=retry_after,
                        )
                    # A slot here wakes us at once; a lease may free in any process: poll.
                    with self._condition:
                        self._condition.wait(min(LEASE_POLL_S, remaining))
                    lease = self._take(store, caller, reserve, then)
            finally:
                with self._condition:
                    self._waiting -= 1
        try:
            yield lease
        finally:
            try:
                store.release(lease)
            finally:
                self._give_back()

    def _take(
        self, store: LeaseStore, caller: str, reserve: int, then: Then | None
    ) -> Lease | None:
        """A slot of this process, if one is free, and the caller's lease, if they may have one."""
        with self._condition:
            if self._running >= settings.CODE_INTERPRETER_MAX_CONCURRENT:
                return None
            self._running += 1
        lease = None
        try:
            lease = store.acquire(
                caller,
                running=True,
                limit=settings.CODE_INTERPRETER_MAX_CONCURRENT_PER_USER,
                reserved=reserve,
                then=then,
            )
        finally:
            if lease is None:
                self._give_back()
        return lease

    def _give_back(self) -> None:
        with self._condition:
            self._running -= 1
            self._condition.notify_all()


execution_slots = ExecutionSlots()
