"""The preloaded python3 in a real sandbox: every invocation against the real interpreter.

One cold bash-less ``py`` execution runs ``zygote_harness.py``, which starts the zygote and runs
each case below twice, served by the zygote and with the zygote absent (the client then execs
the real interpreter: the oracle). Each case must give the same stdout, stderr, exit status
(signal deaths included) and files both ways, and be served, or sent to the real interpreter,
as the rule in ``code_interpreter/runtime/zygote_launch.py`` says.
"""

from __future__ import annotations

import json
import os
import py_compile
import secrets
import zipfile
from pathlib import Path
from typing import Any

import pytest

from code_interpreter import sandbox
from code_interpreter.sandbox import Limits
from code_interpreter.sandbox.command import load_config

pytestmark = pytest.mark.usefixtures("sandbox_ready")

HARNESS = Path(__file__).with_name("zygote_harness.py")
PY = "python3"
UNBUFFERED_OFF = {"PYTHONUNBUFFERED": None, "PYTHONDONTWRITEBYTECODE": None}

# What a fresh interpreter leaves behind, printed by each form of invocation.
PROBE = r"""
import os, signal, sys
print(sys.argv, sys.orig_argv)
print(sys.executable, sys._base_executable, sys.prefix, sys.base_prefix, sys.exec_prefix)
print(sys.path)
print(sys.flags, sys.dont_write_bytecode)
print(list(globals()))
loader = __loader__ if isinstance(__loader__, type) else type(__loader__)
spec = (__spec__.name, __spec__.origin, __spec__.cached) if __spec__ else None
print(__name__, globals().get("__file__"), globals().get("__cached__"), loader.__name__, spec)
for s in (sys.stdin, sys.stdout, sys.stderr):
    raw = getattr(s.buffer, "raw", s.buffer)
    print(s.name, s.mode, s.encoding, s.errors, s.line_buffering, s.write_through,
          type(s.buffer).__name__, raw.name, s.isatty(), s.fileno())
print(os.getcwd(), oct(os.umask(0o22)), os.readlink("/proc/self/exe"))
print(sys.meta_path, [type(hook).__name__ for hook in sys.path_hooks])
print("code_interpreter" in sys.modules, sys.modules["__main__"].__dict__ is globals())
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) < 250)
print(open("/proc/self/comm").read().strip(), fds)
handlers = {int(n): str(signal.getsignal(n)) for n in signal.valid_signals()
            if n not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(n) != signal.SIG_DFL}
print(sorted(handlers.items()), sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
print(sys.excepthook is sys.__excepthook__, hasattr(sys, "last_value"), sys.getrecursionlimit())
if __name__ == "__main__":
    print("main")
"""
WAIT = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(30)\n"
HANDLED = """import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("caught"), sys.exit(5)))
print(os.getpid(), flush=True)
time.sleep(30)
"""
CHAINED = "try:\n    1/0\nexcept Exception as e:\n    raise KeyError('k') from e"
HOOKED = (
    "import sys\nsys.excepthook = lambda t, v, tb: print('hooked', t.__name__)\nraise ValueError"
)
LIMITS = """umask 077; ulimit -n 100; nice -n 5 python3 -c '
import os, resource
print(oct(os.umask(0)), resource.getrlimit(resource.RLIMIT_NOFILE), os.nice(0))'"""
THREADS = """import atexit, threading, time
atexit.register(print, "atexit")
threading.Thread(target=lambda: (time.sleep(0.2), print("thread"))).start()
print("main")
"""
DAEMON = """import threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("bye")
"""
FINALIZERS = """class A:
    def __del__(self):
        print("del A")
a = A()
f = open("unclosed.txt", "w")
f.write("kept")
"""
CYCLE = """class A:
    def __del__(self):
        print("del", self.name)
young = A()
young.name, young.me = "young", young
"""
# The cycle is promoted to the oldest generation before the end: only a full collection finds it.
OLD_CYCLE = (
    CYCLE.replace("young", "old") + "import gc\ngc.collect()\nprint(len(gc.get_objects(2)) > 0)\n"
)
WARNINGS = "import warnings\nwarnings.warn('careful', stacklevel=2)\nwarnings.warn('here')"
FORK = """import os
pid = os.fork()
if pid:
    os.waitpid(pid, 0)
    print("parent")
else:
    print("child")
"""
NESTED = """import subprocess
print(subprocess.run(["python3", "-c", "print(7)"], capture_output=True, text=True).stdout)
"""
PANDAS = "import numpy as np, pandas as pd\nprint(pd.DataFrame({'a': np.arange(5)}).describe())"
FIGURES = """import matplotlib.pyplot as plt
print(plt.get_fignums(), plt.figure().number, plt.get_backend())
"""
CHART = """import os, matplotlib.pyplot as plt
plt.plot([1, 2, 3], [3, 1, 2])
plt.savefig("chart.png")
print(os.path.getsize("chart.png"))
"""
WRITER = """python3 - <<'PY'
from pathlib import Path
Path('/mnt/data/made.txt').write_text('hello\\n')
print('written')
PY
cat /mnt/data/made.txt"""
SITE_PACKAGES = "/opt/runtime/venv/lib/python3.11/site-packages"


