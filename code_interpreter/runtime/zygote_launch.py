"""Whether the zygote can serve a ``python3`` invocation faithfully, and with which ``sys`` state.

The zygote serves an invocation only when all of these hold; otherwise the client execs the real
interpreter (which is always faithful, only slower):

1. The client would exec the interpreter the zygote runs (same file: st_dev and st_ino).
2. ``argv[0]`` resolves, as CPython's getpath does (``abspath(argv[0])`` when it holds a ``/``,
   else the first executable ``$PATH/argv[0]``), to exactly ``<venv>/bin/python3`` or
   ``<venv>/bin/python`` of the zygote's own virtualenv.
3. Options are only ``-c CMD``, ``-m MOD``, ``-u``, ``-q``, ``-B`` (grouped or not, as in ``-uc
   CMD`` or ``-cCMD``), optionally ``--``, then a script path, ``-`` or nothing. Any other option
   (``-I -S -E -s -O -X -W -i -P -b -d -v -x -R -h -V --version --help...``) starts the real one.
4. The environment has no entry without ``=`` and no name twice, and every variable read at
   start-up has the zygote's own value (or is absent in both): ``LANG``, ``LC_ALL``,
   ``LC_CTYPE``, ``TZ``, ``HOME``, ``MATPLOTLIBRC``, ``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME``,
   ``GLIBC_TUNABLES`` and every name starting with ``PYTHON``, ``LD_``, ``MALLOC_``, ``MPL``,
   ``OMP_``, ``OPENBLAS_``, ``GOTO_``, ``MKL_``, ``KMP_``, ``BLIS_``, ``NUMPY_``, ``NPY_`` or
   ``PANDAS_`` (so ``PYTHONHASHSEED``, ``PYTHONHOME``, ``PYTHONWARNINGS``, ``PYTHONUTF8``... fall
   back), except the four applied per run: ``PYTHONPATH``, ``PYTHONUNBUFFERED``,
   ``PYTHONDONTWRITEBYTECODE`` and ``PYTHONBREAKPOINT``.
5. No resource limit's hard value is above the zygote's, the soft limits on address space and
   data (``RLIMIT_AS``, ``RLIMIT_DATA``: the preloaded memory already counts) are not below its
   own, and the nice value is not below it.
6. Stdin mode (``-`` or no script) has a stdin that is open and not a terminal (a terminal
   means the interactive prompt); a script is a readable regular file that is not a directory,
   a zip archive or compiled bytecode (``.pyc`` or its magic number); ``-m MOD`` names a module
   the zygote has not imported (nor ``MOD.__main__``), as runpy warns when it has.
7. No ``sys.path`` entry the invocation adds before the runtime's own (the script's directory,
   the working directory for ``-c``, ``-`` and ``-m``, each ``$PYTHONPATH`` entry) holds a
   module or package named like one the zygote preloaded from ``sys.path`` (``json.py``,
   ``numpy/__init__.py``, ...), nor is a file (a zip on ``$PYTHONPATH``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import resource
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

from code_interpreter.runtime.zygote_wire import PythonRequest

PER_RUN_VARIABLES = frozenset(
    {"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONBREAKPOINT"}
)
START_UP_VARIABLES = frozenset(
    {
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "HOME",
        "MATPLOTLIBRC",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "GLIBC_TUNABLES",
    }
)
START_UP_PREFIXES = (
    "PYTHON",
    "LD_",
    "MALLOC_",
    "MPL",
    "OMP_",
    "OPENBLAS_",
    "GOTO_",
    "MKL_",
    "KMP_",
    "BLIS_",
    "NUMPY_",
    "NPY_",
    "PANDAS_",
)
SERVED_NAMES = ("python3", "python")
_SERVED_OPTIONS = "uqB"
_MODULE_SUFFIXES = tuple(importlib.machinery.all_suffixes())


class Unservable(Exception):
    """The invocation needs a real start; the message says why (for the zygote's status)."""


@dataclass(frozen=True)
class Identity:
    """What a fresh interpreter started as one of the served names reports (measured at start)."""

    executable: str
    base_executable: str
    path: tuple[str, ...]  # sys.path without its first entry


@dataclass(frozen=True)
class Facts:
    """What the zygote knows about itself, fixed once it has preloaded."""

    identities: Mapping[str, Identity]  # by sys.executable
    environ: Mapping[str, str]
    interpreter: tuple[int, int]
    rlimits: Mapping[int, tuple[int, int]]
    nice: int
    module_files: frozenset[str]  # top-level modules it loaded from sys.path
    namespace_packages: frozenset[str]
    loaded: frozenset[str]  # every module in sys.modules
    quiet: bool
    dont_write_bytecode: bool
    flags_patchable: bool
    stdio: tuple[tuple[str, str], ...]  # (encoding, errors) of stdin, stdout, stderr


@dataclass(frozen=True)
class Plan:
    mode: str  # "command", "module", "file" or "stdin"
    target: str  # the command's source, the module's name or the script's __file__
    argv: tuple[str, ...]
    path: tuple[str, ...]
    identity: Identity
    environ: Mapping[str, str]
    unbuffered: bool
    dont_write_bytecode: bool
    quiet: bool


def plan(request: PythonRequest, *, cwd: str, facts: Facts) -> Plan:
    """The sys state for the invocation; raises Unservable when only a real start is faithful.

    Runs in the process that will serve it, after changing into the caller's directory.
    """
    if request.interpreter != facts.interpreter:
        raise Unservable("the client stands in for another interpreter")
    if not request.argv:
        raise Unservable("no argv[0]")
    environ = _environ(request.environ, facts)
    executable = _executable(request.argv[0], environ.get("PATH", ""), cwd)
    identity = facts.identities.get(executable)
    if identity is None:
        raise Unservable(f"would run as {executable!r}, not as the runtime's python3")
    mode, target, args, options = _options(request.argv)
    quiet = "q" in options
    dont_write = "B" in options or bool(environ.get("PYTHONDONTWRITEBYTECODE"))
    if (quiet, dont_write) != (facts.quiet, facts.dont_write_bytecode) and not (
        facts.flags_patchable
    ):
        raise Unservable("sys.flags would differ from the zygote's")
    _check_process(request, facts)
    if mode == "stdin":
        _check_stdin(request)
        argv = tuple(args) or ("",)
        path0 = ""
    elif mode == "command":
        argv, path0, target = ("-c", *args), "", target + "\n"
    elif mode == "module":
        if target in facts.loaded or f"{target}.__main__" in facts.loaded:
            raise Unservable(f"module {target} is already imported")
        argv, path0 = ("-m", *args), cwd
    else:
        _check_script(target)
        argv = (target, *args)
        path0 = os.path.dirname(os.path.realpath(target))
        target = target if target.startswith("/") else f"{cwd}/{target}"
    path, added = search_path(path0, environ.get("PYTHONPATH", ""), identity)
    _check_shadowing([path0, *added], facts, cwd)
    return Plan(
        mode=mode,
        target=target,
        argv=argv,
        path=path,
        identity=identity,
        environ=environ,
        unbuffered="u" in options or bool(environ.get("PYTHONUNBUFFERED")),
        dont_write_bytecode=dont_write,
        quiet=quiet,
    )


def read_at_start_up(name: str) -> bool:
    """Whether a variable must have the zygote's own value for the invocation to be served."""
    if name in PER_RUN_VARIABLES:
        return False
    return name in START_UP_VARIABLES or name.startswith(START_UP_PREFIXES)


def _environ(entries: list[bytes], facts: Facts) -> dict[str, str]:
    environ: dict[str, str] = {}
    for entry in entries:
        key, equals, value = entry.partition(b"=")
        name = os.fsdecode(key)
        if not equals or not key or name in environ:
            raise Unservable("an environment entry without a name, or a name set twice")
        environ[name] = os.fsdecode(value)
    differing = start_up_difference(environ, facts)
    if differing:
        raise Unservable(f"environment variable {differing} differs from the zygote's")
    return environ


def start_up_difference(environ: Mapping[str, str], facts: Facts) -> str | None:
    """The first variable read at start-up whose value is not the zygote's, if any."""
    for name in sorted(environ.keys() | facts.environ.keys()):
        if read_at_start_up(name) and environ.get(name) != facts.environ.get(name):
            return name
    return None


def _executable(argv0: str, path_variable: str, cwd: str) -> str:
    """sys.executable as CPython's getpath computes it (no normalisation, as it does)."""
    if "/" in argv0:
        return argv0 if argv0.startswith("/") else f"{cwd}/{argv0}"
    for entry in path_variable.split(":") if path_variable else ():
        candidate = f"{entry}{argv0}" if not entry or entry.endswith("/") else f"{entry}/{argv0}"
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o111:
            return candidate
    return ""


def _options(argv: list[str]) -> tuple[str, str, list[str], set[str]]:
    """(mode, target, remaining args, options), as CPython's getopt reads them."""
    options: set[str] = set()
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if len(arg) < 2 or arg[0] != "-":
            break
        if arg[1] == "-":
            raise Unservable(f"option {arg}")
        for position in range(1, len(arg)):
            option = arg[position]
            if option in ("c", "m"):
                value = arg[position + 1 :]
                if not value:
                    if index + 1 >= len(argv):
                        raise Unservable(f"-{option} without its argument")
                    index += 1
                    value = argv[index]
                return ("command" if option == "c" else "module"), value, argv[index + 1 :], options
            if option not in _SERVED_OPTIONS:
                raise Unservable(f"option -{option}")
            options.add(option)
        index += 1
    rest = argv[index:]
    if rest and rest[0] != "-":
        return "file", rest[0], rest[1:], options
    return "stdin", "", rest, options


def _check_process(request: PythonRequest, facts: Facts) -> None:
    if request.nice < facts.nice:
        raise Unservable("a nice value below the zygote's")
    for number, (soft, hard) in request.rlimits.items():
        own = facts.rlimits.get(number)
        if own is None or _above(hard, own[1]):
            raise Unservable(f"resource limit {number} above the zygote's")
        if number in (resource.RLIMIT_AS, resource.RLIMIT_DATA) and _above(own[0], soft):
            raise Unservable(f"memory limit {number} below the zygote's")


def _above(limit: int, other: int) -> bool:
    """Whether ``limit`` exceeds ``other`` (-1 is unlimited)."""
    return other != -1 and (limit == -1 or limit > other)


def _check_stdin(request: PythonRequest) -> None:
    if 0 not in request.fd_targets:
        raise Unservable("stdin is closed")
    if os.isatty(request.passed_fds[request.fd_targets.index(0)]):
        raise Unservable("stdin is a terminal: the interactive prompt")


def _check_script(script: str) -> None:
    try:
        info = os.stat(script)
        with open(script, "rb") as file:
            head = file.read(2)
    except OSError:
        raise Unservable("the script cannot be opened") from None
    if not stat.S_ISREG(info.st_mode):
        raise Unservable("the script is not a regular file")
    magic = importlib.util.MAGIC_NUMBER[:2]
    if script.endswith(".pyc") or head == magic or zipfile.is_zipfile(script):
        raise Unservable("the script is bytecode or a zip archive")


def search_path(
    path0: str, python_path: str, identity: Identity
) -> tuple[tuple[str, ...], list[str]]:
    """(sys.path, the entries it adds before the runtime's own): $PYTHONPATH entries made
    absolute and unique as site.py does, the runtime's after them, path0 first.

    Raises Unservable when $PYTHONPATH would reorder the runtime's own entries.
    """
    entries = [os.path.abspath(entry) for entry in python_path.split(":")] if python_path else []
    path = _unique([*entries, *identity.path])
    if [entry for entry in path if entry in identity.path] != list(identity.path):
        raise Unservable("$PYTHONPATH reorders the runtime's own sys.path")
    added = [entry for entry in _unique(entries) if entry not in identity.path]
    return (path0, *path), added


def _unique(entries: list[str]) -> list[str]:
    return list(dict.fromkeys(entries))


def _check_shadowing(entries: list[str], facts: Facts, cwd: str) -> None:
    for entry in entries:
        directory = entry or cwd
        try:
            names = os.listdir(directory)
        except NotADirectoryError:
            raise Unservable(f"sys.path entry {directory} is not a directory") from None
        except OSError:
            continue  # what the import system cannot list, it cannot import from either
        for name in names:
            shadowed = _module_named(name, directory, facts)
            if shadowed:
                raise Unservable(f"{directory}/{name} would shadow the preloaded {shadowed}")


def _module_named(name: str, directory: str, facts: Facts) -> str | None:
    """The preloaded top-level module a directory entry would replace, if any."""
    for suffix in _MODULE_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if stem in facts.module_files or stem in facts.namespace_packages:
                return stem
    if name in facts.namespace_packages:
        return name  # a new portion of the namespace package
    if name in facts.module_files:
        package = os.path.join(directory, name)
        if any(os.path.isfile(f"{package}/__init__{suffix}") for suffix in _MODULE_SUFFIXES):
            return name
    return None
