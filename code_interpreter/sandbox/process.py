"""Running one bubblewrap command: limits, output capture, the timeout, and a clean end.

The sandbox waits (``--block-fd``) until its PID 1, announced on the JSON status pipe, has its
resource limits set with prlimit(2): nothing inside needs to set them, and nothing runs before.
When the run ends, or is killed, this waits until PID 1 is gone, which the kernel allows only
once every other process of the sandbox's PID namespace is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from code_interpreter.sandbox.command import Rlimits
from code_interpreter.sandbox.memory import Guard
from code_interpreter.sandbox.seccomp import seccomp_program

# A running execution's disk usage is checked before the room it has left could be filled at
# DISK_GROWTH_BYTES_S (page-cache writes), and at least every DISK_POLL_S.
DISK_POLL_S = 0.25
DISK_MIN_POLL_S = 0.01
DISK_GROWTH_BYTES_S = 2 * 1024**3
SANDBOX_NICE = 10  # scheduling priority of sandboxed code (0 is the default, 19 the lowest)
DRAIN_S = 2.0  # after a kill, how long to wait for the pipes to close and PID 1 to go


class StartError(Exception):
    """bubblewrap could not be started or limited."""


@dataclass(frozen=True)
class Channels:
    """The descriptors bubblewrap is given (their numbers go on its command line)."""

    status_fd: int
    block_fd: int
    seccomp_fd: int | None


@dataclass
class Capture:
    limit: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def feed(self, chunk: bytes) -> bool:
        """Keep what fits; True once the stream went over its limit."""
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.total += len(chunk)
        return self.total > self.limit

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class Run:
    stdout: Capture
    stderr: Capture
    returncode: int
    exit_code: int | None  # as reported by bubblewrap once the command ran
    kill_reason: str | None
    wall_time_s: float
    started_at: float  # wall clock (for file times)


@contextlib.contextmanager
def code_file(code: str) -> Iterator[Path]:
    """The source as a host file: bound, not copied, so the sandbox's own writes stay limited."""
    try:
        fd, path = tempfile.mkstemp(dir=code_source_dir(), suffix=".src")
    except FileNotFoundError:  # a tmp cleaner removed the directory
        code_source_dir.cache_clear()
        fd, path = tempfile.mkstemp(dir=code_source_dir(), suffix=".src")
    try:
        try:
            write_all(fd, code.encode("utf-8", errors="surrogateescape"))
            os.fchmod(fd, 0o444)  # for the sandbox's uid; the directory keeps everyone else out
        finally:
            os.close(fd)
        yield Path(path)
    finally:
        Path(path).unlink(missing_ok=True)


def run_bwrap(
    build_argv: Callable[[Channels], list[str]],
    *,
    rlimits: Rlimits,
    timeout_s: float,
    max_output_bytes: int,
    disk_room: Callable[[], int],
    disk_room_at_start: int,
    guard_memory: Callable[[int, int], Guard],
) -> Run:
    """Start bubblewrap, limit and release the sandbox, and supervise it to its end.

    ``guard_memory(pid, pidfd)`` starts watching the sandbox's memory (``sandbox.memory``) once
    its PID 1 is known, before it is let go; a sandbox over its memory ends as ``oom``.
    ``disk_room()`` is what the session may still write (below 0: over its quota).
    """
    status_r, status_w = os.pipe()
    block_r, block_w = os.pipe()
    seccomp_fd = seccomp_pipe()
    child_fds = [fd for fd in (status_w, block_r, seccomp_fd) if fd is not None]
    try:
        argv = build_argv(Channels(status_fd=status_w, block_fd=block_r, seccomp_fd=seccomp_fd))
        started, started_at = time.monotonic(), time.time()
        try:
            proc = start_bwrap(argv, child_fds, output=subprocess.PIPE)
        finally:
            for fd in child_fds:
                os.close(fd)
        running = RunningSandbox(proc, rlimits, block_w, guard_memory)
        block_w = -1  # the sandbox owns it now
        try:
            run = _supervise(
                running,
                status_r,
                timeout_s,
                max_output_bytes,
                disk_room,
                started + disk_poll_s(disk_room_at_start),
                started,
            )
            run.started_at = started_at
        finally:
            running.kill()
            running.wait_gone()
            running.stop_guard()
    finally:
        os.close(status_r)
        if block_w >= 0:
            os.close(block_w)
    if running.failure:
        raise StartError(f"Could not set the sandbox's resource limits: {running.failure}")
    return run