def case(
    name: str, argv: list[str], expect: str | int = "served", **options: Any
) -> dict[str, Any]:
    return {"name": name, "argv": argv, "expect": expect, **options}


def bash(name: str, script: str, expect: str | int = "served", **options: Any) -> dict[str, Any]:
    return case(name, ["bash", "-c", script], expect, **options)


def fallback(name: str, argv: list[str], **options: Any) -> dict[str, Any]:
    return case(name, argv, "fallback", **options)


def c(code: str) -> list[str]:
    return [PY, "-c", code]


CASES = [
    # forms of invocation
    case("command", [PY, "-c", PROBE, "a", "-b"]),
    case("command attached", [PY, "-cimport sys; print(sys.argv)", "x"]),
    case("script", [PY, "probe.py", "x"]),
    case("script absolute", [PY, "/mnt/data/probe.py"]),
    case("script dot slash", [PY, "./probe.py"]),
    case("script from root", [PY, "mnt/data/probe.py"], cwd="/"),
    case("script through a link", [PY, "link.py"]),
    case("script after --", [PY, "--", "probe.py", "-c"]),
    case("script in latin-1", [PY, "latin.py"]),
    case("stdin dash", [PY, "-", "y"], stdin=PROBE),
    case("stdin bare", [PY], stdin=PROBE),
    case("stdin empty", [PY], stdin=""),
    case("module", [PY, "-m", "probemod", "z"]),
    case("package", [PY, "-m", "pkg", "q"]),
    case("stdlib module", [PY, "-m", "json.tool"], stdin='{"b": 1, "a": [1, 2]}'),
    case("options -uqB", [PY, "-uqB", "-c", PROBE], env=UNBUFFERED_OFF),
    case("options -u -B separate", [PY, "-u", "-B", "-c", PROBE], env=UNBUFFERED_OFF),
    case("buffered stdio", c(PROBE), env=UNBUFFERED_OFF),
    case("as python", ["python", "-c", PROBE]),
    case("as an absolute path", ["/opt/runtime/venv/bin/python3", "-c", PROBE]),
    case("unicode arguments", [*c("import sys; print(sys.argv)"), "é", "日本"]),
    # exit statuses
    case("exit 3", c("import sys; sys.exit(3)")),
    case("exit message", c("import sys; sys.exit('bye')")),
    case("exit None", c("raise SystemExit(None)")),
    case("exit tuple", c("raise SystemExit((1, 2))")),
    case("exit huge", c("import sys; sys.exit(2**40 + 3)")),
    case("exit overflow", c("import sys; sys.exit(2**70)")),
    case("exit builtin", c("exit(4)")),
    case("os._exit", c("import os; print('x', flush=True); os._exit(7)")),
    case("exception", c("def f():\n    raise ValueError('boom')\nf()")),
    case("chained exception", c(CHAINED)),
    case("syntax error", c("print(1")),
    case("syntax error in a script", [PY, "bad.py"]),
    case("keyboard interrupt", c("raise KeyboardInterrupt")),
    case("keyboard interrupt in -m", [PY, "-m", "kbmod"]),
    case("excepthook", c(HOOKED)),
    case(
        "broken excepthook", c("import sys\nsys.excepthook = lambda *a: 1/0\nraise ValueError('v')")
    ),
    case("killed by SIGTERM", c("import os; os.kill(os.getpid(), 15)")),
    case("abort", c("import os; os.abort()")),
    bash(
        "shell status of a signal death",
        "python3 -c 'import os; os.kill(os.getpid(), 15)'; echo $?",
    ),
    bash("shell status of an exit", "python3 -c 'raise SystemExit(9)'; echo $?"),
    # signals from outside, forwarded by the client
    case("SIGINT from outside", c(WAIT), signal="SIGINT"),
    case("SIGTERM from outside", c(WAIT), signal="SIGTERM"),
    case("SIGTERM handled", c(HANDLED), signal="SIGTERM"),
    case("SIGKILL of the client", c(WAIT), signal="SIGKILL"),
    # stdio and the environment
    case("input", c("print(input('name? '))\nprint(input())"), stdin="bob\nalice\n"),
    case("stdin as is", c("import sys; print(repr(sys.stdin.read()))"), stdin="a\r\nb"),
    case("stdin after the program", [PY, "-"], stdin="import sys\nprint(repr(sys.stdin.read()))\n"),
    case("large output", c("print('x' * 300000)")),
    case("stdout full", c("print('x')"), env=UNBUFFERED_OFF, stdout="/dev/full"),
    case("working directory", c("import os, sys; print(os.getcwd(), sys.path[0])"), cwd="/tmp"),
    case(
        "environment",
        c("import os; print(os.environ['FOO'], sorted(os.environ))"),
        env={"FOO": "bar"},
    ),
    case(
        "PYTHONPATH",
        c("import sys, helper; print(sys.path, helper.NAME)"),
        env={"PYTHONPATH": "lib:/mnt/data/lib::rel"},
    ),
    bash("umask, limits and nice", LIMITS),
    bash("an inherited fd", "python3 -c 'import os; print(os.read(3, 100))' 3< input.txt"),
    bash("closed stdin", "python3 -c 'import sys; print(sys.stdin)' <&-"),
    bash("closed stdout", "python3 -c 'import sys; sys.stderr.write(repr(sys.stdout))' >&-"),
    bash("ignored SIGINT", "trap '' INT; python3 -c 'import signal; print(signal.getsignal(2))'"),
    bash(
        "background job",
        "python3 -c 'import signal as s; print(s.getsignal(2), s.getsignal(3))' & wait",
    ),
    case("blocked signals", c(PROBE), block=["SIGUSR1", "SIGHUP"]),
    # the end of the process
    case("atexit and threads", c(THREADS)),
    case("daemon thread", c(DAEMON)),
    case("finalizers and open files", c(FINALIZERS), files=["unclosed.txt"]),
    case("a young reference cycle with a finalizer", c(CYCLE)),
    case("an old reference cycle with a finalizer", c(OLD_CYCLE)),
    case("warning past the module", c(WARNINGS)),
    case("fork", c(FORK)),
    case("nested python3", c(NESTED), expect=2),
    case("multiprocessing", [PY, "mp.py"]),
    # the preloaded libraries
    case("pandas", c(PANDAS)),
    case("no figure open", c(FIGURES)),
    case("chart", c(CHART)),
    case(
        "reseeded",
        c("import random, numpy\nprint(random.random(), numpy.random.rand())"),
        distinct=True,
    ),
    bash("a file written as LibreChat does", WRITER, files=["made.txt"]),
    # what must start the real interpreter
    fallback("-I", [PY, "-I", "-c", "import sys; print(sys.flags.isolated, sys.path[0])"]),
    fallback("-S", [PY, "-S", "-c", "import sys; print(sys.flags.no_site, 'site' in sys.modules)"]),
    fallback("-E", [PY, "-E", "-c", "import sys; print(sys.flags.ignore_environment)"]),
    fallback("-O", [PY, "-O", "-c", "print(__debug__)"]),
    fallback("-P", [PY, "-P", "-c", "import sys; print(sys.path[0])"]),
    fallback("-X", [PY, "-X", "dev", "-c", "import sys; print(sys.flags.dev_mode)"]),
    fallback("-W", [PY, "-W", "error", "-c", "import sys; print(sys.warnoptions)"]),
    fallback("-i", [PY, "-i", "-c", "x = 5"], stdin="print(x)\n"),
    fallback("--version", [PY, "--version"]),
    fallback("-c without code", [PY, "-c"]),
    fallback("PYTHONHASHSEED", c("print(hash('abc'))"), env={"PYTHONHASHSEED": "0"}),
    fallback(
        "PYTHONWARNINGS", c("import sys; print(sys.warnoptions)"), env={"PYTHONWARNINGS": "error"}
    ),
    fallback("another locale", c("import sys; print(sys.stdout.encoding)"), env={"LANG": "C"}),
    fallback("a loader variable", c("print(1)"), env={"LD_LIBRARY_PATH": "/tmp"}),
    fallback(
        "a module shadowing a preloaded one",
        c("import json; print(json.__file__)"),
        cwd="/mnt/data/shadow",
    ),
    fallback(
        "a package shadowing a preloaded one",
        c("import pandas; print(pandas.__file__)"),
        env={"PYTHONPATH": "/mnt/data/fakes"},
    ),
    fallback(
        "a zip on PYTHONPATH",
        c("import zipped; print(zipped.NAME)"),
        env={"PYTHONPATH": "/mnt/data/lib.zip"},
    ),
    fallback(
        "PYTHONPATH reordering the runtime's",
        c("import sys; print(sys.path)"),
        env={"PYTHONPATH": SITE_PACKAGES},
    ),
    fallback("-m of a preloaded module", [PY, "-m", "json"]),
    fallback("compiled script", [PY, "comp.pyc"]),
    fallback("zip application", [PY, "app.zip"]),
    fallback("directory", [PY, "pkg"]),
    fallback("missing script", [PY, "nope.py"]),
    fallback(
        "unknown argv[0]",
        ["weird", "-c", "import sys; print(repr(sys.executable))"],
        executable="/opt/runtime/venv/bin/python3",
    ),
    case(
        "a lower memory limit",
        ["bash", "-c", "ulimit -S -v 4000000; python3 -c 'print(1)'"],
        "fallback",
    ),
]


