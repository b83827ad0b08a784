"""Memory per sandbox: everything its processes hold together, shared memory included.

``Limits.memory_bytes`` bounds a sandbox's whole process tree: private memory, shared anonymous
mappings, ``memfd_create`` files, and its private ``/tmp`` and ``/dev/shm`` (tmpfs is memory).
It is enforced one of two ways, chosen once per configuration (``memory_enforcement()``, named
by ``sandbox_status()``, the start-up log line and ``/readyz``):

* **cgroup**: a delegated cgroup v2 subtree, as in a container given its own cgroup namespace.
  Each sandbox gets its own cgroup with ``memory.max``, ``memory.swap.max = 0``, ``pids.max``
  and ``memory.oom.group = 1``: the kernel charges every page (tmpfs, memfd and kernel memory
  too) and kills the whole tree at the limit. ``CgroupTree`` decides and writes; its tests run
  against a fake cgroupfs in a temporary directory, since no development machine has one.
* **sampled**: no usable cgroup (cgroup v1, or one we may not change: we never create, move or
  change cgroups outside a delegated v2 subtree). One supervisor thread per process samples every
  watched sandbox through its own ``/proc`` (``/proc/<PID 1>/root/proc``: exactly its processes)
  and SIGKILLs its PID 1, which takes the whole PID namespace with it, once the tree holds more
  than the limit. See ``SampledGuard`` for what is counted and how often.

A guard watches a sandbox from the moment its PID 1 is known until its owner stops the guard,
whatever the sandbox's lifetime: one execution today, a warm sandbox kept between executions.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from code_interpreter.sandbox_command import setting

logger = logging.getLogger(__name__)
MiB = 1024**2
KiB = 1024
# Kernel memory a tmpfs file costs (inode and dentry), charged as if it were data: a million
# empty files in /tmp are not free.
INODE_BYTES = 1024
# How fast a tree is assumed able to grow (pages faulted, tmpfs written) when the next sample is
# scheduled: the next one comes before the headroom left could be used up at this rate.
ASSUMED_GROWTH_BYTES_S = 4 * 1024**3
MIN_INTERVAL_S = 0.003
SETUP_POLL_S = 0.01  # while bubblewrap sets the sandbox up (no code runs yet)
DEEP_SCAN_S = 0.25  # memfd and shared-anonymous objects are looked up at least this often
SHMEM_TRIGGER_BYTES = 32 * MiB  # host-wide shared memory growth that triggers a look-up now
CGROUP_FS = Path("/sys/fs/cgroup")


class Guard(Protocol):
    """Watches one sandbox's memory until stopped."""

    @property
    def exceeded(self) -> bool:
        """The tree went over its limit and was killed for it."""
        ...

    def stop(self) -> None: ...


# -- which enforcement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Enforcement:
    kind: str  # "cgroup" | "sampled"
    detail: str  # what was found, for the status line
    cgroup_parent: Path | None = None

    def describe(self) -> str:
        if self.kind == "cgroup":
            return f"memory per execution: cgroup v2 at {self.cgroup_parent}"
        return f"memory per execution: sampled by a supervisor ({self.detail})"


def memory_enforcement() -> Enforcement:
    """The enforcement for the current settings (``CODE_INTERPRETER_CGROUP``)."""
    return _enforcement(str(setting("CGROUP", "auto")))


@lru_cache(maxsize=4)
def _enforcement(choice: str) -> Enforcement:
    parent, reason = CgroupTree(CGROUP_FS, Path("/proc/self")).parent(choice)
    if parent is not None:
        return Enforcement("cgroup", reason, parent)
    return Enforcement("sampled", reason)


def start_guard(*, pid: int, pidfd: int, memory_bytes: int, max_processes: int) -> Guard:
    """Watch the sandbox whose PID 1 is ``pid`` (before it is let go), by the enforcement
    in force. Raises OSError when a cgroup cannot be made for it."""
    enforcement = memory_enforcement()
    if enforcement.cgroup_parent is not None:
        return CgroupGuard.create(
            enforcement.cgroup_parent,
            pid=pid,
            memory_bytes=memory_bytes,
            max_processes=max_processes,
        )
    return SampledGuard.start(pid=pid, pidfd=pidfd, memory_bytes=memory_bytes)


