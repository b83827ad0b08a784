"""How an execution becomes a bubblewrap command line: configuration, languages and mounts.

What the sandbox sees: ``/usr`` (less ``/usr/local``) and the runtime read-only, a few harmless
``/etc`` files, the session directory at ``/mnt/data``, a private ``/tmp``, and nothing else.

Two ways to get an unprivileged uid, depending on who runs the service:

* as root, bubblewrap sets up the namespaces with its privileges (so any host path can be bound)
  and ``sandbox-dropuid`` (``runtime/dropuid.c``; ``setpriv`` where it was not built) drops to a
  host uid of the session's own, with no capabilities, before any user code runs. The uid is
  allocated per live session from ``CODE_INTERPRETER_SANDBOX_UID_BASE`` + [0, ``_SPAN``), unique
  in the database (``services``); ``RLIMIT_NPROC`` then counts one session's processes. Runs
  outside any session (the self-test, tools) use ``Config.scratch_uid``, just past that range.
* as any other user, bubblewrap makes a user namespace too: the sandbox's uid 65534 is the
  service's uid outside, processes are counted per namespace, and nested user namespaces are off.

Either way a seccomp filter (``sandbox.seccomp``) refuses new user namespaces and a few risky
kernel interfaces, and ``sandbox.process`` sets the resource limits before any code runs.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SANDBOX_MOUNT = "/mnt/data"
RUNTIME_MOUNT = "/opt/runtime"
CODE_DIR = "/run/code"
BUILD_DIR = "/tmp/.build"  # noqa: S108 - the sandbox's private /tmp
MPLCONFIG_DIR = "/tmp/.matplotlib"  # noqa: S108 - the sandbox's private /tmp
INNER_UID = 65534  # the sandbox's uid as code sees it in a user namespace
SANDBOX_PATH = f"{RUNTIME_MOUNT}/venv/bin:{RUNTIME_MOUNT}/node/node_modules/.bin:/usr/bin:/bin"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The sandbox's PID 1. It runs the code as its child, so the code keeps ordinary signal handling
# (a namespace's PID 1 ignores signals it has no handler for), reaps orphans, exits with the
# code's status (128 + N for signal N), and keeps its own job messages out of stderr. It keeps
# bubblewrap's parent-death signal: as the same uid as bubblewrap, that signal may reach it,
# where it could not reach code that has dropped to another uid.
INIT_SCRIPT = 'exec 3>&2 2>/dev/null; (exec 2>&3 3>&-; trap - INT QUIT; exec "$@") & wait $!'


def setting(name: str, default: Any) -> Any:
    """``settings.CODE_INTERPRETER_<name>``, or the default before settings exist or name it."""
    try:
        return getattr(settings, f"CODE_INTERPRETER_{name}", default)
    except ImproperlyConfigured:  # used outside Django (bench, install checks)
        return default


@dataclass(frozen=True)
class Config:
    bwrap: str | None  # absolute path, None when not installed
    runtime_dir: Path
    as_root: bool
    uid_base: int
    uid_span: int
    tmp_bytes: int
    shm_bytes: int

    @property
    def python(self) -> Path:
        return self.runtime_dir / "venv" / "bin" / "python3"

    @property
    def has_dropuid(self) -> bool:
        """Whether the install built sandbox-dropuid (runtime/dropuid.c); else setpriv is used."""
        return os.access(self.runtime_dir / "bin" / "sandbox-dropuid", os.X_OK)

    @property
    def scratch_uid(self) -> int:
        """Root mode: the uid of runs outside any session; never a session's."""
        return self.uid_base + self.uid_span


def uid_range() -> tuple[int, int]:
    """(base, span) of the host uids sessions' code runs as under a root-run service."""
    base, span = setting("SANDBOX_UID_BASE", 1_000_000_000), setting("SANDBOX_UID_SPAN", 100_000)
    return int(base), int(span)


def load_config() -> Config:
    default_runtime = _var_dir() / "sandbox-runtime"
    bwrap = str(setting("BWRAP", "bwrap"))
    uid_base, uid_span = uid_range()
    return Config(
        bwrap=_which(bwrap),
        runtime_dir=_resolved(str(setting("RUNTIME_DIR", default_runtime))),
        as_root=os.geteuid() == 0,
        uid_base=uid_base,
        uid_span=uid_span,
        tmp_bytes=int(setting("TMP_BYTES", 256 * 1024**2)),
        shm_bytes=int(setting("SHM_BYTES", 64 * 1024**2)),
    )