def _write_support_files(workdir: Path) -> None:
    (workdir / "cases.json").write_text(json.dumps(CASES))
    (workdir / "probe.py").write_text(PROBE)
    (workdir / "probemod.py").write_text(PROBE)
    (workdir / "sub").mkdir()
    (workdir / "sub" / "inner.py").write_text(PROBE)
    os.symlink("sub/inner.py", workdir / "link.py")
    (workdir / "latin.py").write_bytes("# -*- coding: latin-1 -*-\nprint('é')\n".encode("latin-1"))
    (workdir / "bad.py").write_text("x = 1\ndef f(:\n")
    (workdir / "kbmod.py").write_text("raise KeyboardInterrupt\n")
    (workdir / "mp.py").write_text(
        "import multiprocessing\nif __name__ == '__main__':\n"
        "    with multiprocessing.get_context('fork').Pool(2) as pool:\n"
        "        print(pool.map(abs, [-1, -2, -3]))\n"
    )
    (workdir / "pkg").mkdir()
    (workdir / "pkg" / "__init__.py").write_text("")
    (workdir / "pkg" / "__main__.py").write_text("import sys\nprint('pkg main', sys.argv)\n")
    (workdir / "lib").mkdir()
    (workdir / "lib" / "helper.py").write_text("NAME = 'helper'\n")
    (workdir / "shadow").mkdir()
    (workdir / "shadow" / "json.py").write_text("dumps = None\n")
    (workdir / "fakes" / "pandas").mkdir(parents=True)
    (workdir / "fakes" / "pandas" / "__init__.py").write_text("")
    with zipfile.ZipFile(workdir / "lib.zip", "w") as archive:
        archive.writestr("zipped.py", "NAME = 'zipped'\n")
    with zipfile.ZipFile(workdir / "app.zip", "w") as archive:
        archive.writestr("__main__.py", "print('from the zip')\n")
    (workdir / "comp.py").write_text("print('compiled')\n")
    py_compile.compile(str(workdir / "comp.py"), cfile=str(workdir / "comp.pyc"))
    (workdir / "input.txt").write_text("inherited\n")


