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
  than the limit. See ``SampledGuard`` (sandbox/sampling.py) for what is counted and how often.

A guard watches a sandbox from the moment its PID 1 is known until its owner stops the guard,
whatever the sandbox's lifetime: one execution today, a warm sandbox kept between executions.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from code_interpreter.sandbox.command import setting
from code_interpreter.sandbox.sampling import SETUP_POLL_S as SETUP_POLL_S
from code_interpreter.sandbox.sampling import SampledGuard as SampledGuard
from code_interpreter.sandbox.sampling import _freeze as _freeze
from code_interpreter.sandbox.sampling import _release as _release

logger = logging.getLogger(__name__)
MiB = 1024**2
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
