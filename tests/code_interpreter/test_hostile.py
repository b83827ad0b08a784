"""Hostile code: every attack is contained, reported with the right status, and the next
execution still works. Real bubblewrap, real runtime; short limits for the sandbox's own cases,
the defaults for what one execution and one caller can take through the service (measured from
another process: memory_probe.py), and an upload larger than the service takes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from pytest_django import Settings

from code_interpreter import sandbox
from code_interpreter.models import CodeSession
from code_interpreter.sandbox import ExecutionResult, Limits, warm
from code_interpreter.sandbox.command import Config, load_config
from tests.chat.conftest import activate, jwt_for
from tests.chat.test_body_limits import send_chunked
from tests.code_interpreter.conftest import BASE, AppServer
from tests.code_interpreter.memory_probe import HOST_NOISE_BYTES, Measured, MemoryProbe
from tests.factories import make_legacy_user
from tests.librechat_double.server import LibreChatDouble
from users.models import User

# The folder conftest fails these at once, with the fix, when the sandbox is not installed.
pytestmark = pytest.mark.usefixtures("sandbox_ready")

MiB = 1024**2
TIGHT = Limits(
    timeout_s=5.0,
    cpu_s=5,
    memory_bytes=128 * MiB,
    max_processes=32,
    max_file_bytes=16 * MiB,
    max_output_bytes=64 * 1024,
    disk_quota_bytes=8 * MiB,
)


# Root mode: the host uid each test's session runs as, as services would allocate it.
_UIDS: dict[Path, int | None] = {}
_WARM: dict[Path, bool] = {}
ZYGOTE_MODULE = "code_interpreter.runtime.zygote"


def session_uid() -> int | None:
    uids = sandbox.session_uids()
    return None if uids is None else uids[secrets.randbelow(len(uids))]


@pytest.fixture(params=["cold", "warm"])
def workdir(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A session directory; its executions run in a fresh sandbox each (``cold``), or in the
    session's warm sandbox (``warm``), kept between them, as ``/exec`` does for a session."""
    session = tmp_path / "session"
    session.mkdir()
    _UIDS[session] = uid = session_uid()
    _WARM[session] = request.param == "warm"
    warm.pool.clear()
    yield session
    # Whatever the attack did, nothing of it is left running and the service still serves.
    if _WARM[session]:  # between executions a warm sandbox holds its zygote family, no more
        deadline = time.monotonic() + 5  # a served run the zygote is still reaping may linger
        while others := [p for p in _sandbox_processes(uid) if ZYGOTE_MODULE not in _cmdline(p)]:
            assert time.monotonic() < deadline, [_cmdline(pid) for pid in others]
            time.sleep(0.02)
        warm.pool.clear()
    left = _sandbox_processes(uid)
    assert left == [], [Path(f"/proc/{pid}/status").read_text()[:300] for pid in left]
    fresh = tmp_path / "next-session"
    fresh.mkdir()
    after = sandbox.execute(
        lang="py", code="print('still serving')", workdir=fresh, limits=TIGHT, uid=session_uid()
    )
    assert (after.status, after.stdout) == ("ok", "still serving\n"), after.stderr


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _sandbox_processes(uid: int | None) -> list[int]:
    """Host processes running as the session's sandbox uid (root mode only)."""
    if uid is None:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if str(uid) in uid_line.split()[1:]:
            found.append(int(entry.name))
    return found


def run(
    workdir: Path, code: str, lang: str = "py", limits: Limits = TIGHT, **kwargs: object
) -> ExecutionResult:
    uid = _UIDS.get(workdir)
    if _WARM.get(workdir):
        return warm.execute(
            caller="hostile",
            session_id=workdir.name,
            lang=lang,
            code=code,
            workdir=workdir,
            limits=limits,
            uid=uid,
            **kwargs,  # type: ignore[arg-type]
        )
    return sandbox.execute(lang=lang, code=code, workdir=workdir, limits=limits, uid=uid, **kwargs)  # type: ignore[arg-type]


# -- network -----------------------------------------------------------------------------------