def installed_runtime_is_current() -> None:
    """The runtime holds a copy of the zygote: fail clearly when it is older than the source."""
    runtime = load_config().runtime_dir
    source = Path(__file__).resolve().parents[2] / "code_interpreter" / "runtime"
    for module in source.glob("zygote*.py"):
        installed = runtime / "zygote" / "code_interpreter" / "runtime" / module.name
        if not installed.is_file() or installed.read_bytes() != module.read_bytes():
            pytest.fail(f"The sandbox runtime has an old {module.name}: run `make sandbox`.")
    if not (runtime / "bin" / "sandbox-python").is_file():
        pytest.fail("The sandbox runtime has no python3 client: run `make sandbox`.")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    installed_runtime_is_current()
    workdir = tmp_path_factory.mktemp("zygote")
    _write_support_files(workdir)
    # Its own uid, as a session has under a root service: RLIMIT_NPROC counts a uid's processes
    # host-wide, and the scratch uid of runs outside a session is shared by every such run on
    # the machine (other test runs' included), so under load the harness's 128 processes could
    # be taken by strangers: a fork refused in the zygote ends it, and the harness waits.
    uids = sandbox.session_uids()
    result = sandbox.execute(
        lang="py",
        code=HARNESS.read_text(),
        workdir=workdir,
        limits=Limits(timeout_s=300, cpu_s=300, max_processes=128),
        uid=None if uids is None else uids[secrets.randbelow(len(uids))],
    )
    assert result.status == "ok", result.stderr[-3000:]
    loaded: dict[str, Any] = json.loads((workdir / "results.json").read_text())
    return loaded


