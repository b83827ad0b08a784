"""Supervising one execution in a warm sandbox, and the framing of the agent's channel.

The execution's stdout and stderr are pipes the host reads while it runs; the time limit, the
output limit, the disk quota and the memory guard are enforced as ``process`` enforces
them for a cold sandbox. Whatever passes a limit ends the whole sandbox (``Hooks.end``); an
execution that ends by itself is followed by a sweep of what it left (``Hooks.sweep``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from code_interpreter.sandbox.process import DRAIN_S, Capture, Run, disk_poll_s

HEADER = struct.Struct("!I")
MAX_EVENT = 64 * 1024


class WarmError(Exception):
    """The warm sandbox failed (it is gone); the caller runs the execution cold instead."""


@dataclass(frozen=True)
class Watch:
    """The per-execution limits the host enforces while it runs."""

    timeout_s: float
    max_output_bytes: int
    disk_room: Callable[[], int]
    disk_room_at_start: int


@dataclass(frozen=True)
class Hooks:
    """What the supervisor needs of the sandbox."""

    out_of_memory: Callable[[], bool]
    alive: Callable[[], bool]
    sweep: Callable[[float], object]  # kill what the execution left, by this deadline
    end: Callable[[], None]  # end the sandbox whole


def supervise(
    begin: Callable[[list[int]], int],
    ended: Callable[[float], int | None],
    *,
    watch: Watch,
    hooks: Hooks,
    limit_s: float | None = None,
) -> Run:
    """``begin(stdio)`` starts the execution on [stdin, stdout, stderr] (they are closed after
    it returns) and returns a descriptor; once that is readable, ``ended(deadline)`` is its wait
    status (None: the sandbox died under it)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    started, started_at = time.monotonic(), time.time()
    try:
        done_fd = begin([null, out_w, err_w])
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        hooks.end()
        raise
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    stdout, stderr = Capture(watch.max_output_bytes), Capture(watch.max_output_bytes)
    deadline = started + (limit_s or watch.timeout_s)
    next_disk = started + disk_poll_s(watch.disk_room_at_start)
    captures = {out_r: stdout, err_r: stderr}
    status: int | None = None
    reason: str | None = None
    try:
        while reason is None and status is None:
            now = time.monotonic()
            if hooks.out_of_memory():
                reason = "oom"
            elif now >= deadline:
                reason = "timeout"
            elif now >= next_disk:
                room = watch.disk_room()
                reason = "disk_quota" if room < 0 else None
                next_disk = now + disk_poll_s(room)
            if reason is not None or not hooks.alive():
                reason = reason or "gone"
                break
            ready, _, _ = select.select(
                [*captures, done_fd], [], [], max(0.001, min(deadline, next_disk) - now)
            )
            for fd in ready:
                if fd == done_fd:
                    status = ended(deadline)
                    reason = "gone" if status is None else None
                elif not _read_into(fd, captures) and reason is None:
                    reason = "output_limit"
        if reason is None:
            hooks.sweep(time.monotonic() + DRAIN_S)
        else:
            hooks.end()
        _drain(captures, time.monotonic() + DRAIN_S)
        if captures:  # something kept the pipes open after the sweep: end it all
            hooks.end()
    finally:
        for fd in captures:
            os.close(fd)
    if hooks.out_of_memory() and reason != "timeout":
        reason = "oom"  # killed for its memory, whatever the code printed as it died
    elif reason == "gone":  # it died under the code (PID 1 cannot be killed from inside)
        reason = None
    exit_code = None if status is None else os.waitstatus_to_exitcode(status)
    return Run(
        stdout=stdout,
        stderr=stderr,
        returncode=exit_code if exit_code is not None else -signal.SIGKILL,
        exit_code=exit_code,
        kill_reason=reason,
        wall_time_s=time.monotonic() - started,
        started_at=started_at,
    )


def _read_into(fd: int, captures: dict[int, Capture]) -> bool:
    """Read what is there; False once the stream went over its limit."""
    chunk = os.read(fd, 65536)
    if not chunk:
        os.close(fd)
        del captures[fd]
        return True
    return not captures[fd].feed(chunk)


def _drain(captures: dict[int, Capture], deadline: float) -> None:
    while captures:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select(list(captures), [], [], left)
        for fd in ready:
            _read_into(fd, captures)


# -- the agent's channel: length-prefixed JSON, descriptors with the first bytes ----------------


def send_request(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    body = json.dumps(request).encode()
    socket.send_fds(sock, [HEADER.pack(len(body))], fds)
    sock.sendall(body)


def receive_event(
    sock: socket.socket, deadline: float, fds: list[int] | None = None
) -> dict[str, Any]:
    """The agent's next event; raises OSError or ValueError (gone, silent, malformed). With
    ``fds``, descriptors that came with it are added there (else none is accepted)."""
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    head = b""
    if fds is not None:
        head, received, _, _ = socket.recv_fds(sock, HEADER.size, 4)
        fds += received
        if not head:
            raise ConnectionError("the agent closed its channel")
    (size,) = HEADER.unpack(head + _exactly(sock, HEADER.size - len(head)))
    if size > MAX_EVENT:
        raise ValueError("oversized event")
    event = json.loads(_exactly(sock, size))
    if not isinstance(event, dict):
        raise ValueError("malformed event")
    return event


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the agent closed its channel")
        data += chunk
    return bytes(data)