def test_no_network_not_even_the_hosts_loopback(workdir: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    listener = threading.Thread(target=accept)
    listener.start()
    code = f"""
import socket
print(sorted(name for _, name in socket.if_nameindex()))
for target in [("127.0.0.1", {port}), ("::1", {port})]:
    try:
        socket.create_connection(target, timeout=2)
        print("connected", target)
    except OSError as exc:
        print("blocked", type(exc).__name__)
try:
    socket.getaddrinfo("example.com", 443)
    print("resolved")
except OSError:
    print("no dns")
"""
    result = run(workdir, code)
    listener.join()
    server.close()
    assert result.status == "ok", result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "['lo']"
    assert all(line.startswith("blocked") for line in lines[1:3]), lines
    assert lines[3] == "no dns"
    assert accepted == []


# -- reading host files ------------------------------------------------------------------------


def test_host_files_are_not_there(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_MARKER", "host-environment-value")
    other = tmp_path / "other-session"
    other.mkdir()
    (other / "private.txt").write_text("other user's secret")
    database = str(django_settings.DATABASES["default"].get("NAME") or "")
    targets = [
        "/etc/shadow",
        "/etc/passwd",
        "/root/.bashrc",
        str(Path(django_settings.BASE_DIR) / "hestami_ai" / "settings.py"),
        str(Path(django_settings.BASE_DIR) / "var" / "dev-secrets.env"),
        database,
        str(other / "private.txt"),
        "/mnt/data/../other-session/private.txt",
        "/proc/1/root/etc/shadow",
        "/proc/1/environ",
        "/usr/local/bin/docker",
    ]
    code = """
import sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as handle:
            print("READ", path, handle.read(200))
    except OSError as exc:
        print("denied", path, type(exc).__name__)
"""
    result = run(workdir, code, args=[t for t in targets if t])
    assert result.status == "ok", result.stderr
    readable = [line for line in result.stdout.splitlines() if line.startswith("READ")]
    # Only the sandbox's own synthetic /etc/passwd can be read, and it names no host user.
    # /proc/1 is the sandbox's own init: readable only where it runs as the same uid.
    assert {line.split()[1] for line in readable} - {"/proc/1/environ"} == {"/etc/passwd"}
    assert "sandbox:x:65534" in readable[0]
    assert "root:x:0:0:root:/root" not in readable[0]
    assert "other user's secret" not in result.stdout
    assert "host-environment-value" not in result.stdout


def test_only_the_runtime_and_usr_are_visible(workdir: Path) -> None:
    result = run(workdir, "ls /; echo --; ls /opt /mnt; ls /usr/local | wc -l", lang="bash")
    assert result.status == "ok", result.stderr
    root, rest = result.stdout.split("--\n")
    expected = {"bin", "dev", "etc", "lib", "mnt", "opt", "proc", "run", "sbin", "tmp", "usr"}
    assert expected <= set(root.split()) <= expected | {"lib32", "lib64", "libx32"}
    assert rest.split() == ["/mnt:", "data", "/opt:", "runtime", "0"]  # /usr/local is empty


# -- process and memory bombs ------------------------------------------------------------------


def test_fork_bomb(workdir: Path) -> None:
    started = time.monotonic()
    code = ":(){ :|:& };:; sleep 2; echo survived"
    result = run(workdir, code, lang="bash", limits=Limits(timeout_s=4.0, max_processes=32))
    assert time.monotonic() - started < 10
    assert result.stdout == "survived\n" or result.status in ("timeout", "output_limit")
    assert "Resource temporarily unavailable" in result.stderr


def test_python_fork_bomb_hits_the_process_limit(workdir: Path) -> None:
    code = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except OSError as exc:
    print("limited after", children, type(exc).__name__)
"""
    result = run(workdir, code, limits=Limits(timeout_s=5.0, max_processes=16))
    assert result.status == "ok", result.stderr
    assert result.stdout.startswith("limited after")
    assert int(result.stdout.split()[2]) < 16
    assert result.wall_time_s < 4  # the sleeping children died with the sandbox


def test_memory_bomb_python(workdir: Path) -> None:
    result = run(workdir, "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2**20))")
    assert result.status == "oom", result.stderr
    assert "Out of memory" in result.stderr


def test_memory_bomb_numpy(workdir: Path) -> None:
    result = run(
        workdir, "import numpy as np\nx = np.ones((1 << 30,), dtype=np.float64)\nprint(x.sum())"
    )
    assert result.status == "oom", result.stderr


def test_memory_bomb_node(workdir: Path) -> None:
    code = "const keep = []; while (true) keep.push(new Array(1e6).fill(1.5));"
    result = run(workdir, code, lang="js", limits=Limits(timeout_s=15.0, memory_bytes=256 * MiB))
    assert result.status == "oom", result.stderr
    assert "Out of memory" in result.stderr


def test_memory_is_not_hidden_in_tmpfs(settings: Settings, workdir: Path) -> None:
    settings.CODE_INTERPRETER_TMP_BYTES = 4 * MiB
    settings.CODE_INTERPRETER_SHM_BYTES = 4 * MiB
    code = """for target in /tmp/fill /dev/shm/fill /fill /dev/fill /run/fill; do
  head -c 8M /dev/zero > $target 2>/dev/null
  echo "$target $? $(stat -c %s $target 2>/dev/null || echo 0)"
done"""
    result = run(workdir, code, lang="bash")
    sizes = {line.split()[0]: int(line.split()[2]) for line in result.stdout.splitlines()}
    assert sizes["/tmp/fill"] <= 4 * MiB
    assert sizes["/dev/shm/fill"] <= 4 * MiB
    assert sizes["/fill"] == sizes["/dev/fill"] == sizes["/run/fill"] == 0


# -- disk ----------------------------------------------------------------------------------------


def test_filling_the_disk_with_one_file(workdir: Path) -> None:
    code = "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2**20)"
    result = run(workdir, code)
    assert result.status == "disk_quota", result.stderr
    assert "Disk quota exceeded" in result.stderr
    assert (workdir / "big").stat().st_size <= TIGHT.disk_quota_bytes


def test_filling_the_disk_with_many_files(workdir: Path) -> None:
    code = "i = 0\nwhile True:\n    open(f'part{i}', 'wb').write(b'x' * 2**20)\n    i += 1"
    result = run(
        workdir,
        code,
        limits=Limits(timeout_s=10.0, disk_quota_bytes=8 * MiB, max_file_bytes=4 * MiB),
    )
    assert result.status == "disk_quota", result.stderr
    assert "Disk quota exceeded" in result.stderr


def test_a_full_session_cannot_grow(workdir: Path) -> None:
    (workdir / "existing").write_bytes(b"x" * 8 * MiB)
    result = run(workdir, "echo more > new && echo wrote", lang="bash")
    assert result.status == "disk_quota"
    assert not (workdir / "new").exists() or (workdir / "new").stat().st_size == 0


def test_sparse_files_count_at_their_full_size(workdir: Path) -> None:
    result = run(workdir, "truncate -s 1G sparse", lang="bash")
    assert result.status == "disk_quota", result.stderr


# -- output and time -----------------------------------------------------------------------------


def test_endless_stdout(workdir: Path) -> None:
    result = run(workdir, "while True:\n    print('x' * 100)")
    assert result.status == "output_limit"
    assert result.stdout_truncated
    assert not result.stderr_truncated
    assert len(result.stdout.encode()) == TIGHT.max_output_bytes
    assert "stdout length exceeded" in result.stderr
    assert result.wall_time_s < TIGHT.timeout_s


def test_endless_stderr(workdir: Path) -> None:
    result = run(workdir, "yes error >&2", lang="bash")
    assert result.status == "output_limit"
    assert result.stderr_truncated
    assert "stderr length exceeded" in result.stderr


def test_sleeping_forever(workdir: Path) -> None:
    result = run(
        workdir,
        "import time\nprint('before', flush=True)\ntime.sleep(10**6)",
        limits=Limits(timeout_s=1.0),
    )
    assert (result.status, result.exit_code, result.signal) == ("timeout", None, 9)
    assert result.stdout == "before\n"
    assert "Time limit exceeded" in result.stderr
    assert 1.0 <= result.wall_time_s < 3


def test_closing_its_output_does_not_escape_the_timeout(workdir: Path) -> None:
    result = run(workdir, "exec >&- 2>&-; sleep 1000", lang="bash", limits=Limits(timeout_s=1.0))
    assert result.status == "timeout"
    assert result.wall_time_s < 3


def test_background_processes_die_with_the_execution(workdir: Path) -> None:
    code = "sleep 1000 & disown; (setsid nohup sleep 1001 >/dev/null 2>&1 &); echo started"
    result = run(workdir, code, lang="bash")
    assert (result.status, result.stdout) == ("ok", "started\n")
    assert result.wall_time_s < 3
    # The fixture checks that no process of the sandbox's uid is left.


# -- links and writes ----------------------------------------------------------------------------


def test_symlinks_to_host_paths_do_not_leak(workdir: Path) -> None:
    settings_py = str(Path(django_settings.BASE_DIR) / "hestami_ai" / "settings.py")
    code = f"""ln -s /etc/shadow shadow; ln -s {settings_py} settings.py; ln -s / root
ln /opt/runtime/etc/passwd hardlink 2>/dev/null || echo no-hardlink
echo ok > real.txt"""
    result = run(workdir, code, lang="bash")
    assert result.stdout == "no-hardlink\n"
    assert [output.relative_path for output in sandbox.scan_outputs(workdir)] == ["real.txt"]
    for name in ("shadow", "settings.py", "root/etc/shadow", "root/etc/passwd"):
        with pytest.raises(FileNotFoundError):
            sandbox.open_output(workdir, name)
    shadow_owner = os.stat("/etc/shadow").st_uid
    assert run(workdir, "ls", lang="bash").status == "ok"  # hands the session over again
    assert os.stat("/etc/shadow").st_uid == shadow_owner
    assert os.stat(settings_py).st_uid == os.stat(django_settings.BASE_DIR).st_uid


def test_writing_outside_mnt_data(workdir: Path) -> None:
    code = """targets="/usr/x /opt/runtime/x /etc/x /x /run/code/x /proc/sys/kernel/hostname /dev/x"
for target in $targets; do
  (echo hi > $target) 2>/dev/null && echo "WROTE $target" || echo "refused $target"
done
echo kept > /tmp/x && echo "tmp ok" """
    result = run(workdir, code, lang="bash")
    assert "WROTE" not in result.stdout, result.stdout
    assert result.stdout.count("refused") == 7
    assert "tmp ok" in result.stdout
    again = run(workdir, "cat /tmp/x", lang="bash")
    if _WARM[workdir]:  # /tmp lives as long as the session's warm sandbox, and is its own
        assert again.stdout == "kept\n"
        other = workdir.parent / "other-session"
        other.mkdir()
        _UIDS[other], _WARM[other] = session_uid(), True
        assert run(other, "cat /tmp/x", lang="bash").status == "error"
    else:
        assert again.status == "error"  # /tmp did not persist
    assert not Path("/x").exists()


@pytest.fixture(params=["sandbox-dropuid", "setpriv"])
def uid_drop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Under a root service: the helper built at install, and setpriv where it is not."""
    if request.param == "setpriv":
        monkeypatch.setattr(Config, "has_dropuid", property(lambda self: False))
    elif not load_config().has_dropuid:
        pytest.skip("sandbox-dropuid was not built here")
    return str(request.param)


def test_no_privileges(workdir: Path, uid_drop: str) -> None:
    code = """grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs)' /proc/self/status
su -c id root </dev/null >/dev/null 2>&1 && echo SU || echo no-su
mount -t tmpfs none /mnt >/dev/null 2>&1 && echo MOUNT || echo no-mount"""
    result = run(workdir, code, lang="bash")
    status = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    assert status["Uid"].split()[0] != "0"
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert "no-su" in result.stdout
    assert "no-mount" in result.stdout


def test_no_nested_namespaces_or_risky_kernel_interfaces(workdir: Path) -> None:
    code = r"""
unshare -U true 2>/dev/null && echo USERNS || echo no-userns
unshare -rn true 2>/dev/null && echo NETNS || echo no-netns
python3 - <<'PY'
import ctypes, errno, platform
if platform.machine() == "x86_64":
    libc = ctypes.CDLL(None, use_errno=True)
    # clone(CLONE_PARENT | SIGCHLD): a sibling of the caller, out of its parent's sweep.
    for name, nr, args in [("unshare", 272, (0x10000000,)), ("clone", 56, (0x8011, 0, 0, 0, 0)),
                           ("keyctl", 250, (0, 0, 0, 0, 0)),
                           ("bpf", 321, (0, 0, 0)), ("io_uring_setup", 425, (1, 0)),
                           ("shmget", 29, (0, 1 << 20, 0o1600)), ("msgget", 68, (0, 0o1600))]:
        print(name, libc.syscall(nr, *args), errno.errorcode.get(ctypes.get_errno()))
PY
"""
    result = run(workdir, code, lang="bash")
    lines = result.stdout.splitlines()
    assert lines[:2] == ["no-userns", "no-netns"]
    assert len(lines) == 9, lines
    assert all(line.split()[1] == "-1" for line in lines[2:]), lines


# -- the parent ----------------------------------------------------------------------------------


def test_killing_the_parent(workdir: Path) -> None:
    code = f"""
import os, signal
for pid in (os.getppid(), 1, -1, {os.getpid()}, {os.getppid()}):
    try:
        os.kill(pid, signal.SIGKILL)
        print("sent", pid)
    except OSError as exc:
        print("refused", pid, type(exc).__name__)
print("alive")
"""
    result = run(workdir, code)
    # Its own PID 1 ignores it (or refuses, as root); the host's processes do not exist there.
    assert (result.status, result.stdout.splitlines()[-1]) == ("ok", "alive"), result.stderr
    assert f"refused {os.getpid()} ProcessLookupError" in result.stdout
    assert f"refused {os.getppid()} ProcessLookupError" in result.stdout
    again = run(workdir, "kill -9 $PPID 1; kill -9 -1; echo survived", lang="bash")
    assert (again.status, again.stdout) == ("ok", "survived\n"), again.stderr


@pytest.mark.parametrize("mode", ["cold", "warm"])
def test_a_crashed_service_takes_its_sandboxes_with_it(tmp_path: Path, mode: str) -> None:
    uid = session_uid()
    if uid is None:
        pytest.skip("finds the sandbox by its host uid, which only a root service assigns")
    session = tmp_path / "crash"
    session.mkdir()
    call = (
        "warm.execute(caller='crash', session_id='crash', limits=sandbox.Limits(), "
        if mode == "warm"
        else "sandbox.execute("
    )
    script = (
        "import sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(django_settings.BASE_DIR)!r})\n"
        "from code_interpreter import sandbox\n"
        "from code_interpreter.sandbox import warm\n"
        "code = 'sleep 1000 & sleep 1000'\n"
        f"{call}lang='bash', code=code, workdir=Path({str(session)!r}), uid={uid})\n"
    )
    service = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while len(_sandbox_processes(uid)) < 2:
            assert time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
    finally:
        service.kill()
        service.wait()
    deadline = time.monotonic() + 5
    while _sandbox_processes(uid):
        assert time.monotonic() < deadline, "the sandbox outlived the service"
        time.sleep(0.05)


def test_the_environment_cannot_hijack_the_sandbox_setup(workdir: Path) -> None:
    """Variables passed to execute() reach the code only: under a root service, the init and
    setpriv run as root before the uid drops, and must not load or source anything of theirs."""
    if sandbox.canonical_language("c") is None:
        pytest.skip("needs a C compiler in the sandbox to build the preload library")
    build = r"""cat > preload.c <<'C'
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
    char path[64];
    snprintf(path, sizeof path, "/mnt/data/preloaded-as-%d", (int)geteuid());
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
}
C
cc -shared -fPIC -o preload.so preload.c
echo 'touch "/mnt/data/bash-env-as-$(id -u)"' > env.sh"""
    assert run(workdir, build, lang="bash").status == "ok"
    env = {"LD_PRELOAD": "/mnt/data/preload.so", "BASH_ENV": "/mnt/data/env.sh"}
    result = run(workdir, "id -u", lang="bash", env=env)
    assert result.status == "ok", result.stderr
    uid = result.stdout.strip()
    marks = sorted(path.name for path in workdir.iterdir() if "-as-" in path.name)
    assert f"preloaded-as-{uid}" in marks
    assert f"bash-env-as-{uid}" in marks
    assert "preloaded-as-0" not in marks
    assert "bash-env-as-0" not in marks
    with pytest.raises(ValueError, match="Invalid environment variable"):
        run(workdir, "true", lang="bash", env={"BASH_FUNC_wait%%": "() { :; }"})


# -- what one execution, and one caller, can take: through the service, with default limits ----

ATTACKER = "665f1c2e9b1e4a00a77ac4e2"
MEMORY_MARGIN = 64 * MiB


@dataclass
class Service:
    server: AppServer
    bystander: User  # a user of the chat proxy, who must not notice the attack

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, timeout=120, headers={"User-Agent": "LibreChat/1.0"}
        )

    def assert_still_serving(self) -> None:
        """Right after an attack: liveness, a normal execution and a proxied chat request."""
        with self.client() as client:
            assert client.get("/healthz").status_code == 200
            normal = client.post(
                f"{BASE}/exec", json={"lang": "py", "code": "print('still serving')"}
            )
            assert normal.status_code == 200, normal.text
            assert (normal.json()["status"], normal.json()["stdout"]) == ("ok", "still serving\n")
            chat = client.get(
                "/api/chat/user", headers={"Authorization": f"Bearer {jwt_for(self.bystander)}"}
            )
            assert chat.status_code == 200, chat.text
            assert chat.json()["email"] == self.bystander.email


@pytest.fixture
def service(
    code_settings: Settings, librechat: LibreChatDouble, transactional_db: None
) -> Iterator[Service]:
    if sandbox.session_uids() is None:
        pytest.skip("measures a sandbox by its host uid, which only a root service assigns")
    code_settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    code_settings.SESSION_COOKIE_SECURE = code_settings.CSRF_COOKIE_SECURE = False
    bystander = activate(make_legacy_user(email="bystander@example.com"), librechat)
    with AppServer() as server:
        yield Service(server, bystander)


def attack(service: Service, code: str, lang: str = "py") -> tuple[dict[str, Any], Measured]:
    """Run ``code`` in a session of the attacker's, measured from another process."""
    with service.client() as client:
        opened = client.post(f"{BASE}/exec", json={"lang": "py", "code": "1", "user_id": ATTACKER})
        assert opened.status_code == 200, opened.text
        session_id = opened.json()["session_id"]
        uid = CodeSession.objects.get(pk=session_id).uid
        assert uid is not None
        probe = MemoryProbe(uid)
        try:
            response = client.post(
                f"{BASE}/exec",
                json={"lang": lang, "code": code, "user_id": ATTACKER, "session_id": session_id},
            )
        finally:
            measured = probe.stop()
    assert response.status_code == 200, response.text
    return response.json(), measured


def assert_memory_held(measured: Measured, case: str) -> None:
    limit = django_settings.CODE_INTERPRETER_MEMORY_BYTES
    print(
        f"\n{case}: peak {measured.peak_bytes / MiB:.0f} MiB (limit {limit // MiB} MiB), "
        f"host MemAvailable drop {measured.host_drop_bytes / MiB:.0f} MiB, "
        f"{measured.samples} samples"
    )
    assert measured.samples >= 3
    assert measured.peak_bytes <= limit + MEMORY_MARGIN
    assert measured.host_drop_bytes <= limit + MEMORY_MARGIN + HOST_NOISE_BYTES


MEMORY_ATTACKS = {
    "shared anonymous mmap": (
        "import mmap\n"
        "shared = mmap.mmap(-1, 1536 * 2**20)\n"
        "for offset in range(0, len(shared), 4096):\n"
        "    shared[offset] = 1\n"
        "print('held 1.5 GiB')\n"
    ),
    "memfd_create": (
        "import os\n"
        "files = []\n"
        "for _ in range(20):\n"
        "    fd = os.memfd_create('hidden')\n"
        "    for _ in range(100):\n"
        "        os.write(fd, b'x' * 2**20)\n"
        "    files.append(fd)\n"
        "print('held 2 GB in memfds')\n"
    ),
    "8 processes of 300 MB": (
        "import os\n"
        "children = []\n"
        "for _ in range(8):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = bytearray(300 * 10**6)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    os.waitpid(pid, 0)\n"
        "print('held 2.4 GB')\n"
    ),
    "/dev/shm fill": (
        "with open('/dev/shm/fill', 'wb') as fill:\n"
        "    while True:\n"
        "        fill.write(b'x' * 2**20)\n"
    ),
}


@pytest.mark.parametrize("case", list(MEMORY_ATTACKS))
def test_memory_is_counted_for_the_whole_execution(service: Service, case: str) -> None:
    body, measured = attack(service, MEMORY_ATTACKS[case])
    assert (body["status"], body["message"]) == ("oom", "Out of memory"), body["stderr"]
    assert "Out of memory" in body["stderr"]
    assert not body["stdout"].startswith("held")
    assert_memory_held(measured, case)
    service.assert_still_serving()


def test_fifty_sessions_cannot_hold_more_than_the_callers_quota(service: Service) -> None:
    session_quota = django_settings.CODE_INTERPRETER_DISK_QUOTA_BYTES
    caller_quota = django_settings.CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES
    assert caller_quota < 50 * session_quota  # else this would prove nothing
    fill = (  # files under the size limit per file, until something stops it
        "import itertools\n"
        "for n in itertools.count():\n"
        "    with open(f'fill{n}', 'wb') as f:\n"
        "        for _ in range(64):\n"
        "            f.write(b'x' * 2**20)\n"
    )
    peaks = []
    for _ in range(50):
        body, measured = attack(service, fill)
        assert (body["status"], body["message"]) == ("disk_quota", "Disk quota exceeded"), body
        assert "Disk quota exceeded" in body["stderr"]
        peaks.append(measured)
    sessions = CodeSession.objects.filter(caller=f"anonymous/user:{ATTACKER}")
    assert sessions.count() == 50
    on_disk = sum(
        sandbox.disk_usage(Path(django_settings.CODE_INTERPRETER_SESSIONS_DIR) / session.id)
        for session in sessions
    )
    print(f"\n50 sessions: {on_disk / MiB:.0f} MiB on disk (caller quota {caller_quota // MiB})")
    assert caller_quota - session_quota < on_disk <= caller_quota
    assert sum(session.disk_bytes for session in sessions) == on_disk  # what the budget counts
    assert_memory_held(max(peaks, key=lambda m: m.peak_bytes), "50 sessions (largest)")
    service.assert_still_serving()


def _rss_bytes() -> int:
    """This process's resident memory: the service under test runs in one of its threads."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_an_oversize_chunked_upload_is_cut_off_at_the_limit(service: Service) -> None:
    """Four times the upload limit, chunked (no Content-Length to refuse it by): the service
    stops reading at the limit and answers 413, holding none of it in memory and keeping none of
    it on disk, and serves on."""
    limit = django_settings.CODE_INTERPRETER_MAX_UPLOAD_BYTES
    stored = Path(django_settings.MEDIA_ROOT)
    files_before = sorted(stored.rglob("*")) if stored.exists() else []
    rss_before = peak = _rss_bytes()
    sending = threading.Event()
    sending.set()

    def sample() -> None:
        nonlocal peak
        while sending.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        status, raw, sent = send_chunked(
            service.server,
            f"{BASE}/upload",
            total=4 * limit,
            headers={"User-Agent": "LibreChat/1.0", "User-Id": ATTACKER},
        )
    finally:
        sending.clear()
        sampler.join()
    print(
        f"\noversize chunked upload: {sent / MiB:.0f} MiB sent of {4 * limit / MiB:.0f}, "
        f"peak RSS growth {(peak - rss_before) / MiB:.0f} MiB"
    )
    assert status == 413, raw
    assert json.loads(raw)["error"]["code"] == "payload_too_large"
    assert sent < 2 * limit  # cut off near the limit, not read to the end
    assert peak - rss_before < MEMORY_MARGIN  # never held in memory
    assert (sorted(stored.rglob("*")) if stored.exists() else []) == files_before
    assert not CodeSession.objects.filter(owner=f"user:{ATTACKER}").exists()
    service.assert_still_serving()