# -- cgroup v2 ---------------------------------------------------------------------------------


class CgroupTree:
    """Finds (and prepares, once) the directory per-sandbox cgroups are made in.

    ``root`` is the cgroup v2 mount (``/sys/fs/cgroup``) and ``proc_self`` the process's
    ``/proc/self``; tests point both at a fake tree.
    """

    CONTROLLERS = ("memory", "pids")

    def __init__(self, root: Path, proc_self: Path) -> None:
        self.root = root
        self.proc_self = proc_self

    def parent(self, choice: str) -> tuple[Path | None, str]:
        """(The parent cgroup, or None, and why) for ``off``, ``auto`` or a directory."""
        if choice == "off":
            return None, "cgroups turned off (CODE_INTERPRETER_CGROUP=off)"
        if not self._unified():
            return None, f"no cgroup v2 hierarchy at {self.root}"
        try:
            if choice == "auto":
                return self._delegated_own(), "delegated"
            return self._configured(Path(choice)), "configured"
        except _NotUsable as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"the cgroup cannot be prepared: {exc}"

    def _unified(self) -> bool:
        """Is ``root`` a cgroup2 mount (not cgroup v1, not a tmpfs of v1 hierarchies)?"""
        try:
            mountinfo = (self.proc_self / "mountinfo").read_text()
        except OSError:
            return False
        for line in mountinfo.splitlines():
            before, _, after = line.partition(" - ")
            fields = before.split()
            if len(fields) > 4 and fields[4] == str(self.root) and after.split()[:1] == ["cgroup2"]:
                return True
        return False

    def _delegated_own(self) -> Path:
        """Our own cgroup, when it is ours to manage: the root of a cgroup namespace of our own
        (a container's), which is not the host's root. Our processes move to a leaf
        ``service``; sandboxes go under ``sandboxes``. Anywhere else (a host, a systemd unit)
        the cgroup is not ours to change unless configured."""
        groups = (self.proc_self / "cgroup").read_text().splitlines()
        if "0::/" not in groups:
            raise _NotUsable(
                "our cgroup is not the root of a cgroup namespace of our own; set "
                "CODE_INTERPRETER_CGROUP to a cgroup delegated to us to use one"
            )
        own = self.root
        if not (own / "memory.max").exists():  # the host's own root: never ours
            raise _NotUsable(f"{own} is the host's root cgroup")
        self._check_usable(own)
        if not self._enabled(own):
            # A cgroup with processes cannot hand controllers to children (cgroup v2's "no
            # internal processes" rule): move ours into a leaf first.
            service = own / "service"
            service.mkdir(exist_ok=True)
            for pid in (own / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    _write(service / "cgroup.procs", pid)
            self._enable(own)
        sandboxes = own / "sandboxes"
        sandboxes.mkdir(exist_ok=True)
        self._enable(sandboxes)
        return sandboxes

    def _configured(self, path: Path) -> Path:
        if not path.is_dir():
            raise _NotUsable(f"{path} is not a directory")
        self._check_usable(path)
        if not self._enabled(path):
            self._enable(path)
        return path

    def _check_usable(self, path: Path) -> None:
        controllers = (path / "cgroup.controllers").read_text().split()
        missing = [name for name in self.CONTROLLERS if name not in controllers]
        if missing:
            raise _NotUsable(f"{path} lacks the {', '.join(missing)} controller(s)")
        if not os.access(path / "cgroup.subtree_control", os.W_OK) or not os.access(path, os.W_OK):
            raise _NotUsable(f"{path} is not delegated to us (not writable)")

    def _enabled(self, path: Path) -> bool:
        enabled = (path / "cgroup.subtree_control").read_text().split()
        return all(name in enabled for name in self.CONTROLLERS)

    def _enable(self, path: Path) -> None:
        _write(path / "cgroup.subtree_control", " ".join(f"+{c}" for c in self.CONTROLLERS))


class _NotUsable(Exception):
    pass


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class CgroupGuard:
    """A sandbox's own cgroup: the kernel enforces, this reads what happened and removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(
        cls, parent: Path, *, pid: int, memory_bytes: int, max_processes: int
    ) -> CgroupGuard:
        path = parent / f"sandbox-{pid}-{secrets.token_hex(4)}"
        path.mkdir()
        guard = cls(path)
        try:
            _write(path / "memory.max", str(memory_bytes))
            _write(path / "memory.swap.max", "0")
            _write(path / "memory.oom.group", "1")  # the whole tree goes, not one victim
            _write(path / "pids.max", str(max_processes))
            _write(path / "cgroup.procs", str(pid))  # before it runs: its children follow
        except BaseException:
            guard.stop()
            raise
        return guard

    @property
    def exceeded(self) -> bool:
        try:
            events = (self.path / "memory.events").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in events.splitlines() if line.count(" ") == 1)
        return int(counts.get("oom_kill", 0)) > 0 or int(counts.get("oom_group_kill", 0)) > 0

    def stop(self) -> None:
        """Remove the cgroup once its processes are gone (the kernel may take a moment)."""
        for _ in range(100):
            try:
                self.path.rmdir()
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    logger.warning("could not remove the sandbox's cgroup %s: %s", self.path, exc)
                    return
                time.sleep(0.01)
            else:
                return


# -- sampled -----------------------------------------------------------------------------------

_RSS_ANON = re.compile(rb"RssAnon:\s+(\d+) kB")
_PSS_ANON = re.compile(rb"Pss_Anon:\s+(\d+) kB")
_SHMEM = re.compile(rb"\nShmem:\s+(\d+) kB")


@lru_cache(maxsize=1)
def _shmem_device() -> tuple[int, bytes]:
    """The device of the kernel's internal shmem mount, which holds memfd files and shared
    anonymous mappings (``00:01`` in /proc/PID/maps), found from a memfd of our own."""
    fd = os.memfd_create("sandbox-probe", os.MFD_CLOEXEC)
    try:
        device = os.fstat(fd).st_dev
    finally:
        os.close(fd)
    return device, f"{os.major(device):02x}:{os.minor(device):02x}".encode()


def _host_shmem() -> int:
    match = _SHMEM.search(Path("/proc/meminfo").read_bytes())
    return int(match[1]) * KiB if match else 0


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:  # the process is gone, or going
        return None


class SampledGuard:
    """Samples a sandbox's tree and kills it past the limit.

    What it counts, through the sandbox's own ``/proc`` (so exactly its processes):

    * every process's resident private memory (``RssAnon``), an upper bound: pages shared after
      fork() count once per process;
    * the private ``/tmp`` and ``/dev/shm`` (tmpfs) in use, data and files;
    * memfd files and shared anonymous mappings, found by their descriptors and mappings: their
      whole allocated size, mapped or not, once each. They are looked up every ``DEEP_SCAN_S``
      and whenever the host's shared memory grew by ``SHMEM_TRIGGER_BYTES``; until then that
      growth counts against the sandbox, so nothing grows unseen between look-ups.

    When that bound goes over the limit, the tree is frozen (SIGSTOP to each of its processes)
    and the exact figure decides: proportional private memory (``Pss_Anon`` from smaps_rollup, so
    pages shared after fork() count once; the costly part, read largest first and only until the
    limit is proven crossed) plus tmpfs plus the objects looked up again. Frozen, the tree cannot
    grow while it is measured (tens of milliseconds for large processes, in which a busy tree
    could otherwise fault in more than the margin); under the limit it goes on (SIGCONT), over it
    is killed.
    The next sample comes before the headroom left could be used up at ``ASSUMED_GROWTH_BYTES_S``
    (or the fastest growth seen), and at least every ``CODE_INTERPRETER_MEMORY_POLL_S``.
    """

    def __init__(self, pid: int, pidfd: int, memory_bytes: int) -> None:
        self.limit = memory_bytes
        self.pid = pid
        self.root = f"/proc/{pid}/root"
        self.proc = f"{self.root}/proc"
        self.max_interval = float(setting("MEMORY_POLL_S", 0.05))
        self.due = time.monotonic() + SETUP_POLL_S
        self.peak_bytes = 0  # the largest figure the supervisor acted on (an upper bound)
        self._exceeded = False
        self._mounted = False
        self._pidfd = os.dup(pidfd)  # ours: the owner's may be closed and its number reused
        self._lock = threading.Lock()
        # memfd and shared-anonymous bytes at the last look-up; a new sandbox holds none, and
        # any it makes show in the host's shared memory before the first look-up is due.
        self._objects = 0
        self._objects_at = time.monotonic()
        self._shmem_base = _host_shmem()
        # (when, resident memory per process, shared memory) at the previous sample
        self._last: tuple[float, dict[str, int], int] | None = None
        self._rate = 0.0  # recent growth, bytes per second

    @classmethod
    def start(cls, *, pid: int, pidfd: int, memory_bytes: int) -> SampledGuard:
        guard = cls(pid, pidfd, memory_bytes)
        _supervisor.add(guard)
        return guard

    @property
    def exceeded(self) -> bool:
        return self._exceeded

    def stop(self) -> None:
        _supervisor.remove(self)
        with self._lock:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1

    def sample(self, now: float) -> None:
        """Measure once, kill if over, and schedule the next sample."""
        with self._lock:
            if self._pidfd < 0 or self._exceeded:
                self.due = float("inf")
                return
            if not self._sandbox_visible():  # still being set up: no code runs yet
                self.due = now + SETUP_POLL_S
                return
            used = self._measure(now)
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.limit:
                self._exceeded = True
                self.due = float("inf")
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                return
            rate = max(float(ASSUMED_GROWTH_BYTES_S), self._rate)
            headroom = self.limit - used
            self.due = now + min(self.max_interval, max(MIN_INTERVAL_S, headroom / rate))

    def _sandbox_visible(self) -> bool:
        """Has the sandbox its own /proc yet? Until it does, /proc/PID/root is the host's."""
        if not self._mounted:
            with contextlib.suppress(OSError):
                self._mounted = os.stat(self.proc).st_dev != os.stat("/proc").st_dev
        return self._mounted

    def _measure(self, now: float) -> int:
        pids = self._pids()
        growth = max(0, _host_shmem() - self._shmem_base)
        if growth >= SHMEM_TRIGGER_BYTES or now - self._objects_at >= DEEP_SCAN_S:
            self._look_up_objects(pids, now)
            growth = 0
        tmpfs = self._tmpfs()
        resident = self._resident(pids)
        shared = tmpfs + self._objects + growth
        bound = sum(resident.values()) + shared
        self._rate = self._growth_rate(now, resident, shared)
        if bound <= self.limit:
            return bound
        used = bound
        frozen = _freeze(self.pid)
        try:
            pids = self._pids()
            self._look_up_objects(pids, now)
            used = self._exact(self._resident(pids), self._tmpfs() + self._objects)
        finally:
            # Over the limit, the kill that follows takes the stopped processes too.
            _release(frozen, resume=used <= self.limit)
        return used

    def _growth_rate(self, now: float, resident: dict[str, int], shared: int) -> float:
        """Bytes per second the tree grew since the last sample: what its processes faulted in
        and its shared memory gained. A new process does not count: after fork() it shares its
        parent's pages until it writes them."""
        last, self._last = self._last, (now, resident, shared)
        if last is None or now <= last[0]:
            return 0.0
        then, before, shared_before = last
        grown = max(0, shared - shared_before)
        for pid, size in resident.items():
            grown += max(0, size - before.get(pid, size))
        return grown / (now - then)

    def _exact(self, resident: dict[str, int], shared: int) -> int:
        total = shared
        for pid in sorted(resident, key=resident.__getitem__, reverse=True):
            rollup = _read(f"{self.proc}/{pid}/smaps_rollup")
            match = _PSS_ANON.search(rollup) if rollup else None
            if match:
                total += int(match[1]) * KiB
            if total > self.limit:
                break  # proven over: the rest can only add
        return total

    def _pids(self) -> list[str]:
        try:
            return [name for name in os.listdir(self.proc) if name.isdigit()]
        except OSError:  # PID 1 is gone, and with it every process of the sandbox
            return []

    def _resident(self, pids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for pid in pids:
            status = _read(f"{self.proc}/{pid}/status")
            match = _RSS_ANON.search(status) if status else None
            if match:
                found[pid] = int(match[1]) * KiB
        return found

    def _tmpfs(self) -> int:
        total = 0
        for path in (f"{self.root}/tmp", f"{self.root}/dev/shm"):  # noqa: S108 - its tmpfs
            try:
                info = os.statvfs(path)
            except OSError:
                continue
            total += (info.f_blocks - info.f_bfree) * info.f_frsize
            total += (info.f_files - info.f_ffree) * INODE_BYTES
        return total

    def _look_up_objects(self, pids: list[str], now: float) -> None:
        """memfd files and shared anonymous mappings: their allocated size, once each, whether
        a process holds them by a descriptor, a mapping, or both."""
        self._shmem_base = _host_shmem()
        device, device_text = _shmem_device()
        sizes: dict[int, int] = {}
        for pid in pids:
            base = f"{self.proc}/{pid}"
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"{base}/fd"):
                    with contextlib.suppress(OSError):
                        info = os.stat(f"{base}/fd/{fd}")
                        if info.st_dev == device:
                            sizes[info.st_ino] = info.st_blocks * 512
            maps = _read(f"{base}/maps") or b""
            for line in maps.splitlines():
                fields = line.split(maxsplit=5)
                if len(fields) < 5 or fields[3] != device_text or int(fields[4]) in sizes:
                    continue
                span = fields[0].decode()
                try:  # the object's whole size (root may look; see docs/security.md)
                    sizes[int(fields[4])] = os.stat(f"{base}/map_files/{span}").st_blocks * 512
                except OSError:  # without that privilege: what is mapped, at most
                    start, end = (int(part, 16) for part in span.split("-"))
                    sizes[int(fields[4])] = end - start
        self._objects = sum(sizes.values())
        self._objects_at = now


def _freeze(pid: int) -> list[int]:
    """Stop every process of the sandbox whose PID 1 is ``pid`` (host pid), and return pidfds of
    the stopped ones. Processes are found by their pid namespace on the host's /proc (a fork
    during the scan is caught by the next pass), and signalled through a pidfd opened before
    their namespace is checked, so a pid reused meanwhile by a host process is never touched."""
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:  # PID 1 is gone, and the whole tree with it
        return []
    stopped: dict[int, int] = {}
    for _ in range(4):
        new = 0
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in stopped:
                continue
            try:
                pidfd = os.pidfd_open(int(name))
            except OSError:
                continue
            try:
                if os.readlink(f"/proc/{name}/ns/pid") != namespace:
                    os.close(pidfd)
                    continue
                signal.pidfd_send_signal(pidfd, signal.SIGSTOP)
            except OSError:
                os.close(pidfd)
                continue
            stopped[int(name)] = pidfd
            new += 1
        if not new:
            break
    return list(stopped.values())


def _release(pidfds: list[int], *, resume: bool) -> None:
    for pidfd in pidfds:
        if resume:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGCONT)
        os.close(pidfd)


class _Supervisor:
    """One thread per process samples every watched sandbox when its next sample is due, and
    sleeps while there is none."""

    def __init__(self) -> None:
        self._guards: list[SampledGuard] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, guard: SampledGuard) -> None:
        with self._lock:
            self._guards.append(guard)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-memory", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def remove(self, guard: SampledGuard) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._guards.remove(guard)

    def after_fork(self) -> None:
        self._guards, self._lock, self._thread = [], threading.Lock(), None
        self._wake = threading.Event()

    def _run(self) -> None:
        while True:
            with self._lock:
                guards = list(self._guards)
            if not guards:
                self._wake.wait()
                self._wake.clear()
                continue
            now = time.monotonic()
            for guard in guards:
                if guard.due <= now:
                    guard.sample(now)
            due = min(guard.due for guard in guards)
            if due == float("inf"):  # every guard is done: wait for a new one or a removal
                self._wake.wait(1.0)
                self._wake.clear()
            elif (wait := due - time.monotonic()) > 0:
                self._wake.wait(wait)
                self._wake.clear()


_supervisor = _Supervisor()
os.register_at_fork(after_in_child=_supervisor.after_fork)
