"""How a fork of the zygote becomes the process a fresh ``python3`` would have been.

Start-up (what CPython's ``Py_InitializeFromConfig`` and ``pymain_run_python`` leave behind) is
redone for the caller: its fds at their numbers and nothing else open, its working directory,
umask, resource limits, nice value, process name, signal dispositions and mask, environment,
``sys.argv``, ``sys.orig_argv``, ``sys.executable``, ``sys.path`` (and its importer cache),
``sys.flags``, stdio streams built as ``create_stdio`` builds them, and a fresh ``__main__``;
``random`` and ``numpy.random`` are reseeded and ``tempfile`` forgets its directory. The zygote's
own modules leave ``sys.modules``; the preloaded ones stay (that is the point).

What stays the zygote's: the parent process (``os.getppid()``), the process group (its own),
the command line in /proc (``ps`` shows the zygote's), the hash seed of ``str`` and ``bytes``
(one per zygote), the Python frames below ``__main__`` and the memory of the preloaded modules
(counted by ``RLIMIT_DATA`` as if the code had imported them).
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import fcntl
import functools
import io
import linecache
import os
import resource
import signal
import socket
import sys
import types
from collections.abc import Mapping
from importlib.machinery import BuiltinImporter
from typing import Any, NoReturn

from code_interpreter.runtime import zygote_run as run
from code_interpreter.runtime import zygote_wire as wire
from code_interpreter.runtime.zygote_launch import Facts, Identity, Plan

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def die_with_parent() -> None:
    """For the zygote's helpers (spare, state holder): useless once the zygote is gone."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@functools.cache
def flags_patchable() -> bool:
    """Whether sys.flags has CPython's tuple layout, so :func:`set_flags` can rewrite it."""
    flags = sys.flags
    return all(
        ctypes.c_void_p.from_address(_flag_slot(index)).value == id(flags[index])
        for index in range(len(flags))
    )


# -- becoming the caller's process -------------------------------------------------------------


def install_fds(targets: list[int], fds: list[int], keep: int) -> int:
    """Give each passed fd its number in the caller and close every other fd but ``keep``,
    which moves above the caller's (to the top of the fd table, where user code will not reach
    it by opening files) and is returned."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(soft if soft > 0 else 1024, 1024) - 1
    floor = max(targets, default=2) + 1
    try:
        moved = _dup_above(keep, max(top, floor))
    except OSError:  # that high is taken: anywhere above the caller's
        moved = _dup_above(keep, floor)
    parked = [_dup_above(fd, floor) for fd in fds]
    wanted = {moved, *parked}
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in wanted:
            with contextlib.suppress(OSError):  # the listing's own descriptor
                os.close(int(name))
    for fd, target in zip(parked, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    return moved


def _dup_above(fd: int, floor: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def set_limits(*, umask: int, rlimits: Mapping[int, tuple[int, int]], nice: int) -> None:
    os.umask(umask)
    for number, limits in rlimits.items():
        if resource.getrlimit(number) != limits:
            resource.setrlimit(number, limits)
    if os.getpriority(os.PRIO_PROCESS, 0) != nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def set_identity(name: str) -> None:
    """Its own process group (the client forwards signals: a group kill would double them) and
    the process name the client has."""
    os.setpgid(0, 0)
    _libc.prctl(_PR_SET_NAME, os.fsencode(name)[:15], 0, 0, 0)


def leave_clean(identities: Mapping[str, Identity]) -> None:
    """In the zygote, once it is ready: what every child would otherwise undo, undone once.

    Its own modules leave sys.modules (they stay loaded: its code holds them), the importer
    cache keeps only the runtime's own entries, and __main__ is a fresh module."""
    for name in [name for name in sys.modules if name.startswith("code_interpreter")]:
        del sys.modules[name]
    runtime_entries = {entry for identity in identities.values() for entry in identity.path}
    for entry in [key for key in sys.path_importer_cache if key not in runtime_entries]:
        del sys.path_importer_cache[entry]
    for name in ("last_type", "last_value", "last_traceback"):
        sys.__dict__.pop(name, None)
    linecache.clearcache()
    new_main()


