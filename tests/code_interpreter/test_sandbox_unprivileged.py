"""The sandbox under a service that does not run as root: bubblewrap makes a user namespace.

The suite itself runs as root here, so this starts a second Python as an unprivileged user
(Debian's python3 with this virtualenv's packages) and checks the essentials from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

UNPRIVILEGED = 65534
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"

SCRIPT = r"""
import json, os, sys
from pathlib import Path
from code_interpreter import sandbox
from code_interpreter.sandbox import Limits

workdir = Path(sys.argv[1])
ready, message = sandbox.sandbox_status()
out = {"ready": ready, "message": message, "euid": os.geteuid()}
if ready:
    def run(code, lang="bash", **limits):
        result = sandbox.execute(lang=lang, code=code, workdir=workdir, limits=Limits(**limits))
        return {"status": result.status, "stdout": result.stdout, "stderr": result.stderr}
    out["id"] = run("id -u; unshare -U true 2>/dev/null && echo USERNS || echo no-userns; : > f")
    out["py"] = run("import numpy; print(numpy.arange(4).sum())", lang="py")
    out["bomb"] = run(":(){ :|:& };:; sleep 1; echo survived", max_processes=16, timeout_s=5)
    out["sleep"] = run("sleep 100", timeout_s=1)
    out["memory"] = run("x = bytearray(2 * 1024**3)", lang="py")
    shared = "import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, len(m), 4096): m[i] = 1"
    out["shared"] = run(shared, lang="py", memory_bytes=256 * 1024**2)
    out["enforcement"] = sandbox.memory_enforcement().kind
    from code_interpreter.sandbox import warm
    def warm_run(code, lang="py"):
        result = warm.execute(caller="c", session_id="s", lang=lang, code=code, workdir=workdir,
                              limits=Limits(), uid=None)
        return {"status": result.status, "stdout": result.stdout, "stderr": result.stderr}
    warm_run("true", lang="bash")
    [entry] = warm.pool.entries.values()
    entry.sandbox.wait_for_zygote(60, light=True)
    # Served by the zygote itself: its parent is the zygote, and nothing was started between.
    tree = (
        "import os\n"
        "print(open(f'/proc/{os.getppid()}/cmdline').read().split('\\0')[1:3])\n"
        "stats = [open(f'/proc/{p}/stat').read() for p in os.listdir('/proc') if p.isdigit()]\n"
        "print(sorted(s[s.index('(') + 1:s.rindex(')')] for s in stats\n"
        "             if s.rsplit(')', 1)[1].split()[1] == '1'))\n"
        "print(os.getuid(), os.getcwd())\n"
    )
    out["warm_py"] = warm_run(tree)
    warm.pool.clear()
print(json.dumps(out))
"""


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-unprivileged-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_unprivileged_service_gets_the_same_sandbox(shared: Path) -> None:
    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root (to switch user) and Debian's python3 of this version")
    workdir = shared / "session"
    workdir.mkdir()
    os.chown(workdir, UNPRIVILEGED, UNPRIVILEGED)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(shared),
        "PYTHONPATH": os.pathsep.join([str(settings.BASE_DIR), sysconfig.get_paths()["purelib"]]),
    }
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import django, code_interpreter.sandbox"],
        env=env,
        user=UNPRIVILEGED,
        group=UNPRIVILEGED,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"the project is not readable by an unprivileged user here: {probe.stderr[-300:]}"
        )
    completed = subprocess.run(
        [SYSTEM_PYTHON, "-c", SCRIPT, str(workdir)],
        env=env,
        user=UNPRIVILEGED,
        group=UNPRIVILEGED,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=shared,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = json.loads(completed.stdout)
    assert out["euid"] == UNPRIVILEGED
    assert out["ready"], out["message"]
    assert out["id"]["stdout"] == "65534\nno-userns\n"
    assert (workdir / "f").stat().st_uid == UNPRIVILEGED
    assert (out["py"]["status"], out["py"]["stdout"]) == ("ok", "6\n")
    assert "Resource temporarily unavailable" in out["bomb"]["stderr"]
    assert out["sleep"]["status"] == "timeout"
    assert out["memory"]["status"] == "oom"
    # The supervisor sees the tree through the sandbox's /proc without any privilege.
    assert out["enforcement"] == "sampled"
    assert out["shared"]["status"] == "oom", out["shared"]["stderr"]
    # A warm sandbox's py execution, served by its zygote, under the user namespace too.
    zygotes = "['python3.11', 'python3.11']"  # the preloaded one and the light one
    expected = f"['-m', 'code_interpreter.runtime.zygote']\n{zygotes}\n65534 /mnt/data\n"
    assert out["warm_py"] == {"status": "ok", "stdout": expected, "stderr": ""}, out["warm_py"]
