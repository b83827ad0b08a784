"""The host's side of a warm sandbox's Python zygote: served ``py`` runs, stateful chunks, status.

The zygote (``runtime/zygote.py``) runs inside one sandbox, started there with
:func:`zygote_command`, and listens on a unix socket; ``python3`` inside the sandbox reaches it
through ``$SANDBOX_PY_ZYGOTE``, and the host reaches it through the same socket file, which the
host must place where it can see it (a directory it created and bound into the sandbox).

Stateful chunks run one at a time in one persistent interpreter: ``x = 41`` in one chunk, then
``print(x + 1)`` in the next prints 42. The caller keeps the ``state`` token of each result and
passes it as ``expect_state`` next time; when that state is gone (the sandbox went cold, the
state ended with ``exit()`` or was killed) the chunk runs in a fresh state and the result says
``state_lost``: prepend :data:`STATE_LOST_NOTE` to what the model reads. ``expect_state=None``
starts a fresh state (ending any other).

A ``py`` execution of a warm sandbox asks the zygote itself for its ``python3``
(:func:`start_served`), as the sandbox's ``python3`` client would ask for it, but with no
process started in between: the zygote's fork runs it on the execution's stdio and the host
waits for its exit status (:meth:`Served.wait`). When the zygote would send the invocation to the
real interpreter (or is not there yet), the caller starts it the usual way.

The sandbox is untrusted, and code in it can replace the zygote: the socket is opened without
following a link the sandbox may have planted, replies are size-capped and time-limited, and
the only descriptor accepted back is a pidfd (for interrupting a chunk that overruns).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from code_interpreter.runtime import zygote_wire as wire
from code_interpreter.runtime.zygote_wire import Kind
from code_interpreter.sandbox.command import RUNTIME_MOUNT, SANDBOX_MOUNT

SOCKET_ENV = wire.SOCKET_ENV
STATE_LOST_NOTE = (
    "Note: the Python state of earlier executions was lost (the session's sandbox was restarted"
    " or its interpreter ended); this execution started with a fresh state."
)
MAX_REPLY = 64 * 1024
_DEV_NULL = os.stat(os.devnull).st_rdev


class ZygoteError(Exception):
    """The zygote could not run the chunk or answer; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ChunkResult:
    exit_code: int | None  # 0 ok, 1 an exception, N from SystemExit(N)
    signal: int | None  # the state holder died of this signal
    state: str  # the state the chunk ran in: the next chunk's expect_state
    state_lost: bool  # the expected state was gone; this chunk ran in a fresh one
    state_ended: bool  # the chunk ended its state (exit(), a crash, a kill)
    timed_out: bool

    @property
    def note(self) -> str | None:
        """The one line the model should read before the output, if any."""
        return STATE_LOST_NOTE if self.state_lost else None


def zygote_command(socket_path: str, *, preload: Sequence[str] | None = None) -> list[str]:
    """The command that starts the zygote inside a sandbox (run it with the sandbox's
    environment, the one its ``python3`` calls will have, and its stdio on /dev/null or a log)."""
    argv = [f"{RUNTIME_MOUNT}/bin/sandbox-zygote", "--socket", socket_path]
    if preload is not None:
        argv += ["--preload", ",".join(preload)]
    return argv


