"""Memory per execution: the cgroup v2 decisions against a fake cgroupfs (no development host has
a delegated one, and we never change the real one), and the sampling supervisor for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from code_interpreter import sandbox
from code_interpreter.sandbox import Limits, sampling
from code_interpreter.sandbox import memory as sandbox_memory
from code_interpreter.sandbox.memory import CgroupGuard, CgroupTree, SampledGuard

MiB = 1024**2


def fake_host(
    tmp_path: Path,
    *,
    fstype: str = "cgroup2",
    own: str = "/",
    namespace_root: bool = True,
    controllers: str = "cpuset cpu io memory hugetlb pids rdma misc",
    subtree: str = "",
    procs: str = "7\n",
) -> CgroupTree:
    """A cgroupfs as a container with its own cgroup namespace sees it, as plain files."""
    root = tmp_path / "cgroup"
    own_dir = root / own.lstrip("/")
    own_dir.mkdir(parents=True)
    (own_dir / "cgroup.controllers").write_text(controllers + "\n")
    (own_dir / "cgroup.subtree_control").write_text(subtree)
    (own_dir / "cgroup.procs").write_text(procs)
    if namespace_root:
        (own_dir / "memory.max").write_text("max\n")  # only non-root cgroups have it
    proc_self = tmp_path / "proc-self"
    proc_self.mkdir()
    (proc_self / "mountinfo").write_text(
        "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n"
        f"30 22 0:26 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - {fstype} cgroup2 rw\n"
    )
    (proc_self / "cgroup").write_text(f"0::{own}\n")
    return CgroupTree(root, proc_self)


def tree_files(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# -- deciding ----------------------------------------------------------------------------------


def test_without_cgroup_v2_nothing_is_touched(tmp_path: Path) -> None:
    tree = fake_host(tmp_path, fstype="tmpfs")  # cgroup v1 under a tmpfs, as on this host
    before = tree_files(tree.root)
    parent, reason = tree.parent("auto")
    assert parent is None
    assert reason == f"no cgroup v2 hierarchy at {tree.root}"
    assert tree_files(tree.root) == before
    assert not (tree.root / "sandboxes").exists()
    assert not (tree.root / "service").exists()


def test_off_means_off(tmp_path: Path) -> None:
    tree = fake_host(tmp_path)
    assert tree.parent("off") == (None, "cgroups turned off (CODE_INTERPRETER_CGROUP=off)")
    assert not (tree.root / "sandboxes").exists()


def test_a_delegated_cgroup_is_prepared_once(tmp_path: Path) -> None:
    tree = fake_host(tmp_path, procs="7\n")  # a container's own cgroup namespace
    parent, reason = tree.parent("auto")
    assert (parent, reason) == (tree.root / "sandboxes", "delegated")
    # Our processes went to a leaf, so the root may hand memory and pids to its children.
    assert (tree.root / "service" / "cgroup.procs").read_text() == "7"
    assert (tree.root / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tree.root / "sandboxes" / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_a_cgroup_with_the_controllers_already_handed_down_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    tree = fake_host(tmp_path, subtree="cpu memory pids\n")
    parent, _ = tree.parent("auto")
    assert parent == tree.root / "sandboxes"
    assert not (tree.root / "service").exists()
    assert (tree.root / "cgroup.subtree_control").read_text() == "cpu memory pids\n"


@pytest.mark.parametrize(
    ("own", "namespace_root", "why"),
    [
        ("/user.slice/user-0.slice/session-4.scope", False, "not the root of a cgroup namespace"),
        ("/system.slice/hestami.service", False, "not the root of a cgroup namespace"),
        ("/", False, "the host's root cgroup"),
    ],
)
def test_a_hosts_cgroups_are_never_taken(
    tmp_path: Path, own: str, namespace_root: bool, why: str
) -> None:
    """On a host (a login session, a systemd unit, the root) auto leaves cgroups alone."""
    tree = fake_host(tmp_path, own=own, namespace_root=namespace_root)
    before = tree_files(tree.root)
    parent, reason = tree.parent("auto")
    assert parent is None
    assert why in reason
    assert tree_files(tree.root) == before


def test_a_cgroup_without_the_memory_controller_is_not_used(tmp_path: Path) -> None:
    tree = fake_host(tmp_path, controllers="cpu io pids")
    before = tree_files(tree.root)
    parent, reason = tree.parent("auto")
    assert parent is None
    assert reason == f"{tree.root} lacks the memory controller(s)"
    assert tree_files(tree.root) == before


def test_a_configured_directory(tmp_path: Path) -> None:
    tree = fake_host(tmp_path, own="/system.slice/hestami.service", procs="")
    delegated = tree.root / "hestami"
    delegated.mkdir()
    (delegated / "cgroup.controllers").write_text("memory pids\n")
    (delegated / "cgroup.subtree_control").write_text("")
    assert tree.parent(str(delegated)) == (delegated, "configured")
    assert (delegated / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert tree.parent(str(tmp_path / "missing"))[0] is None


# -- a sandbox's own cgroup ----------------------------------------------------------------------


def test_each_sandbox_gets_its_own_cgroup_with_the_limits(tmp_path: Path) -> None:
    parent = tmp_path / "sandboxes"
    parent.mkdir()
    guard = CgroupGuard.create(parent, pid=4242, memory_bytes=512 * MiB, max_processes=64)
    assert guard.path.parent == parent
    assert guard.path.name.startswith("sandbox-4242-")
    assert tree_files(guard.path) == {
        "memory.max": str(512 * MiB),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "pids.max": "64",
        "cgroup.procs": "4242",
    }
    assert not guard.exceeded
    (guard.path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    assert guard.exceeded
    for entry in guard.path.iterdir():  # the kernel's files vanish with the cgroup
        entry.unlink()
    guard.stop()
    assert not guard.path.exists()


def test_the_enforcement_in_force_starts_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enforcement = sandbox_memory.Enforcement("cgroup", "delegated", tmp_path)
    monkeypatch.setattr(sandbox_memory, "memory_enforcement", lambda: enforcement)
    guard = sandbox_memory.start_guard(pid=99, pidfd=-1, memory_bytes=MiB, max_processes=8)
    assert isinstance(guard, CgroupGuard)
    assert (guard.path / "memory.max").read_text() == str(MiB)
    assert enforcement.describe() == f"memory per execution: cgroup v2 at {tmp_path}"


def test_this_host_samples_and_says_so() -> None:
    enforcement = sandbox.memory_enforcement()
    ready, message = sandbox.sandbox_status()
    assert ready
    assert enforcement.describe() in message
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():  # cgroup v1 here
        assert enforcement.kind == "sampled"


# -- sampling ----------------------------------------------------------------------------------


def test_the_host_is_never_counted_as_a_sandbox() -> None:
    """Until a sandbox has its own /proc, /proc/PID/root is the host's: nothing is counted,
    whatever the limit."""
    pidfd = os.pidfd_open(os.getpid())
    try:
        guard = SampledGuard(os.getpid(), pidfd, memory_bytes=1)
        now = time.monotonic()
        guard.sample(now)
        assert not guard.exceeded
        assert guard.peak_bytes == 0
        assert guard.due == now + sandbox_memory.SETUP_POLL_S
        guard.stop()
    finally:
        os.close(pidfd)


def meminfo_shmem() -> int:
    [line] = [line for line in Path("/proc/meminfo").read_text().splitlines() if "Shmem:" in line]
    return int(line.split()[1]) * 1024


def test_host_shared_memory_is_meminfos_shmem() -> None:
    """sysinfo(2) gives the figure /proc/meminfo names Shmem (read between two of its reads:
    other processes may change it meanwhile)."""
    for _ in range(20):
        before, ours, after = meminfo_shmem(), sampling._host_shmem(), meminfo_shmem()
        if before == after:
            break
    assert min(before, after) <= ours <= max(before, after)


def test_resident_memory_is_the_kernels_rss_anon() -> None:
    """The figure read from statm is the one /proc/PID/status names RssAnon."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(24 << 20); print(); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # allocated
        pidfd = os.pidfd_open(child.pid)
        try:
            guard = SampledGuard(child.pid, pidfd, memory_bytes=1)  # its root is ours: host /proc
            try:
                resident = guard._resident([str(child.pid)])[str(child.pid)]
            finally:
                guard.stop()
        finally:
            os.close(pidfd)
        status = Path(f"/proc/{child.pid}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("RssAnon:")]
        assert resident == int(line.split()[1]) * 1024
        assert resident > 24 * MiB
    finally:
        child.kill()
        child.wait()


@pytest.mark.usefixtures("sandbox_ready")
def test_tmp_counts_as_memory(tmp_path: Path) -> None:
    code = (
        "with open('/tmp/fill', 'wb') as f:\n"
        "    for _ in range(100):\n"
        "        f.write(b'x' * 2**20)\n"
    )
    result = sandbox.execute(
        lang="py", code=code, workdir=tmp_path, limits=Limits(memory_bytes=64 * MiB)
    )
    assert result.status == "oom", result.stderr
    assert "Out of memory" in result.stderr


@pytest.mark.usefixtures("sandbox_ready")
def test_empty_files_in_tmp_count_too(tmp_path: Path) -> None:
    code = "for n in range(200_000):\n    open(f'/tmp/{n}', 'w').close()\nprint('made')"
    result = sandbox.execute(
        lang="py", code=code, workdir=tmp_path, limits=Limits(memory_bytes=96 * MiB)
    )
    assert result.status == "oom", result.stderr


@pytest.mark.usefixtures("sandbox_ready")
def test_pages_shared_after_fork_count_once(tmp_path: Path) -> None:
    """Four processes sharing 200 MB after fork() hold 200 MB, not 800: no false kill."""
    code = (
        "import os, time\n"
        "block = bytearray(200 * 10**6)\n"
        "children = []\n"
        "for _ in range(3):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(1.0)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    os.waitpid(pid, 0)\n"
        "print('shared')\n"
    )
    result = sandbox.execute(
        lang="py", code=code, workdir=tmp_path, limits=Limits(memory_bytes=512 * MiB)
    )
    assert (result.status, result.stdout) == ("ok", "shared\n"), result.stderr


@pytest.mark.usefixtures("sandbox_ready")
def test_memory_of_other_processes_adds_up(tmp_path: Path) -> None:
    code = (
        "import os, time\n"
        "for _ in range(4):\n"
        "    if os.fork() == 0:\n"
        "        block = bytearray(40 * 10**6)\n"
        "        time.sleep(5)\n"
        "        os._exit(0)\n"
        "time.sleep(5)\n"
    )
    result = sandbox.execute(
        lang="py", code=code, workdir=tmp_path, limits=Limits(memory_bytes=128 * MiB)
    )
    assert (result.status, result.signal) == ("oom", 9), result.stderr
    assert result.wall_time_s < 4


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def test_freezing_stops_exactly_the_sandboxs_processes_and_resumes_them() -> None:
    """The exact measurement freezes the tree: every process of its PID namespace, none of the
    host's (a process of ours beside it keeps running), and all of them go on afterwards."""
    import subprocess

    sandboxed = subprocess.Popen(  # PID 1 of a new PID namespace, and a child of its own
        ["unshare", "--pid", "--fork", "--kill-child", "bash", "-c", "sleep 30 & wait"]
    )
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        inside: list[int] = []
        while len(inside) < 2 and time.monotonic() < deadline:
            namespace_of = {}
            for name in os.listdir("/proc"):
                if name.isdigit():
                    try:
                        namespace_of[int(name)] = os.readlink(f"/proc/{name}/ns/pid")
                    except OSError:
                        continue
            ours = namespace_of[os.getpid()]
            inside = sorted(pid for pid, ns in namespace_of.items() if ns != ours and pid > 0)
            inside = [pid for pid in inside if _ppid_chain_has(pid, sandboxed.pid)]
            time.sleep(0.02)
        assert len(inside) == 2, inside  # bash (PID 1 inside) and its sleep
        pid1 = next(pid for pid in inside if _ppid(pid) == sandboxed.pid)
        frozen = sandbox_memory._freeze(pid1)
        assert len(frozen) == 2
        assert _settles(inside, "T")  # a signal lands at the process's next return to user mode
        assert _state(bystander.pid) == "S"
        sandbox_memory._release(frozen, resume=True)
        assert _settles(inside, "S")
    finally:
        sandboxed.kill()
        bystander.kill()
        sandboxed.wait()
        bystander.wait()


def _settles(pids: list[int], state: str) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if all(_state(pid) == state for pid in pids):
            return True
        time.sleep(0.005)
    return False


def _ppid(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def _ppid_chain_has(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = _ppid(pid)
    return False