@pytest.mark.parametrize("spec", CASES, ids=[spec["name"] for spec in CASES])
def test_an_invocation_behaves_as_the_real_interpreter(
    results: dict[str, Any], spec: dict[str, Any]
) -> None:
    entry = results[spec["name"]]
    served = entry["served"]
    expected = spec["expect"]
    if expected == "fallback":
        assert (served["served"], served["fallbacks"]) == (0, 1), served
    else:
        count = 1 if expected == "served" else expected
        assert (served["served"], served["fallbacks"]) == (count, 0), served["reasons"]
    if spec.get("distinct"):
        assert served["returncode"] == entry["again"]["returncode"] == 0
        assert served["stdout"] != entry["again"]["stdout"], "the generators were not reseeded"
        return
    oracle = entry["oracle"]
    for key in ("stdout", "stderr", "returncode", "files", "code_alive"):
        assert served.get(key) == oracle.get(key), key


def test_signal_deaths_and_statuses_reach_the_caller(results: dict[str, Any]) -> None:
    """The oracle comparison could pass with both wrong: pin the expected values too."""
    assert results["killed by SIGTERM"]["served"]["returncode"] == -15
    assert results["keyboard interrupt"]["served"]["returncode"] == -2
    assert results["SIGINT from outside"]["served"]["returncode"] == -2
    assert "KeyboardInterrupt" in results["SIGINT from outside"]["served"]["stderr"]
    assert results["SIGTERM handled"]["served"]["stdout"] == "caught\n"
    assert results["SIGTERM handled"]["served"]["returncode"] == 5
    assert results["SIGKILL of the client"]["served"]["code_alive"] is False
    assert results["shell status of a signal death"]["served"]["stdout"] == "143\n"
    assert results["exit 3"]["served"]["returncode"] == 3
    assert results["stdout full"]["served"]["returncode"] == 120
    assert results["finalizers and open files"]["served"]["files"] == {"unclosed.txt": "kept"}
    assert "sys:1: UserWarning: careful" in results["warning past the module"]["served"]["stderr"]


def test_the_zygote_reports_itself(results: dict[str, Any]) -> None:
    start = results["status_at_start"]
    assert start["preloaded"] == ["numpy", "pandas", "matplotlib.pyplot", "PIL.Image"]
    assert start["leaked_fds"] == []
    assert start["identities"] == ["/opt/runtime/venv/bin/python", "/opt/runtime/venv/bin/python3"]
    assert start["pss_kib"] > 10_000
    end = results["status_at_end"]
    assert end["served"] >= sum(1 for spec in CASES if spec["expect"] != "fallback")
    assert end["children"] == []  # every served child was reaped
    assert len(end["spares"]) == 2
    assert not set(end["spares"]) & set(start["spares"])  # the first ones served


CLIENT_EDGES = r"""
cd /tmp
python3.11() { /opt/runtime/venv/bin/python3.11 "$@"; }
# A zygote that accepts and never answers, one that is gone, and things that are no socket.
python3.11 -c '
import socket, time
s = socket.socket(socket.AF_UNIX); s.bind("/tmp/silent.sock"); s.listen()
held = [s.accept()[0] for _ in range(2)]
time.sleep(60)' &
python3.11 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/tmp/gone.sock")'
touch /tmp/plain
while [ ! -S /tmp/silent.sock ]; do sleep 0.05; done
started=$(date +%s%N)
SANDBOX_PY_ZYGOTE=/tmp/silent.sock python3 -c 'print("silent ran")'
echo "silent status $? after $(( ($(date +%s%N) - started) / 1000000 )) ms"
SANDBOX_PY_ZYGOTE=/tmp/gone.sock python3 -c 'print("gone ran")'
SANDBOX_PY_ZYGOTE=/tmp/plain python3 -c 'print("plain ran")'
SANDBOX_PY_ZYGOTE=/tmp/$(printf 'x%.0s' $(seq 120)) python3 -c 'print("long ran")'
SANDBOX_PY_ZYGOTE= python3 -c 'print("empty ran")'
"""


def test_the_client_starts_the_real_interpreter_when_no_zygote_answers(tmp_path: Path) -> None:
    """A stuck zygote costs the client its reply timeout (5 s), then the code runs once."""
    installed_runtime_is_current()
    result = sandbox.execute(lang="bash", code=CLIENT_EDGES, workdir=tmp_path, limits=Limits())
    lines = result.stdout.splitlines()
    assert lines[0] == "silent ran"
    status, elapsed = lines[1].split(" after ")
    assert status == "silent status 0"
    assert 4900 <= int(elapsed.removesuffix(" ms")) < 9000
    assert lines[2:] == ["gone ran", "plain ran", "long ran", "empty ran"]
