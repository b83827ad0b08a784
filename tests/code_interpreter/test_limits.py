"""The per-process and per-caller execution limits, and the health route."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import Client
from pytest_django import Settings

from code_interpreter.limits import ExecutionSlots, RateLimited
from tests.code_interpreter.conftest import BASE


@pytest.fixture
def slots(code_settings: Settings) -> ExecutionSlots:
    code_settings.CODE_INTERPRETER_MAX_CONCURRENT = 2
    code_settings.CODE_INTERPRETER_MAX_CONCURRENT_PER_USER = 1
    code_settings.CODE_INTERPRETER_QUEUE_WAIT_S = 0.1
    code_settings.CODE_INTERPRETER_MAX_QUEUED = 1
    return ExecutionSlots()


def test_per_caller_limit(slots: ExecutionSlots) -> None:
    with slots.slot("user:a"):
        with pytest.raises(RateLimited) as caught, slots.slot("user:a"):
            pass
        assert caught.value.extra == {"retry_after_seconds": 1}
        with slots.slot("user:b"):
            assert slots.running == 2
    assert slots.running == 0


def test_a_waiting_execution_gets_the_next_free_slot(
    slots: ExecutionSlots, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_QUEUE_WAIT_S = 5
    started = threading.Event()

    def hold() -> None:
        with slots.slot(None), slots.slot(None):
            started.set()
            time.sleep(0.2)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(5)
    began = time.monotonic()
    with slots.slot(None):
        waited = time.monotonic() - began
    holder.join()
    assert 0.05 < waited < 4


def test_a_full_queue_is_refused_at_once(slots: ExecutionSlots) -> None:
    with slots.slot(None), slots.slot(None):
        waiter = threading.Thread(target=_take_refused, args=(slots,))
        waiter.start()
        time.sleep(0.02)
        began = time.monotonic()
        with pytest.raises(RateLimited, match="waiting"):
            _take(slots)
        assert time.monotonic() - began < 0.05
        waiter.join()


def _take(slots: ExecutionSlots) -> None:
    with slots.slot(None):
        pass


def _take_refused(slots: ExecutionSlots) -> None:
    with pytest.raises(RateLimited):
        _take(slots)


def test_health(api: Client) -> None:
    response = api.get(f"{BASE}/health")
    assert response.status_code == 200
    assert {"py", "bash", "js"} <= set(response.json()["languages"])


def test_unknown_route_is_json_404(api: Client) -> None:
    response = api.get(f"{BASE}/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
