"""How much memory a sandbox holds, measured by the tests independently of the supervisor.

Run as a separate process (``MemoryProbe``), so its sampling neither competes with the service
for the GIL nor shares code with ``code_interpreter.sandbox.memory``. Where the supervisor looks
through the sandbox's own /proc, this scans the host's /proc for the processes running as the
session's host uid (root mode: unique per live session) and adds up, for them:

* ``Pss_Anon + Pss_Shmem`` from smaps_rollup (private and mapped shared memory, once each);
* memfd and other internal shared-memory files they hold open (allocated size, once each);
* their private ``/tmp`` and ``/dev/shm`` (tmpfs) in use, once per mount.

It also records the host's ``MemAvailable`` drop, a secondary figure: the machine is shared,
so other work moves it (the tests allow ``HOST_NOISE_BYTES`` on top).

    python memory_probe.py UID   # samples until SIGTERM, then prints "peak host_drop samples"
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
# Other engineers' tests share this machine: the host-wide figure may move by this much.
HOST_NOISE_BYTES = 384 * 1024**2
_UID = re.compile(rb"\nUid:\s+(\d+)")
_PSS = re.compile(rb"Pss_(?:Anon|Shmem):\s+(\d+) kB")
_AVAILABLE = re.compile(rb"MemAvailable:\s+(\d+) kB")


def host_available() -> int:
    match = _AVAILABLE.search(Path("/proc/meminfo").read_bytes())
    return int(match[1]) * KiB if match else 0


def tree_bytes(uid: int) -> int:
    memfd_device = _memfd_device()
    total = 0
    objects: dict[int, int] = {}
    tmpfs: dict[tuple[int, str], int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_bytes()
            match = _UID.search(status)
            if match is None or int(match[1]) != uid:
                continue
            rollup = Path(entry.path, "smaps_rollup").read_bytes()
            total += sum(int(kb) for kb in _PSS.findall(rollup)) * KiB
            for fd in os.listdir(f"{entry.path}/fd"):
                try:
                    info = os.stat(f"{entry.path}/fd/{fd}")
                except OSError:
                    continue
                if info.st_dev == memfd_device:
                    objects[info.st_ino] = info.st_blocks * 512
            for mount in ("tmp", "dev/shm"):
                fs = os.statvfs(f"{entry.path}/root/{mount}")
                tmpfs[(fs.f_fsid, mount)] = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        except OSError:  # gone meanwhile
            continue
    return total + sum(objects.values()) + sum(tmpfs.values())


def _memfd_device() -> int:
    fd = os.memfd_create("probe")
    try:
        return os.fstat(fd).st_dev
    finally:
        os.close(fd)


@dataclass
class Measured:
    peak_bytes: int
    host_drop_bytes: int
    samples: int


class MemoryProbe:
    """Samples the tree of ``uid`` from another process until ``stop()``."""

    def __init__(self, uid: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(uid)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "sampling"

    def stop(self) -> Measured:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        peak, drop, samples = (int(value) for value in out.split())
        return Measured(peak, drop, samples)


def main(uid: int) -> None:
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    baseline = host_available()
    peak = lowest = 0
    lowest = baseline
    samples = 0
    print("sampling", flush=True)
    while not stopping:
        peak = max(peak, tree_bytes(uid))
        lowest = min(lowest, host_available())
        samples += 1
        time.sleep(0.001)
    print(peak, max(0, baseline - lowest), samples, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