_REPOSITORY_VAR = Path(__file__).resolve().parents[2] / "var"
_bwrap_paths: dict[tuple[str, str], str] = {}


def _which(bwrap: str) -> str | None:  # per execution: remembered once found (may be installed)
    key = (bwrap, os.pathsep.join(os.get_exec_path()))
    if key not in _bwrap_paths and (found := shutil.which(bwrap, path=key[1])) is not None:
        _bwrap_paths[key] = found
    return _bwrap_paths.get(key)


@lru_cache(maxsize=8)
def _resolved(runtime_dir: str) -> Path:  # per execution too: the runtime's path, resolved once
    return Path(runtime_dir).resolve()


def _var_dir() -> Path:
    try:
        return Path(getattr(settings, "VAR_DIR", _REPOSITORY_VAR))
    except ImproperlyConfigured:
        return _REPOSITORY_VAR


# -- languages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Language:
    name: str
    description: str
    source: str  # file name under CODE_DIR
    argv: tuple[str, ...]  # "{src}" stands for the source file; args follow
    needs: tuple[str, ...]  # host paths (runtime-relative ones start with "runtime/")


def _compile_and_run(compiler: str, libraries: str = "") -> tuple[str, ...]:
    build = f'{compiler} -o {BUILD_DIR}/main "$0" {libraries}'.rstrip()
    script = f'mkdir -p {BUILD_DIR} && {build} && exec {BUILD_DIR}/main "$@"'
    return ("/bin/bash", "-c", script, "{src}")


_TS_SCRIPT = (
    f'mkdir -p {BUILD_DIR} && esbuild "$0" --log-level=warning --format=cjs --platform=node'
    f' --outfile={BUILD_DIR}/main.js && exec node {BUILD_DIR}/main.js "$@"'
)

LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language(
            "py",
            "Python 3 with numpy, pandas, matplotlib, scipy, scikit-learn, seaborn, sympy",
            "main.py",
            (f"{RUNTIME_MOUNT}/venv/bin/python3", "{src}"),
            ("runtime/venv/bin/python3",),
        ),
        Language("js", "JavaScript on Node.js", "main.js", ("node", "{src}"), ("/usr/bin/node",)),
        Language(
            "ts",
            "TypeScript (transpiled by esbuild, run on Node.js)",
            "main.ts",
            ("/bin/bash", "-c", _TS_SCRIPT, "{src}"),
            ("/usr/bin/node", "runtime/node/node_modules/.bin/esbuild"),
        ),
        Language(
            "bash",
            "Bash, with python3 (same libraries as py) and node on PATH",
            "main.sh",
            ("/bin/bash", "{src}"),
            ("/usr/bin/bash",),
        ),
        Language(
            "c", "C (gcc)", "main.c", _compile_and_run("cc -O2 -std=gnu17", "-lm"), ("/usr/bin/cc",)
        ),
        Language(
            "cpp",
            "C++ (g++)",
            "main.cpp",
            _compile_and_run("c++ -O2 -std=gnu++20"),
            ("/usr/bin/c++",),
        ),
        Language(
            "java",
            "Java (single-file source launcher)",
            "Main.java",
            ("java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m", "{src}"),
            ("/usr/bin/java",),
        ),
    )
}

ALIASES = {
    "python": "py",
    "python3": "py",
    "javascript": "js",
    "node": "js",
    "nodejs": "js",
    "typescript": "ts",
    "sh": "bash",
    "shell": "bash",
    "c++": "cpp",
}


def language_available(lang: Language, config: Config) -> bool:
    for need in lang.needs:
        runtime_relative = need.startswith("runtime/")
        path = config.runtime_dir / need.removeprefix("runtime/") if runtime_relative else need
        if not os.access(path, os.X_OK):
            return False
    return True


