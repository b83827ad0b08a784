"""The zygote's event loop: spare children ready to serve, served children, and the Python state.

Processes (all forks of the zygote, which never runs user code itself):

* **spares** (two by default) wait in ``accept()`` on the listening socket. For a ``python3``
  request a spare either sends the client to the real interpreter and waits again, or tells the
  zygote it is *taken* (handing over the client's connection) and becomes that ``python3``. The
  zygote forks a replacement a moment (``TOP_UP_DELAY_S``) after the taken child has ended, or
  at once when no spare is left: a request rarely waits for a fork, and the fork (with the new
  spare's rehearsal, ``zygote_forks.rehearse``) rarely competes with a run for the CPU.
  ``CHUNK`` and ``STATUS`` requests a spare forwards to the zygote.
* **served children** are reaped here: their wait status goes to their client (which exits
  with it), and a client that disappears (killed) takes its child with it (SIGKILL).
* the **state holder** runs stateful ``py`` chunks one at a time in one ``__main__``; the zygote
  queues chunks, starts a holder when there is none or the caller expects another one (the
  reply then says the state was lost), and reports each chunk's end.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import secrets
import select
import signal
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from code_interpreter.runtime import zygote_forks as forks
from code_interpreter.runtime import zygote_launch as launch
from code_interpreter.runtime import zygote_wire as wire
from code_interpreter.runtime.zygote_wire import Kind

SPARE_FAILURES = 5  # spares dying this many times in a row, without serving: stop serving
# After a served child ends, its replacement is forked this much later while another spare is
# ready: the fork (and the new spare's rehearsal) then does not compete for the CPU with the
# end of the run it replaces (the host's sweep, its bookkeeping and its reply).
TOP_UP_DELAY_S = 0.005


@dataclass
class _Process:
    pid: int
    pidfd: int
    conn: socket.socket | None = None  # a served child's client; the spare's or holder's channel


@dataclass
class _State(_Process):
    token: str = ""


@dataclass
class _Chunk:
    conn: socket.socket
    request: wire.ChunkRequest
    fds: list[int]
    lost: bool = False


@dataclass
class _Counters:
    served: int = 0
    fallbacks: int = 0
    recent_fallbacks: deque[str] = field(default_factory=lambda: deque(maxlen=20))


class Zygote:
    def __init__(
        self, listener: socket.socket, facts: launch.Facts, info: dict[str, Any], *, spares: int = 2
    ) -> None:
        self.listener = listener
        self.facts = facts
        self.info = info  # for STATUS: what was preloaded, how long it took...
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[], None]] = {}
        self.owned: dict[int, socket.socket | None] = {}  # every fd of ours but the listener
        self.spares: dict[int, _Process] = {}
        self.spare_count = spares
        self.children: dict[int, _Process] = {}
        self.state: _State | None = None
        self.queue: deque[_Chunk] = deque()
        self.in_flight: _Chunk | None = None
        self.counters = _Counters()
        self.spare_failures = 0
        self.top_up_at: float | None = None  # a replacement spare is due then

    def serve_forever(self) -> NoReturn:
        self._top_up()
        while True:
            timeout = -1.0
            if self.top_up_at is not None:
                timeout = max(0.0, self.top_up_at - time.monotonic())
            self._dispatch([fd for fd, _ in self.epoll.poll(timeout)])
            if self.top_up_at is not None and time.monotonic() >= self.top_up_at:
                self.top_up_at = None
                self._top_up()

    def _dispatch(self, ready: list[int]) -> None:
        """Run the handlers of one poll's ready descriptors. A handler may close a descriptor
        whose event is still in this batch, and a fork may reuse its number at once: an event
        whose handler changed meanwhile is not for the new one (a new spare's pidfd would be
        waited on while it lives). Epoll is level-triggered: what is still ready comes again."""
        batch = [(fd, self.handlers.get(fd)) for fd in ready]
        for fd, handler in batch:
            if handler is not None and self.handlers.get(fd) is handler:
                handler()

    # -- descriptors ---------------------------------------------------------------------------

    def _own(self, fd: int, sock: socket.socket | None = None) -> None:
        self.owned[fd] = sock

    def _watch(self, fd: int, handler: Callable[[], None], events: int = select.EPOLLIN) -> None:
        self.epoll.register(fd, events)
        self.handlers[fd] = handler

    def _close(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.epoll.unregister(fd)
        if fd not in self.owned:
            return
        sock = self.owned.pop(fd)
        if sock is None:
            os.close(fd)
        else:
            sock.close()

    def _release(self, keep: socket.socket | None = None) -> None:
        """In a forked child: close everything of the zygote's but ``keep``."""
        for fd, sock in self.owned.items():
            if sock is None:
                os.close(fd)
            elif sock is not keep:
                sock.close()
        self.epoll.close()

    def _fork(self, main: Callable[[], object]) -> int:
        gc.freeze()  # the child's garbage collector leaves the zygote's objects (and pages) alone
        for stream in (sys.stdout, sys.stderr):  # nothing of the zygote's may reach a child's fds
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:
            try:
                main()
            except BaseException:  # never back into the zygote's loop
                traceback.print_exc()
            finally:
                os._exit(70)
        return pid

    def _reap(self, process: _Process) -> int:
        _, status = os.waitpid(process.pid, 0)
        self._close(process.pidfd)
        if process.conn is not None:
            self._close(process.conn.fileno())
        return status

    # -- the spare and served children -------------------------------------------------------------

    def _fork_helper(self, main: Callable[[socket.socket], object]) -> _Process:
        """A child that talks with the zygote over a socket pair (the process's ``conn``)."""
        ours, theirs = socket.socketpair()

        def child_main() -> None:
            ours.close()
            self._release(keep=theirs)
            main(theirs)

        pid = self._fork(child_main)
        theirs.close()
        ours.settimeout(wire.TIMEOUT_S)
        process = _Process(pid, os.pidfd_open(pid), ours)
        self._own(process.pidfd)
        self._own(ours.fileno(), ours)
        return process

    def _read(self, process: _Process) -> wire.Message | None:
        """The next message from a helper; None (and the channel closed) when it has gone."""
        assert process.conn is not None
        try:
            return wire.receive(process.conn)
        except (OSError, wire.WireError):
            self._close(process.conn.fileno())
            process.conn = None
            return None

    def _fork_spare(self) -> None:
        spare = self._fork_helper(
            lambda channel: forks.serve_as_spare(self.listener, channel, self.facts)
        )
        assert spare.conn is not None
        self._watch(spare.pidfd, lambda: self._on_spare_exit(spare))
        self._watch(spare.conn.fileno(), lambda: self._on_spare_message(spare))
        self.spares[spare.pid] = spare

    def _top_up(self) -> None:
        while len(self.spares) < self.spare_count:
            self._fork_spare()

    def _top_up_soon(self) -> None:
        """Fork the missing spares at once when none is left, else a moment later."""
        if not self.spares:
            self._top_up()
        elif len(self.spares) < self.spare_count and self.top_up_at is None:
            self.top_up_at = time.monotonic() + TOP_UP_DELAY_S

    def _on_spare_message(self, spare: _Process) -> None:
        message = self._read(spare)
        if message is None:
            return
        assert spare.conn is not None
        if message.kind == Kind.TAKEN and message.fds:
            self.spare_failures = 0
            self.counters.served += 1
            self._close(spare.conn.fileno())
            client = socket.socket(fileno=message.fds[0])
            spare.conn = client
            self._own(client.fileno(), client)
            self._watch(client.fileno(), lambda: self._on_client_gone(spare), select.EPOLLRDHUP)
            self.handlers[spare.pidfd] = lambda: self._on_child_exit(spare)
            del self.spares[spare.pid]
            self.children[spare.pid] = spare
            if not self.spares:
                self._fork_spare()
        elif message.kind == Kind.FELL_BACK:
            self.counters.fallbacks += 1
            self.counters.recent_fallbacks.append(message.payload.decode(errors="replace"))
        elif message.kind == Kind.FORWARD and message.fds:
            self._on_forwarded(message)
        else:
            message.close_fds()

    def _on_spare_exit(self, spare: _Process) -> None:
        self._reap(spare)
        del self.spares[spare.pid]
        self.spare_failures += 1
        if self.spare_failures >= SPARE_FAILURES:
            sys.exit(f"zygote: {SPARE_FAILURES} spares died in a row; stopping")
        self._top_up()

    def _on_child_exit(self, process: _Process) -> None:
        status = os.waitpid(process.pid, 0)[1]
        if process.conn is not None:
            with contextlib.suppress(OSError):
                wire.send(process.conn, Kind.ENDED, status)
        del self.children[process.pid]
        process.pid = -1  # reaped
        self._close(process.pidfd)
        if process.conn is not None:
            self._close(process.conn.fileno())
        self._top_up_soon()

    def _on_client_gone(self, process: _Process) -> None:
        """The client was killed: so is its child, as if it had been the process itself."""
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(process.pidfd, signal.SIGKILL)
        if process.conn is not None:
            self._close(process.conn.fileno())
            process.conn = None

    # -- forwarded requests: status and chunks -----------------------------------------------

    def _on_forwarded(self, message: wire.Message) -> None:
        conn = socket.socket(fileno=message.fds[0])
        fds = message.fds[1:]
        if message.value == Kind.STATUS:
            with contextlib.suppress(OSError), conn:
                wire.send(conn, Kind.STATE, payload=json.dumps(self._status()).encode())
            wire.Message(0, fds=fds).close_fds()
            return
        problem, request = _chunk_request(message, fds, self.facts)
        if request is None:
            with contextlib.suppress(OSError), conn:
                wire.send(conn, Kind.ERROR, payload=problem.encode())
            wire.Message(0, fds=fds).close_fds()
            return
        self._own(conn.fileno(), conn)
        for fd in fds:
            self._own(fd)
        self.queue.append(_Chunk(conn, request, fds))
        self._pump()

    def _pump(self) -> None:
        if self.in_flight is not None or not self.queue:
            return
        chunk = self.queue.popleft()
        expected = chunk.request.expect_state
        if self.state is not None and self.state.token != expected:
            signal.pidfd_send_signal(self.state.pidfd, signal.SIGKILL)  # reaped when it exits
            self.state = None
        chunk.lost = expected is not None and self.state is None
        state = self.state or self._start_state(chunk.request)
        self.in_flight = chunk
        try:
            wire.send(chunk.conn, Kind.STARTED, state.pid, fds=[state.pidfd])
            assert state.conn is not None
            wire.send(state.conn, Kind.CHUNK, payload=chunk.request.encode(), fds=chunk.fds)
        except OSError:
            pass  # the holder's exit, or the caller's absence, is handled as it comes
        for fd in chunk.fds:
            self._close(fd)

    def _start_state(self, request: wire.ChunkRequest) -> _State:
        holder = self._fork_helper(lambda channel: forks.hold_state(channel, request, self.facts))
        state = _State(holder.pid, holder.pidfd, holder.conn, secrets.token_hex(12))
        assert state.conn is not None
        self._watch(state.pidfd, lambda: self._on_state_exit(state))
        self._watch(state.conn.fileno(), lambda: self._on_state_message(state))
        self.state = state
        return state

    def _on_state_message(self, state: _State) -> None:
        message = self._read(state)
        if message is None:
            return
        message.close_fds()
        if message.kind == Kind.DONE and self.state is state:
            ended = bool(json.loads(message.payload).get("ended"))
            if ended:
                self.state = None
            self._finish_chunk(state, (message.value & 0xFF) << 8, ended=ended)

    def _on_state_exit(self, state: _State) -> None:
        status = self._reap(state)
        state.conn = None
        if self.state is state:
            self.state = None
            self._finish_chunk(state, status, ended=True)

    def _finish_chunk(self, state: _State, status: int, *, ended: bool) -> None:
        chunk, self.in_flight = self.in_flight, None
        if chunk is not None:
            result = {"state": state.token, "lost": chunk.lost, "ended": ended}
            with contextlib.suppress(OSError):
                wire.send(chunk.conn, Kind.ENDED, status, json.dumps(result).encode())
            self._close(chunk.conn.fileno())
        self._pump()

    def _status(self) -> dict[str, Any]:
        return {
            **self.info,
            "pid": os.getpid(),
            "pss_kib": _pss_kib(os.getpid()),
            "cpu_s": _cpu_seconds(),
            "spares": sorted(self.spares),
            "children": sorted(self.children),
            "state": {"pid": self.state.pid, "token": self.state.token} if self.state else None,
            "served": self.counters.served,
            "fallbacks": self.counters.fallbacks,
            "recent_fallbacks": list(self.counters.recent_fallbacks),
        }


def _chunk_request(
    message: wire.Message, fds: list[int], facts: launch.Facts
) -> tuple[str, wire.ChunkRequest | None]:
    """(why not, or "") and the request, if the zygote can run it."""
    if message.value != Kind.CHUNK:
        return f"unknown request {message.value}", None
    try:
        request = wire.decode_chunk_request(message.payload)
    except wire.WireError as exc:
        return str(exc), None
    if len(fds) != 3:
        return "a chunk comes with three fds: stdin, stdout, stderr", None
    differing = launch.start_up_difference(request.env, facts)
    if differing:
        return f"the Python state cannot honour {differing}: it differs from the zygote's", None
    return "", request


def _cpu_seconds() -> dict[str, float]:
    """CPU time of the zygote (its forks) and of the children it reaped (served ones included)."""
    times = os.times()
    return {
        "self": round(times.user + times.system, 4),
        "children": round(times.children_user + times.children_system, 4),
    }


def _pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