def prepare() -> dict[str, Any]:
    """In a new spare, before it accepts: its own random seeds, signals blocked until the code
    runs, and its own __main__ (a fresh one the zygote left). Returns that namespace."""
    _reseed()
    signal.pthread_sigmask(signal.SIG_SETMASK, signal.valid_signals())
    return sys.modules["__main__"].__dict__


def default_signals() -> None:
    """Dispositions as CPython leaves them: SIGINT raises KeyboardInterrupt, SIGPIPE and SIGXFSZ
    are ignored, the rest default (the zygote's own: it never changes them)."""
    for number in signal.valid_signals():
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler: Any = signal.SIG_DFL
        if number in (signal.SIGPIPE, signal.SIGXFSZ):
            handler = signal.SIG_IGN
        elif number == signal.SIGINT:
            handler = signal.default_int_handler
        try:
            signal.signal(number, handler)
        except (OSError, ValueError):
            continue
    signal.set_wakeup_fd(-1)


def set_signals(*, ignored: frozenset[int], blocked: frozenset[int]) -> None:
    """The caller's ignored signals stay ignored (SIG_IGN survives exec), then its mask."""
    for number in ignored:
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def set_environ(environ: Mapping[str, str]) -> None:
    """Exactly the caller's environment (changing only what differs: each change is a write
    to a page shared with the zygote). The zygote synchronised the C level with os.environ."""
    for name in [name for name in os.environ if name not in environ]:
        del os.environ[name]
    for name, value in environ.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def sync_environ() -> None:
    """In the zygote: the C environment exactly os.environ (libraries may have added to it)."""
    saved = dict(os.environ)
    os.environ.clear()
    _libc.clearenv()
    os.environ.update(saved)


def set_interpreter(
    *,
    argv: list[str],
    orig_argv: list[str],
    identity: Identity,
    path: list[str] | tuple[str, ...],
    dont_write_bytecode: bool,
    quiet: bool,
) -> None:
    sys.argv = list(argv)
    sys.orig_argv = list(orig_argv)
    sys.executable = identity.executable
    sys._base_executable = identity.base_executable  # type: ignore[attr-defined]
    sys.path[:] = path
    sys.dont_write_bytecode = dont_write_bytecode
    set_flags(dont_write_bytecode=int(dont_write_bytecode), quiet=int(quiet))


def set_flags(**values: int) -> None:
    """Rewrite sys.flags fields in this process (CPython offers no other way after start-up).

    Only where they differ, and only with the layout :func:`flags_patchable` checked."""
    if not flags_patchable():
        return
    fields = type(sys.flags).__match_args__
    for name, value in values.items():
        index = fields.index(name)
        if sys.flags[index] != value:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(value))  # the old one is a cached int
            ctypes.c_void_p.from_address(_flag_slot(index)).value = id(value)


def _flag_slot(index: int) -> int:
    return id(sys.flags) + tuple.__basicsize__ + index * tuple.__itemsize__


def _reseed() -> None:
    """A fresh interpreter seeds its generators from the OS; forks would share the zygote's."""
    for module_name in ("random", "numpy.random"):
        module: Any = sys.modules.get(module_name)
        if module is not None:
            module.seed()
    tempfile: Any = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # computed from $TMPDIR at first use


def set_stdio(*, unbuffered: bool, encodings: tuple[tuple[str, str], ...]) -> None:
    """sys.stdin/stdout/stderr as CPython's create_stdio makes them for fds 0-2."""
    for fd, name, (encoding, errors) in zip(
        (0, 1, 2), ("stdin", "stdout", "stderr"), encodings, strict=True
    ):
        stream = stdio_stream(fd, name, unbuffered=unbuffered, encoding=encoding, errors=errors)
        if getattr(sys, name, None) is getattr(sys, f"__{name}__", None):
            setattr(sys, name, stream)  # unless the code replaced it (a state's earlier chunk)
        setattr(sys, f"__{name}__", stream)