def run_chunk(
    socket_path: str | Path,
    code: str,
    *,
    stdin: int,
    stdout: int,
    stderr: int,
    expect_state: str | None,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    cwd: str = SANDBOX_MOUNT,
    timeout_s: float,
    interrupt_grace_s: float = 2.0,
) -> ChunkResult:
    """Run ``code`` in the session's Python state, its stdio on the given fds (pipes, sockets
    or /dev/null: never a descriptor that names a host path). Blocks until it ends; read the
    pipes from other threads. At ``timeout_s`` the chunk gets SIGINT (a KeyboardInterrupt it may
    survive, the state kept), ``interrupt_grace_s`` later SIGKILL (the state lost)."""
    for fd in (stdin, stdout, stderr):
        _check_stdio(fd)
    request = wire.ChunkRequest(code, tuple(args), dict(env), cwd, expect_state)
    deadline = time.monotonic() + timeout_s
    with _connect(socket_path, timeout_s=max(0.1, timeout_s)) as sock:
        wire.send(sock, Kind.CHUNK, payload=request.encode(), fds=[stdin, stdout, stderr])
        started = _receive(sock, deadline)
        if started.kind == Kind.ERROR:
            started.close_fds()
            raise ZygoteError(started.payload.decode(errors="replace"), permanent=True)
        pidfd = _pidfd(started)
        try:
            return _await_end(sock, pidfd, deadline, interrupt_grace_s)
        finally:
            if pidfd is not None:
                os.close(pidfd)


@dataclass(frozen=True)
class Inherited:
    """What a process started in the sandbox inherits, as the python3 client reports it."""

    umask: int
    nice: int
    rlimits: tuple[tuple[int, int], ...]  # by resource number, -1 unlimited
    interpreter: tuple[int, int]  # (st_dev, st_ino) of the interpreter the client would exec


class Served:
    """A ``python3`` the zygote runs for the host: wait for its end, then :meth:`close`."""

    def __init__(self, sock: socket.socket, pidfd: int | None) -> None:
        self.sock = sock
        self.pidfd = pidfd

    def fileno(self) -> int:
        """Readable once the run has ended (or the zygote has gone)."""
        return self.sock.fileno()

    def wait(self, deadline: float) -> int:
        """The run's wait status, as the zygote reports it; ZygoteError for anything else."""
        try:
            ended = _receive(self.sock, deadline)
        except TimeoutError:
            raise ZygoteError("the served python3 did not report its end") from None
        ended.close_fds()
        if ended.kind != Kind.ENDED:
            raise ZygoteError(f"unexpected reply {ended.kind} to a python3")
        try:
            os.waitstatus_to_exitcode(ended.value)
        except ValueError:
            raise ZygoteError("a malformed exit status") from None
        return ended.value

    def close(self) -> None:
        """Kill the process (its end was reported: it only has its teardown left, and nothing
        of it may run on unseen) and close the connection."""
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = None
        self.sock.close()


def start_served(
    socket_path: str | Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd_fd: int,
    stdio: Sequence[int],
    inherited: Inherited,
    rlimits: Mapping[int, tuple[int, int]],
    timeout_s: float = 5.0,
) -> Served | None:
    """Have the zygote run ``argv`` (a ``python3`` command line) with ``env``, in the directory
    ``cwd_fd`` names, on ``stdio`` (pipes, sockets or /dev/null), with ``inherited``'s limits
    lowered by ``rlimits``. None when it is not served (no zygote, it would fall back, it did
    not answer in ``timeout_s``): nothing has run, start the command the usual way."""
    for fd in stdio:
        _check_stdio(fd)
    limits = [rlimits.get(number, limit) for number, limit in enumerate(inherited.rlimits)]
    payload = wire.encode_python_request(
        argv=argv,
        environ=[os.fsencode(f"{key}={value}") for key, value in env.items()],
        fd_targets=list(range(len(stdio))),
        interpreter=inherited.interpreter,
        umask=inherited.umask,
        nice=inherited.nice,
        rlimits=limits,
    )
    try:
        sock = _connect(socket_path, timeout_s=timeout_s)
    except ZygoteError:
        return None
    try:
        wire.send(sock, Kind.PYTHON, payload=payload, fds=[cwd_fd, *stdio])
        started = _receive(sock, time.monotonic() + timeout_s)
        if started.kind == Kind.FALLBACK:
            started.close_fds()
            sock.close()
            return None
        pidfd = _pidfd(started)
    except (OSError, ZygoteError):  # before the go nothing runs: the usual way is safe
        sock.close()
        return None
    served = Served(sock, pidfd)
    try:
        sock.sendall(wire.GO)
    except OSError:
        served.close()
        return None
    return served