@lru_cache(maxsize=4)
def node_flags(node: str = "/usr/bin/node") -> tuple[str, ...]:
    """Node 20.10+ (before 22.7, where it is the default) can detect ES modules in a .js file."""
    try:
        version = subprocess.run(  # noqa: S603 - fixed path, no input
            [node, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return ()
    match = re.match(r"v(\d+)\.(\d+)", version)
    if match and (20, 10) <= (int(match[1]), int(match[2])) < (22, 7):
        return ("--experimental-detect-module",)
    return ()


# -- the command line --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rlimits:
    cpu_s: int
    data_bytes: int
    processes: int
    open_files: int
    file_bytes: int

    def resource_limits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) for prlimit(2); the CPU limit warns with SIGXCPU first."""
        return [
            (resource.RLIMIT_CPU, (self.cpu_s, self.cpu_s + 1)),
            (resource.RLIMIT_DATA, (self.data_bytes, self.data_bytes)),
            (resource.RLIMIT_NPROC, (self.processes, self.processes)),
            (resource.RLIMIT_NOFILE, (self.open_files, self.open_files)),
            (resource.RLIMIT_FSIZE, (self.file_bytes, self.file_bytes)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]


# Host /etc entries the toolchains read (the loader's cache, `cc` and `java` links, the JDK's
# configuration); nothing with secrets or host identity in it.
_HOST_ETC = ("ld.so.cache", "alternatives", "localtime", "java-17-openjdk", "java-21-openjdk")


def _host_root_links() -> list[str]:
    """/bin, /lib... as the host has them: symlinks into /usr on merged-/usr systems."""
    argv: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/", name)
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{name}"]
    return argv


def sandbox_env(lang: Language, *, memory_bytes: int) -> dict[str, str]:
    """The code's environment (fixed by us, so safe for the root-run init and uid drop too)."""
    heap_mb = max(32, memory_bytes * 3 // 4 // 1024**2)
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": "/tmp",  # noqa: S108 - the sandbox's private /tmp
        "TMPDIR": "/tmp",  # noqa: S108
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",  # the runtime is read-only and pre-compiled
        "PYTHONUNBUFFERED": "1",  # output printed before a timeout kill is kept
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": MPLCONFIG_DIR,
        # Few cores, many concurrent executions: one BLAS/OpenMP thread each.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # V8 collects harder before the data limit makes allocation fail outright.
        "NODE_OPTIONS": f"--max-old-space-size={heap_mb}",
    }
    if lang.name == "py":
        env["PYTHONPATH"] = SANDBOX_MOUNT  # like `python -c`: modules next to the data import
    return env


def checked_env(extra: dict[str, str]) -> dict[str, str]:
    """Variables from the caller, which may name anything: LD_PRELOAD, BASH_ENV..."""
    for key, value in extra.items():
        if not _ENV_NAME.fullmatch(key) or "\0" in value:
            raise ValueError(f"Invalid environment variable: {key!r}")
    return dict(extra)


def build_argv(
    *,
    config: Config,
    lang: Language,
    args: tuple[str, ...],
    workdir: Path,
    code_path: str,
    status_fd: int,
    block_fd: int,
    seccomp_fd: int | None,
    rlimits: Rlimits,
    env: dict[str, str],
    extra_env: dict[str, str],
    font_caches: tuple[str, ...],
    uid: int | None,
) -> list[str]:
    """bubblewrap's command line; ``uid`` is the host uid code runs as (root mode only)."""
    binds = ["--perms", "0755", "--dir", CODE_DIR]
    binds += ["--ro-bind", code_path, f"{CODE_DIR}/{lang.source}"]
    argv = bwrap_argv(
        config=config,
        workdir=workdir,
        status_fd=status_fd,
        block_fd=block_fd,
        seccomp_fd=seccomp_fd,
        env=env,
        font_caches=font_caches,
        binds=binds,
    )
    return (
        argv
        + init_argv(config=config, uid=uid, extra_env=extra_env)
        + command_argv(lang, args, rlimits=rlimits)
    )


def bwrap_argv(
    *,
    config: Config,
    workdir: Path,
    status_fd: int,
    block_fd: int,
    seccomp_fd: int | None,
    env: dict[str, str],
    font_caches: tuple[str, ...],
    binds: list[str],
) -> list[str]:
    """bubblewrap and its options, up to the command: namespaces, mounts (``binds`` under
    /run), environment."""
    assert config.bwrap is not None
    argv = [config.bwrap]
    if config.as_root:
        argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        # Only for the uid drop, which drops them all before the code runs (and chdir into a 0700
        # session directory owned by the sandbox's uid needs DAC_READ_SEARCH until then).
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_READ_SEARCH"):
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-all", "--unshare-user", "--disable-userns"]
        argv += ["--uid", str(INNER_UID), "--gid", str(INNER_UID)]
    # PID 1 is our small init (INIT_SCRIPT), reaped by bubblewrap when it exits; bubblewrap's
    # own init would outlive bubblewrap and be left to the host's init, which in a container
    # may never reap it.
    argv += ["--as-pid-1", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    # The sandbox waits on block_fd until the caller has set its resource limits (prlimit(2)
    # on its PID 1, announced on status_fd): no limit-setting program runs inside.
    argv += ["--json-status-fd", str(status_fd), "--block-fd", str(block_fd)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    # Read-only system and runtime; /usr/local holds the host's own tools, so it is hidden.
    argv += [
        "--ro-bind",
        "/usr",
        "/usr",
        "--ro-bind",
        str(config.runtime_dir / "empty"),
        "/usr/local",
    ]
    argv += _host_root_links()
    argv += ["--perms", "0755", "--dir", "/opt"]
    argv += ["--ro-bind", str(config.runtime_dir), RUNTIME_MOUNT]
    argv += ["--perms", "0755", "--dir", "/etc"]
    for name in ("passwd", "group", "hosts", "nsswitch.conf"):
        argv += ["--symlink", f"{RUNTIME_MOUNT}/etc/{name}", f"/etc/{name}"]
    for name in _HOST_ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    # Private, size-capped /tmp and /dev/shm (tmpfs is memory: unbounded, it would be a bomb).
    argv += ["--perms", "1777", "--size", str(config.tmp_bytes), "--tmpfs", "/tmp"]  # noqa: S108
    argv += ["--perms", "1777", "--size", str(config.shm_bytes), "--tmpfs", "/dev/shm"]  # noqa: S108
    # matplotlib wants a writable config dir; its font cache, built at install, is linked in.
    argv += ["--perms", "1777", "--dir", MPLCONFIG_DIR]
    for name in font_caches:
        argv += ["--symlink", f"{RUNTIME_MOUNT}/mplconfig/{name}", f"{MPLCONFIG_DIR}/{name}"]
    argv += ["--perms", "0755", "--dir", "/mnt", "--bind", str(workdir), SANDBOX_MOUNT]
    argv += ["--perms", "0755", "--dir", "/run", *binds]
    argv += ["--remount-ro", "/", "--remount-ro", "/dev", "--chdir", SANDBOX_MOUNT, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv


def init_argv(*, config: Config, uid: int | None, extra_env: dict[str, str]) -> list[str]:
    """From ``--`` to the code's command: the init, the uid drop and the caller's variables."""
    argv: list[str] = []
    # bash -p: no BASH_ENV, no functions or shell options from the environment.
    init = ["/bin/bash", "-p", "-c", INIT_SCRIPT, "sandbox-init"]
    if config.as_root:
        # Init and the uid drop run as root: the caller's variables (an LD_PRELOAD would run
        # in them) are added only once the code runs as the session's uid.
        assert uid is not None, "a root-run sandbox needs the uid its code runs as"
        argv += ["--", *init, *drop_argv(config=config, uid=uid, extra_env=extra_env)]
    else:
        for key, value in extra_env.items():
            argv += ["--setenv", key, value]
        argv += ["--", *init]
    return argv


def drop_argv(*, config: Config, uid: int, extra_env: dict[str, str]) -> list[str]:
    """Root mode: the uid drop, then the caller's variables, before the code's command."""
    if config.has_dropuid:
        argv = [f"{RUNTIME_MOUNT}/bin/sandbox-dropuid", str(uid), str(uid)]
    else:
        argv = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all", "--"]
    if extra_env:
        argv += ["/usr/bin/env", *(f"{key}={value}" for key, value in extra_env.items())]
    return argv


def command_argv(lang: Language, args: tuple[str, ...], *, rlimits: Rlimits) -> list[str]:
    """The language's command for the source at CODE_DIR, with the caller's arguments."""
    command = [part.replace("{src}", f"{CODE_DIR}/{lang.source}") for part in lang.argv]
    if lang.name == "js":
        command[1:1] = node_flags()
    if lang.name == "java":
        command[1:1] = [f"-Xmx{max(32, rlimits.data_bytes // 2 // 1024**2)}m"]
    return command + list(args)
