"""Executions at once: per web process, and per caller across processes (database or Redis)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from code_interpreter import budgets
from code_interpreter.limits import ExecutionSlots, RateLimited
from code_interpreter.models import ExecutionLease
from tests.code_interpreter.conftest import BASE


def in_thread(target: Callable[[], None]) -> threading.Thread:
    """A thread as a web process's would be: with its own database connection, closed after."""

    def run() -> None:
        try:
            target()
        finally:
            connection.close()

    return threading.Thread(target=run)


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, code_settings: Settings, transactional_db: None) -> str:
    """Each lease store in turn; transactional: the tests use threads, as web processes would."""
    code_settings.REDIS_URL = (
        request.getfixturevalue("redis_server") if request.param == "redis" else ""
    )
    return str(request.param)


@pytest.fixture
def slots(code_settings: Settings, store: str) -> ExecutionSlots:
    code_settings.CODE_INTERPRETER_MAX_CONCURRENT = 2
    code_settings.CODE_INTERPRETER_MAX_CONCURRENT_PER_USER = 1
    code_settings.CODE_INTERPRETER_QUEUE_WAIT_S = 0.1
    code_settings.CODE_INTERPRETER_MAX_QUEUED = 1
    return ExecutionSlots()


def test_the_store_follows_redis_url(store: str) -> None:
    expected = budgets.RedisLeases if store == "redis" else budgets.DatabaseLeases
    assert isinstance(budgets.lease_store(), expected)


def test_per_caller_limit_holds_across_processes(slots: ExecutionSlots) -> None:
    other_process = ExecutionSlots()  # its own slots, the same leases
    with slots.slot("user:a"):
        with pytest.raises(RateLimited) as caught, other_process.slot("user:a"):
            pass
        assert caught.value.extra == {"retry_after_seconds": 1}
        with other_process.slot("user:b"):
            assert (slots.running, other_process.running) == (1, 1)
    with other_process.slot("user:a"):  # released for everyone
        pass
    assert slots.running == other_process.running == 0


def test_a_lease_freed_in_another_process_is_noticed(
    slots: ExecutionSlots, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_QUEUE_WAIT_S = 5
    other_process = ExecutionSlots()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other_process.slot("user:a"):
            entered.set()
            release.wait(5)

    holder = in_thread(hold)
    holder.start()
    assert entered.wait(5)
    threading.Timer(0.2, release.set).start()
    began = time.monotonic()
    with slots.slot("user:a"):
        waited = time.monotonic() - began
    holder.join()
    assert 0.15 < waited < 2


def test_reservations_are_seen_by_the_callers_next_lease(slots: ExecutionSlots) -> None:
    with slots.slot("user:a", reserve=300) as first:
        assert first.others_reserved == 0
        budgets.lease_store().reserve(first, 120)
        with ExecutionSlots().slot("user:b", reserve=50) as unrelated:
            assert unrelated.others_reserved == 0
        store = budgets.lease_store()
        upload = store.acquire("user:a", running=False, limit=0, reserved=7)
        assert upload is not None
        assert upload.others_reserved == 120
        store.release(upload)


def test_a_waiting_execution_gets_the_next_free_slot(
    slots: ExecutionSlots, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_QUEUE_WAIT_S = 5
    started = threading.Event()

    def hold() -> None:
        with slots.slot("user:a"), slots.slot("user:b"):
            started.set()
            time.sleep(0.2)

    holder = in_thread(hold)
    holder.start()
    started.wait(5)
    began = time.monotonic()
    with slots.slot("user:c"):
        waited = time.monotonic() - began
    holder.join()
    assert 0.05 < waited < 4


def test_a_full_queue_is_refused_at_once(slots: ExecutionSlots) -> None:
    with slots.slot("user:a"), slots.slot("user:b"):
        waiter = in_thread(lambda: _take_refused(slots))
        waiter.start()
        time.sleep(0.02)
        began = time.monotonic()
        with pytest.raises(RateLimited, match="waiting"):
            _take(slots)
        assert time.monotonic() - began < 0.05
        waiter.join()


def _take(slots: ExecutionSlots) -> None:
    with slots.slot("user:c"):
        pass


def _take_refused(slots: ExecutionSlots) -> None:
    with pytest.raises(RateLimited):
        _take(slots)


def test_a_dead_processs_lease_lapses(code_settings: Settings, db: None) -> None:
    code_settings.REDIS_URL = ""
    code_settings.CODE_INTERPRETER_MAX_CONCURRENT_PER_USER = 1
    ExecutionLease.objects.create(
        id="gone", caller="user:a", expires_at=timezone.now() - timedelta(seconds=1)
    )
    with ExecutionSlots().slot("user:a"):
        assert list(ExecutionLease.objects.values_list("caller", flat=True)) == ["user:a"]
    assert not ExecutionLease.objects.exists()


def test_health(api: Client) -> None:
    response = api.get(f"{BASE}/health")
    assert response.status_code == 200
    assert {"py", "bash", "js"} <= set(response.json()["languages"])


def test_unknown_route_is_json_404(api: Client) -> None:
    response = api.get(f"{BASE}/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
