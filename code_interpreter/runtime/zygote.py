"""A preloaded Python that serves ``python3`` inside one sandbox as forks of itself.

Started inside the sandbox by whatever keeps it warm (``/opt/runtime/bin/sandbox-zygote --socket
PATH``, which runs ``python3.11 -m code_interpreter.runtime.zygote`` from the runtime's
``zygote`` directory, without ``$PYTHONPATH``), with the environment its ``python3`` calls will
have. It imports the data stack once, draws one chart in memory so matplotlib's backend and
fonts are loaded, then measures what a fresh ``python3`` reports at start-up (``sys.path``,
``sys.executable``, stdio encodings: ``identities``), and listens on PATH (mode 0600). The
``python3`` client (``python_client.c``) connects there. ``zygote_server`` runs the loop,
``zygote_forks`` what its forks run (spares, the state holder), ``zygote_launch`` decides whether
an invocation can be served, ``zygote_child`` and ``zygote_run`` serve it, ``zygote_wire`` is the
protocol. One zygote serves one sandbox (one session): nothing in it is shared with another.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import json
import os
import resource
import socket
import stat
import subprocess
import sys
import time
from typing import Any, NoReturn

from code_interpreter.runtime import zygote_child as child
from code_interpreter.runtime import zygote_launch as launch
from code_interpreter.runtime import zygote_run as run
from code_interpreter.runtime.zygote_server import Zygote
from code_interpreter.runtime.zygote_wire import SOCKET_ENV

# What is cheap to hold and common in analysis code (bench/zygote.py measures the choice).
DEFAULT_PRELOAD = ("numpy", "pandas", "matplotlib.pyplot", "PIL.Image")
BACKLOG = 128

# Run by the real interpreter started as each served name, so the zygote knows what a fresh
# python3 computes for itself rather than recomputing CPython's getpath.
_CALIBRATION = """import sys, json
print(json.dumps({
    "executable": sys.executable, "base_executable": sys._base_executable,
    "prefix": sys.prefix, "path": sys.path[1:],
    "stdio": [[s.encoding, s.errors] for s in (sys.stdin, sys.stdout, sys.stderr)],
}))"""


def main(argv: list[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="sandbox-zygote", description=__doc__)
    parser.add_argument("--socket", default=os.environ.get(SOCKET_ENV), help=f"or ${SOCKET_ENV}")
    parser.add_argument("--preload", default=",".join(DEFAULT_PRELOAD), help="modules, by commas")
    parser.add_argument("--spares", type=int, default=2, help="forks kept ready (default: 2)")
    options = parser.parse_args(argv)
    if not options.socket:
        parser.error(f"--socket or ${SOCKET_ENV} is required")
    if "PYTHONPATH" in os.environ:
        parser.error("start the zygote without $PYTHONPATH: it would decide what is preloaded")
    with contextlib.suppress(OSError):
        os.setsid()  # no signal meant for the starter's process group reaches the zygote
    os.chdir("/")
    del sys.path[0]  # its own directory: the runtime's zygote code, not for user imports
    started = time.monotonic()
    environ = dict(os.environ)  # as python3 calls will have it: imports may add to it
    fds_before = set(os.listdir("/proc/self/fd"))
    preloaded = preload([name for name in options.preload.split(",") if name])
    leaked = sorted(set(os.listdir("/proc/self/fd")) - fds_before, key=int)
    child.sync_environ()
    facts = build_facts(environ)
    run.capture_unraisable_type()
    info = {
        "python": sys.version.split()[0],
        "preloaded": preloaded,
        "preload_s": round(time.monotonic() - started, 3),
        "leaked_fds": leaked,  # the preload's own open files: a child would close them
        "identities": sorted(facts.identities),
    }
    child.default_signals()
    child.leave_clean(facts.identities)
    listener = listen(options.socket)
    print(f"zygote: serving {options.socket} ({json.dumps(info)})", file=sys.stderr, flush=True)
    Zygote(listener, facts, info, spares=max(1, options.spares)).serve_forever()


def preload(names: list[str]) -> list[str]:
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the zygote still serves, with less preloaded
            print(f"zygote: cannot preload {name}: {exc!r}", file=sys.stderr)
        else:
            loaded.append(name)
    if "matplotlib.pyplot" in sys.modules:
        _warm_matplotlib()
    gc.collect()
    return loaded


def _warm_matplotlib() -> None:
    """One chart drawn and saved in memory, then closed: figure numbers start at 1 again."""
    pyplot = sys.modules["matplotlib.pyplot"]
    figure, axes = pyplot.subplots()
    axes.plot([1, 2, 3], [3, 1, 2])
    axes.set_title("warm-up")
    figure.savefig(io.BytesIO(), format="png")
    pyplot.close("all")
    font_manager = sys.modules.get("matplotlib.font_manager")
    if font_manager is not None:
        font_manager._get_font.cache_clear()  # its fonts hold their files open
    gc.collect()


def build_facts(environ: dict[str, str]) -> launch.Facts:
    venv_bin = os.path.dirname(sys.executable)
    identities: dict[str, launch.Identity] = {}
    stdio: tuple[tuple[str, str], ...] = ()
    for name in launch.SERVED_NAMES:
        executable = f"{venv_bin}/{name}"
        if not os.access(executable, os.X_OK):
            continue
        measured = _calibrate(executable, environ)
        if measured is None or measured["prefix"] != sys.prefix:
            continue
        identities[measured["executable"]] = launch.Identity(
            executable=measured["executable"],
            base_executable=measured["base_executable"],
            path=tuple(measured["path"]),
        )
        stdio = tuple((encoding, errors) for encoding, errors in measured["stdio"])
    module_files, namespaces = _preloaded_names()
    interpreter = os.stat("/proc/self/exe")
    return launch.Facts(
        identities=identities,
        environ=environ,
        interpreter=(interpreter.st_dev, interpreter.st_ino),
        rlimits=_rlimits(),
        nice=os.getpriority(os.PRIO_PROCESS, 0),
        module_files=module_files,
        namespace_packages=namespaces,
        loaded=frozenset(sys.modules),
        quiet=bool(sys.flags.quiet),
        dont_write_bytecode=bool(sys.flags.dont_write_bytecode),
        flags_patchable=child.flags_patchable(),
        stdio=stdio,
    )


def _rlimits() -> dict[int, tuple[int, int]]:
    limits = {}
    for number in range(64):  # Linux has 16; Python does not say how many
        try:
            limits[number] = resource.getrlimit(number)
        except ValueError:
            break
    return limits


def _calibrate(executable: str, environ: dict[str, str]) -> dict[str, Any] | None:
    try:
        result = subprocess.run(  # noqa: S603 - the runtime's interpreter, a fixed program
            [executable, "-c", _CALIBRATION],
            executable=sys.executable,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=True,
        )
        measured = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"zygote: cannot measure {executable}: {exc!r}", file=sys.stderr)
        return None
    return measured if isinstance(measured, dict) else None


def _preloaded_names() -> tuple[frozenset[str], frozenset[str]]:
    """Top-level modules loaded from sys.path (a file or package), and namespace packages."""
    files, namespaces = set(), set()
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if "." in name or name.startswith("code_interpreter") or spec is None:
            continue
        if spec.origin is None and spec.submodule_search_locations is not None:
            namespaces.add(name)
        elif spec.origin not in (None, "built-in", "frozen"):
            files.add(name)
    return frozenset(files), frozenset(namespaces)


def listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            sys.exit(f"zygote: {path} exists and is not a socket")
        os.unlink(path)  # a previous zygote's
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # the socket file is the sandbox user's alone: 0600
    try:
        listener.bind(path)
    finally:
        os.umask(umask)
    listener.listen(BACKLOG)
    return listener


if __name__ == "__main__":
    main()