def stdio_stream(
    fd: int, name: str, *, unbuffered: bool, encoding: str, errors: str
) -> io.TextIOWrapper | None:
    try:
        os.fstat(fd)
    except OSError:
        return None  # a closed fd: CPython sets the stream to None
    write = fd != 0
    buffering = 0 if unbuffered and write else -1
    buffer: Any = io.open(fd, "wb" if write else "rb", buffering, closefd=False)  # noqa: SIM115, UP020
    raw = buffer if buffering == 0 else buffer.raw
    raw.name = f"<{name}>"
    line_buffering = not unbuffered and (raw.isatty() or fd == 2)
    stream = io.TextIOWrapper(
        buffer,
        encoding,
        errors,
        "\n",
        line_buffering=line_buffering,
        write_through=unbuffered,
    )
    stream.mode = "w" if write else "r"  # type: ignore[misc]
    return stream


def new_main(loader: Any = BuiltinImporter) -> dict[str, Any]:
    """A fresh __main__ as the interpreter creates it at start-up; returns its namespace."""
    main = types.ModuleType("__main__")
    namespace = main.__dict__
    namespace["__annotations__"] = {}
    namespace["__builtins__"] = builtins
    namespace["__loader__"] = loader
    sys.modules["__main__"] = main
    return namespace


def become(
    conn: socket.socket,
    request: wire.PythonRequest,
    plan: Plan,
    facts: Facts,
    namespace: dict[str, Any],
) -> NoReturn:
    """The spare that took ``request``: set up, announce, wait for the go, run, end.

    ``namespace`` is __main__'s, from :func:`prepare`."""
    conn_fd = install_fds(request.fd_targets, request.passed_fds, conn.detach())
    info = os.fstat(conn_fd)
    set_limits(umask=request.umask, rlimits=request.rlimits, nice=request.nice)
    set_identity(request.comm)
    set_environ(plan.environ)
    set_interpreter(
        argv=list(plan.argv),
        orig_argv=request.argv,
        identity=plan.identity,
        path=plan.path,
        dont_write_bytecode=plan.dont_write_bytecode,
        quiet=plan.quiet,
    )
    set_stdio(unbuffered=plan.unbuffered, encodings=facts.stdio)
    sock = socket.socket(fileno=conn_fd)
    sock.setblocking(True)  # the spare read the request with a timeout (O_NONBLOCK)
    pidfd = os.pidfd_open(os.getpid())
    try:
        wire.send(sock, wire.Kind.STARTED, os.getpid(), fds=[pidfd])
        go = sock.recv(1)
    except OSError:
        go = b""
    if go != wire.GO:
        os._exit(0)  # the client gave up and started the real interpreter
    os.close(pidfd)
    sock.detach()
    conn_id = (info.st_dev, info.st_ino)
    os.register_at_fork(after_in_child=lambda: _forget(conn_fd, conn_id))
    try:
        set_signals(ignored=request.ignored, blocked=request.blocked)
        status, interrupted = run.run_plan(plan, namespace)
    except KeyboardInterrupt as exc:  # arrived in the instant before the code's first line
        status, interrupted = run.report_uncaught(exc), True
    status = run.finalize(status, namespace)
    run.end(status, interrupted, conn_fd, conn_id)


def _forget(conn_fd: int, conn_id: tuple[int, int]) -> None:
    """In a process the code forks: the connection is its parent's (if the fd is still it)."""
    with contextlib.suppress(OSError):
        info = os.fstat(conn_fd)
        if (info.st_dev, info.st_ino) == conn_id:
            os.close(conn_fd)
