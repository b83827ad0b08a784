"""The zygote's event loop (code_interpreter/runtime/zygote_server.py) when a handler closes a
descriptor whose event is in the same poll and a fork reuses its number at once."""

from __future__ import annotations

import time
from functools import partial

from code_interpreter.runtime.zygote_server import TOP_UP_DELAY_S, Zygote


def test_an_event_of_a_closed_descriptor_does_not_reach_its_new_owner() -> None:
    zygote = Zygote.__new__(Zygote)  # only the handler table takes part in dispatching
    calls: list[str] = []

    def child_exited() -> None:  # closes fd 8 (the child's channel) and forks a new spare,
        calls.append("child exited")  # whose pidfd the kernel numbers 8 again
        zygote.handlers[8] = new_spare_exited

    def channel_hung_up() -> None:
        calls.append("channel hung up")

    def new_spare_exited() -> None:  # it would wait for a spare that lives: the zygote hangs
        calls.append("new spare exited")

    zygote.handlers = {7: child_exited, 8: channel_hung_up}
    zygote._dispatch([7, 8])
    assert calls == ["child exited"]
    zygote._dispatch([8])  # level-triggered: if the new pidfd is ready, the next poll says so
    assert calls == ["child exited", "new spare exited"]


def test_every_ready_descriptor_is_handled() -> None:
    zygote = Zygote.__new__(Zygote)
    calls: list[int] = []
    zygote.handlers = {fd: partial(calls.append, fd) for fd in (3, 4, 5)}
    zygote._dispatch([5, 3, 9])
    assert calls == [5, 3]


def _spares(count: int, forked: list[int]) -> Zygote:
    zygote = Zygote.__new__(Zygote)
    zygote.spare_count, zygote.top_up_at = 2, None
    zygote.spares = {pid: None for pid in range(count)}  # type: ignore[misc]

    def fork_spare() -> None:
        forked.append(len(zygote.spares))
        zygote.spares[100 + len(forked)] = None  # type: ignore[assignment]

    zygote._fork_spare = fork_spare  # type: ignore[method-assign]
    return zygote


def test_a_served_childs_replacement_waits_while_a_spare_is_ready() -> None:
    """The fork (and the new spare's rehearsal) stays off the end of the run it replaces."""
    forked: list[int] = []
    zygote = _spares(1, forked)
    before = time.monotonic()
    zygote._top_up_soon()
    assert forked == []
    assert zygote.top_up_at is not None
    assert before + TOP_UP_DELAY_S <= zygote.top_up_at <= time.monotonic() + TOP_UP_DELAY_S
    due = zygote.top_up_at
    zygote._top_up_soon()  # another end meanwhile: still one top-up, when first due
    assert zygote.top_up_at == due


def test_with_no_spare_left_the_replacement_is_forked_at_once() -> None:
    forked: list[int] = []
    zygote = _spares(0, forked)
    zygote._top_up_soon()
    assert forked == [0, 1]
    assert zygote.top_up_at is None