def zygote_status(socket_path: str | Path, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """The zygote's own account: pid, PSS, spare, state, served and fallback counts..."""
    with _connect(socket_path, timeout_s=timeout_s) as sock:
        wire.send(sock, Kind.STATUS)
        reply = _receive(sock, time.monotonic() + timeout_s)
        reply.close_fds()
    if reply.kind != Kind.STATE:
        raise ZygoteError(f"unexpected reply {reply.kind} to a status request")
    return _json_object(reply.payload)


def _connect(socket_path: str | Path, *, timeout_s: float) -> socket.socket:
    """Connect without following a link in the socket's name (the sandbox can write there)."""
    path = Path(socket_path)
    try:
        parent = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ZygoteError(f"no zygote socket directory: {exc}", permanent=True) from None
    try:
        fd = os.open(path.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        raise ZygoteError(f"no zygote socket: {exc}") from None
    finally:
        os.close(parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise ZygoteError(f"{path} is not a socket", permanent=True)
        sock.settimeout(timeout_s)
        sock.connect(f"/proc/self/fd/{fd}")
    except OSError as exc:
        sock.close()
        raise ZygoteError(f"cannot reach the zygote: {exc}") from None
    except ZygoteError:
        sock.close()
        raise
    finally:
        os.close(fd)
    return sock


def _check_stdio(fd: int) -> None:
    info = os.fstat(fd)
    if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
        return
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == _DEV_NULL:
        return
    raise ValueError("a chunk's stdio must be pipes, sockets or /dev/null")


def _receive(sock: socket.socket, deadline: float) -> wire.Message:
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        return wire.receive(sock, max_payload=MAX_REPLY)
    except TimeoutError:
        raise
    except (OSError, wire.WireError) as exc:
        raise ZygoteError(f"the zygote did not answer: {exc}") from None


def _pidfd(message: wire.Message) -> int | None:
    """The one descriptor accepted from the sandbox, and only if it is a pidfd."""
    if message.kind != Kind.STARTED:
        message.close_fds()
        raise ZygoteError(f"unexpected reply {message.kind} to a request")
    fds, message.fds = message.fds, []
    pidfd = None
    for fd in fds:
        try:
            is_pidfd = os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
        except OSError:
            is_pidfd = False
        if pidfd is None and is_pidfd:
            pidfd = fd
        else:
            os.close(fd)
    return pidfd


def _await_end(
    sock: socket.socket, pidfd: int | None, deadline: float, grace_s: float
) -> ChunkResult:
    timed_out = False
    for sent in (None, signal.SIGINT, signal.SIGKILL):
        if sent is not None:
            timed_out = True
            if pidfd is None:
                raise ZygoteError("the chunk overran and cannot be interrupted")
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, sent)
            deadline = time.monotonic() + grace_s
        try:
            ended = _receive(sock, deadline)
        except TimeoutError:
            continue
        ended.close_fds()
        if ended.kind != Kind.ENDED:
            raise ZygoteError(f"unexpected reply {ended.kind} to a chunk")
        return _result(ended, timed_out)
    raise ZygoteError("the chunk did not end after SIGKILL")


def _result(ended: wire.Message, timed_out: bool) -> ChunkResult:
    details = _json_object(ended.payload)
    state, lost, finished = details.get("state"), details.get("lost"), details.get("ended")
    if not (isinstance(state, str) and isinstance(lost, bool) and isinstance(finished, bool)):
        raise ZygoteError("a malformed end of chunk")
    try:
        code = os.waitstatus_to_exitcode(ended.value)
    except ValueError:
        raise ZygoteError("a malformed end of chunk") from None
    return ChunkResult(
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        state=state,
        state_lost=lost,
        state_ended=finished,
        timed_out=timed_out,
    )


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except ValueError:
        raise ZygoteError("a malformed reply") from None
    if not isinstance(document, dict):
        raise ZygoteError("a malformed reply")
    return document