def start_bwrap(argv: list[str], child_fds: list[int], *, output: int) -> subprocess.Popen[bytes]:
    """bubblewrap in a session of its own, with the descriptors its command line names."""
    try:
        return subprocess.Popen(  # noqa: S603 - a fixed bwrap command line, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=child_fds,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except OSError as exc:
        raise StartError(f"Could not start bubblewrap: {exc}") from exc


def seccomp_pipe() -> int | None:
    """A pipe holding the seccomp program, for bubblewrap to read once."""
    program = seccomp_program()
    if program is None:
        return None
    read_end, write_end = os.pipe()  # the program is far smaller than a pipe's buffer
    try:
        write_all(write_end, program)
    finally:
        os.close(write_end)
    return read_end


@lru_cache(maxsize=1)
def code_source_dir() -> str:
    """A private directory for the source files bound read-only into sandboxes."""
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a private (0700) directory in it
    path = tempfile.mkdtemp(prefix="sandbox-code-", dir=shm if os.access(shm, os.W_OK) else None)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RunningSandbox:
    """bubblewrap, and the sandbox's PID 1 (the code itself) once it is known: when PID 1 dies
    the kernel kills everything else in its PID namespace, and bubblewrap reaps it."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        rlimits: Rlimits,
        block_w: int,
        guard_memory: Callable[[int, int], Guard],
    ) -> None:
        self.proc = proc
        self.rlimits = rlimits
        self.block_w = block_w  # writing to it lets the sandbox go on, once limited
        self.guard_memory = guard_memory
        self.guard: Guard | None = None
        self.pidfd: int | None = None
        self.failure: str | None = None

    @property
    def out_of_memory(self) -> bool:
        return self.guard is not None and self.guard.exceeded

    def stop_guard(self) -> None:
        if self.guard is not None:
            self.guard.stop()

    def watch(self, status_lines: str) -> None:
        """Once bubblewrap names the sandbox's PID 1: limit it (children inherit), release it."""
        if self.pidfd is not None:
            return
        pid = _reported(status_lines, "child-pid")
        if pid is None:
            return
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:  # already gone, and with it the whole namespace
            self.pidfd = -1
            return
        try:
            for limit, values in self.rlimits.resource_limits():
                resource.prlimit(pid, limit, values)
            # Below the service in the scheduler (children inherit it): a busy sandbox never
            # starves the web process, nor the memory supervisor that must see it grow in time.
            os.setpriority(os.PRIO_PROCESS, pid, SANDBOX_NICE)
            self.guard = self.guard_memory(pid, self.pidfd)
        except OSError as exc:
            self.failure = str(exc)
            self.kill()  # before the block pipe closes: never run without limits
            return
        finally:
            if self.failure is None:
                os.write(self.block_w, b"go")
            self._close_block()

    def _close_block(self) -> None:
        if self.block_w >= 0:
            os.close(self.block_w)
            self.block_w = -1

    def kill(self) -> None:
        """SIGKILL the sandbox's PID 1 (the kernel then kills the rest); bubblewrap reaps it.

        bubblewrap itself is killed only before PID 1 is known, or if it does not exit after.
        """
        if self.pidfd is not None and self.pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        elif self.proc.poll() is None:
            self._kill_bwrap()

    def _kill_bwrap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait_gone(self) -> int:
        """bubblewrap's exit status, once nothing of the sandbox runs any more."""
        try:
            returncode = self.proc.wait(timeout=DRAIN_S)
        except subprocess.TimeoutExpired:
            self._kill_bwrap()
            returncode = self.proc.wait()
        self._close_block()
        if self.pidfd is not None and self.pidfd >= 0:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            if not poller.poll(int(DRAIN_S * 1000)):
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                poller.poll(int(DRAIN_S * 1000))
            os.close(self.pidfd)
            self.pidfd = -1
        return returncode


def _supervise(
    sandbox: RunningSandbox,
    status_r: int,
    timeout_s: float,
    max_output_bytes: int,
    disk_room: Callable[[], int],
    next_disk_check: float,
    started: float,
) -> Run:
    proc = sandbox.proc
    assert proc.stdout is not None
    assert proc.stderr is not None
    stdout, stderr = Capture(max_output_bytes), Capture(max_output_bytes)
    status = Capture(64 * 1024)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout.fileno(), selectors.EVENT_READ, stdout)
    selector.register(proc.stderr.fileno(), selectors.EVENT_READ, stderr)
    selector.register(status_r, selectors.EVENT_READ, status)
    deadline = started + timeout_s
    reason: str | None = None
    killed_at = 0.0
    try:
        while True:
            now = time.monotonic()
            if reason is None:
                if sandbox.out_of_memory:
                    reason = "oom"
                elif now >= deadline:
                    reason = "timeout"
                elif now >= next_disk_check:
                    room = disk_room()
                    if room < 0:
                        reason = "disk_quota"
                    next_disk_check = now + disk_poll_s(room)
                if reason is not None:
                    sandbox.kill()
                    killed_at = now
                wait = min(deadline, next_disk_check) - now
            else:
                wait = killed_at + DRAIN_S - now
                if wait <= 0:
                    break
            if not selector.get_map():  # every pipe closed: only the process is left
                try:
                    proc.wait(timeout=max(wait, 0.001))
                    break
                except subprocess.TimeoutExpired:
                    continue
            for key, _ in selector.select(max(wait, 0.001)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                capture: Capture = key.data
                if capture is status:
                    status.feed(chunk)
                    sandbox.watch(status.text())
                elif capture.feed(chunk) and reason is None:
                    reason = "output_limit"
                    sandbox.kill()
                    killed_at = time.monotonic()
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
    if reason is not None:
        sandbox.kill()
    returncode = sandbox.wait_gone()
    if sandbox.out_of_memory and reason in (None, "output_limit"):
        reason = "oom"  # killed for its memory, whatever the code printed as it died
    return Run(
        stdout=stdout,
        stderr=stderr,
        returncode=returncode,
        exit_code=_reported(status.text(), "exit-code"),
        kill_reason=reason,
        wall_time_s=time.monotonic() - started,
        started_at=time.time() - (time.monotonic() - started),
    )


def disk_poll_s(room: int) -> float:
    """Until the next disk check: before ``room`` bytes could be written."""
    return min(DISK_POLL_S, max(DISK_MIN_POLL_S, room / DISK_GROWTH_BYTES_S))


def _reported(status_lines: str, key: str) -> int | None:
    """A number from bubblewrap's JSON status lines ("child-pid", "exit-code")."""
    for line in status_lines.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and isinstance(document.get(key), int):
            return int(document[key])
    return None
