"""The sampled memory guard (``sandbox.memory``'s "sampled" enforcement): one supervisor thread
per process samples every watched sandbox through its own ``/proc`` and SIGKILLs its PID 1 once
the tree holds more than the limit."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import threading
import time
from functools import lru_cache
from pathlib import Path

from code_interpreter.sandbox.command import setting

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


# -- sampled -----------------------------------------------------------------------------------

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
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


class _Sysinfo(ctypes.Structure):
    """``struct sysinfo`` (sysinfo(2)), padded to its size on every Linux ABI."""

    _fields_ = [
        ("uptime", ctypes.c_long),
        ("loads", ctypes.c_ulong * 3),
        ("totalram", ctypes.c_ulong),
        ("freeram", ctypes.c_ulong),
        ("sharedram", ctypes.c_ulong),
        ("bufferram", ctypes.c_ulong),
        ("totalswap", ctypes.c_ulong),
        ("freeswap", ctypes.c_ulong),
        ("procs", ctypes.c_ushort),
        ("pad", ctypes.c_ushort),
        ("totalhigh", ctypes.c_ulong),
        ("freehigh", ctypes.c_ulong),
        ("mem_unit", ctypes.c_uint),
        ("_f", ctypes.c_char * 20),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _host_shmem() -> int:
    """The host's shared memory: ``Shmem`` of /proc/meminfo, which the kernel fills from the
    same ``sysinfo(2)`` field. The system call costs a microsecond; formatting /proc/meminfo
    costs tens (it runs on every sample and every sandbox start)."""
    info = _Sysinfo()
    if _libc.sysinfo(ctypes.byref(info)) == 0:
        return int(info.sharedram) * max(1, int(info.mem_unit))
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
        """``RssAnon`` per process, from ``statm`` (resident minus file-backed and shmem pages:
        the same counters as in ``status``, at a fraction of the cost of formatting it)."""
        found: dict[str, int] = {}
        for pid in pids:
            statm = _read(f"{self.proc}/{pid}/statm")
            fields = statm.split() if statm else ()
            if len(fields) >= 3:
                found[pid] = (int(fields[1]) - int(fields[2])) * PAGE_BYTES
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
