"""The code interpreter's sandbox: untrusted code runs under bubblewrap, and nowhere else.

One fresh sandbox per execution (see ``sandbox_command`` for what it can see and how its uid is
chosen): no network, a read-only runtime, the session directory read-write at ``/mnt/data``, a
private ``/tmp``, resource limits, memory for the whole tree (``sandbox_memory``), a disk quota,
and a wall-clock timeout that kills the whole process tree.
If bubblewrap or the runtime is missing, ``sandbox_status()`` says what to install and
``execute()`` raises ``SandboxUnavailable``: there is no unsandboxed fallback.

``execute()`` blocks; call it from a thread (``asyncio.to_thread``). It is safe to call from many
threads at once; bounding how many run at once is the caller's job.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from django.core import checks

from code_interpreter.sandbox_command import (
    ALIASES,
    LANGUAGES,
    SANDBOX_MOUNT,
    Config,
    Rlimits,
    build_argv,
    checked_env,
    language_available,
    load_config,
    sandbox_env,
    setting,
    uid_range,
)
from code_interpreter.sandbox_files import (
    OutputFile,
    disk_usage,
    hand_over,
    open_output,
    scan_outputs,
    trim_to,
)
from code_interpreter.sandbox_memory import memory_enforcement, start_guard
from code_interpreter.sandbox_process import Channels, Run, StartError, code_file, run_bwrap

__all__ = [
    "SANDBOX_MOUNT",
    "ExecutionResult",
    "Limits",
    "OutputFile",
    "SandboxError",
    "SandboxUnavailable",
    "available_languages",
    "canonical_language",
    "check_sandbox",
    "clamp_timeout",
    "default_limits",
    "disk_usage",
    "execute",
    "memory_enforcement",
    "open_output",
    "sandbox_status",
    "scan_outputs",
    "session_uids",
]

MiB = 1024**2
_OOM_MARKERS = (
    "MemoryError",
    "JavaScript heap out of memory",
    "Fatal process out of memory",
    "std::bad_alloc",
    "Cannot allocate memory",
    "OutOfMemoryError",
    "out of memory",
)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 30.0  # wall clock, kills the whole tree
    cpu_s: int = 60
    # The whole execution: every process, shared memory, /tmp and /dev/shm (sandbox_memory).
    memory_bytes: int = 512 * MiB
    max_processes: int = 64
    max_open_files: int = 256
    max_file_bytes: int = 100 * MiB
    max_output_bytes: int = MiB  # per stream
    disk_quota_bytes: int = 500 * MiB  # for the whole session directory


@dataclass(frozen=True)
class ExecutionResult:
    stdout: str
    stderr: str  # ends with a note on any limit hit: "Time limit exceeded", "Out of memory", ...
    exit_code: int | None
    signal: int | None
    status: str  # "ok" | "error" | "timeout" | "oom" | "output_limit" | "disk_quota"
    wall_time_s: float
    stdout_truncated: bool
    stderr_truncated: bool
    disk_bytes: int = 0  # what the session directory holds afterwards, as the quota counts it


class SandboxError(Exception):
    """The sandbox could not run the code; ``permanent`` when retrying cannot help."""

    permanent: bool = False

    def __init__(self, message: str, *, permanent: bool | None = None) -> None:
        super().__init__(message)
        if permanent is not None:
            self.permanent = permanent


class SandboxUnavailable(SandboxError):
    """bubblewrap or the runtime is missing; the message says what to install."""

    permanent = True


def default_limits() -> Limits:
    """Limits from the ``CODE_INTERPRETER_*`` settings."""
    return Limits(
        timeout_s=float(setting("TIMEOUT_DEFAULT", 30.0)),
        cpu_s=int(setting("CPU_SECONDS", 60)),
        memory_bytes=int(setting("MEMORY_BYTES", 512 * MiB)),
        max_processes=int(setting("MAX_PROCESSES", 64)),
        max_open_files=int(setting("MAX_OPEN_FILES", 256)),
        max_file_bytes=int(setting("MAX_FILE_BYTES", 100 * MiB)),
        max_output_bytes=int(setting("MAX_OUTPUT_BYTES", MiB)),
        disk_quota_bytes=int(setting("DISK_QUOTA_BYTES", 500 * MiB)),
    )


def clamp_timeout(timeout_s: float | None) -> float:
    """A requested timeout within (0, CODE_INTERPRETER_TIMEOUT_MAX]; None means the default."""
    if timeout_s is None:
        return float(setting("TIMEOUT_DEFAULT", 30.0))
    return min(max(float(timeout_s), 0.1), float(setting("TIMEOUT_MAX", 300.0)))


# -- readiness and languages -------------------------------------------------------------------

_probed: set[Config] = set()
_probe_lock = threading.Lock()


def _missing(config: Config) -> str | None:
    if config.bwrap is None:
        return (
            "bubblewrap (bwrap) is not installed, so code execution is disabled. "
            "Install it with `apt-get install -y bubblewrap` or run `make sandbox`."
        )
    if config.as_root and not config.has_dropuid and not os.access("/usr/bin/setpriv", os.X_OK):
        return "/usr/bin/setpriv is missing: install it with `apt-get install -y util-linux`."
    if not os.access("/usr/bin/node", os.X_OK):
        return "Node.js is missing: run `make sandbox` or `apt-get install -y nodejs`."
    runtime = config.runtime_dir
    if not (
        os.access(config.python, os.X_OK)
        and (runtime / "etc" / "passwd").is_file()
        and (runtime / "empty").is_dir()
    ):
        return f"The sandbox runtime is missing in {runtime}: run `make sandbox`."
    return None


def sandbox_status() -> tuple[bool, str]:
    """(ready, message) for start-up checks and /readyz; runs one real sandbox the first time."""
    config = load_config()
    problem = _unready(config)
    if problem:
        return False, problem
    names = ", ".join(available_languages())
    memory = memory_enforcement().describe()
    return True, f"Sandbox ready (bubblewrap {config.bwrap}; languages: {names}; {memory})."


def _unready(config: Config) -> str | None:
    """What keeps the sandbox from running, if anything (the self-test passes once per config)."""
    problem = _missing(config)
    if problem or config in _probed:
        return problem
    with _probe_lock:
        if config not in _probed:
            problem = _probe(config)
            if problem is None:
                _probed.add(config)
    return problem


def _probe(config: Config) -> str | None:
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as probe_dir:
        limits = Limits(timeout_s=20.0)
        try:
            result = _execute(
                config, "bash", 'test -w "$PWD" && exit 0', (), Path(probe_dir), limits, None
            )
        except SandboxError as exc:
            return f"bubblewrap cannot start a sandbox here: {exc}"
    if result.status != "ok":
        return f"The sandbox's self-test failed ({result.status}): {result.stderr.strip()[-500:]}"
    return None


def check_sandbox(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """A Django system check (register it in the app's ready()): what is missing, at start."""
    ready, message = sandbox_status()
    if ready:
        return []
    hint = "Code execution is refused until then; `make sandbox` installs what is missing."
    return [checks.Warning(message, hint=hint, id="code_interpreter.W001")]


def available_languages() -> dict[str, str]:
    """Canonical language -> description, for the languages whose toolchain is installed."""
    config = load_config()
    return {
        name: lang.description
        for name, lang in LANGUAGES.items()
        if language_available(lang, config)
    }


def canonical_language(lang: str) -> str | None:
    """The canonical name of a language or alias ("python3" is "py", "node" is "js", "sh" is
    "bash"), or None when it is unknown or its toolchain is not installed here."""
    return _canonical(lang, load_config())


def _canonical(lang: str, config: Config) -> str | None:
    name = lang.strip().lower()
    name = ALIASES.get(name, name)
    if name in LANGUAGES and language_available(LANGUAGES[name], config):
        return name
    return None


# -- execution ---------------------------------------------------------------------------------


def execute(
    *,
    lang: str,
    code: str,
    args: Sequence[str] = (),
    workdir: Path,
    limits: Limits = Limits(),
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> ExecutionResult:
    """Run ``code`` in a fresh sandbox with ``workdir`` at /mnt/data (also its working directory).

    Under a root-run service the code runs as host ``uid``: the session's own (one live session
    per uid, ``services`` allocates them); without one, as ``Config.scratch_uid``.

    Raises ValueError for an unsupported language or a bad argument, SandboxUnavailable when
    the sandbox is not installed, and SandboxError when it could not start.
    """
    config = load_config()
    problem = _unready(config)
    if problem:
        raise SandboxUnavailable(problem)
    name = _canonical(lang, config)
    if name is None:
        raise ValueError(f"Unsupported language: {lang}")
    return _execute(config, name, code, tuple(args), Path(workdir), limits, env, uid)


def session_uids() -> range | None:
    """The host uids sessions' code may run as (root mode), or None (user namespaces)."""
    if os.geteuid() != 0:
        return None
    base, span = uid_range()
    return range(base, base + span)


def _execute(
    config: Config,
    name: str,
    code: str,
    args: tuple[str, ...],
    workdir: Path,
    limits: Limits,
    env: Mapping[str, str] | None,
    uid: int | None = None,
) -> ExecutionResult:
    lang = LANGUAGES[name]
    try:
        info = os.stat(workdir, follow_symlinks=False)
    except FileNotFoundError:
        raise ValueError(f"Session directory {workdir} does not exist") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"Session directory {workdir} is not a directory")
    workdir = workdir.resolve()
    limits = _checked(limits)
    if config.as_root:
        uid = config.scratch_uid if uid is None else uid
        used = hand_over(workdir, uid=uid, gid=uid)
    else:
        uid, used = None, disk_usage(workdir)
    remaining = max(0, limits.disk_quota_bytes - used)
    quota_bound = remaining < limits.max_file_bytes  # then a file too large means quota exceeded
    rlimits = Rlimits(
        cpu_s=limits.cpu_s,
        data_bytes=limits.memory_bytes,
        processes=limits.max_processes,
        open_files=limits.max_open_files,
        file_bytes=min(limits.max_file_bytes, remaining),
    )
    environment = sandbox_env(lang, memory_bytes=limits.memory_bytes)
    extra_env = checked_env(dict(env or {}))

    font_caches = _font_caches(str(config.runtime_dir))
    with code_file(code) as code_path:

        def argv_for(channels: Channels) -> list[str]:
            return build_argv(
                config=config,
                lang=lang,
                args=args,
                workdir=workdir,
                code_path=str(code_path),
                status_fd=channels.status_fd,
                block_fd=channels.block_fd,
                seccomp_fd=channels.seccomp_fd,
                rlimits=rlimits,
                env=environment,
                extra_env=extra_env,
                font_caches=font_caches,
                uid=uid,
            )

        try:
            run = run_bwrap(
                argv_for,
                rlimits=rlimits,
                timeout_s=limits.timeout_s,
                max_output_bytes=limits.max_output_bytes,
                disk_room=lambda: _disk_room(workdir, limits, used),
                disk_room_at_start=max(limits.disk_quota_bytes, used) - used,
                guard_memory=lambda pid, pidfd: start_guard(
                    pid=pid,
                    pidfd=pidfd,
                    memory_bytes=limits.memory_bytes,
                    max_processes=limits.max_processes,
                ),
            )
        except StartError as exc:
            raise SandboxError(str(exc)) from exc
    return _result(run, limits, workdir, used_before=used, quota_bound=quota_bound, config=config)


def _checked(limits: Limits) -> Limits:
    if min(limits.cpu_s, limits.memory_bytes, limits.max_processes, limits.max_open_files) <= 0:
        raise ValueError("Limits must be positive")
    timeout = clamp_timeout(limits.timeout_s)
    if timeout == limits.timeout_s:
        return limits
    return replace(limits, timeout_s=timeout)


@lru_cache(maxsize=8)
def _font_caches(runtime_dir: str) -> tuple[str, ...]:
    return tuple(
        sorted(path.name for path in Path(runtime_dir, "mplconfig").glob("fontlist-*.json"))
    )


def _disk_room(workdir: Path, limits: Limits, used_before: int) -> int:
    """What the session may still write; below 0 once this execution took it over its quota
    (it may have started over it: then it may not grow)."""
    return max(limits.disk_quota_bytes, used_before) - disk_usage(workdir)


def _result(
    run: Run, limits: Limits, workdir: Path, *, used_before: int, quota_bound: bool, config: Config
) -> ExecutionResult:
    stdout, stderr = run.stdout.text(), run.stderr.text()
    exit_code: int | None = None
    signal_number: int | None = None
    if run.kill_reason is not None:
        status, signal_number = run.kill_reason, int(signal.SIGKILL)
    else:
        if run.exit_code is None and run.returncode == 1 and stderr.startswith("bwrap: "):
            raise SandboxError(f"bubblewrap failed: {stderr.splitlines()[0][7:]}")
        code = run.exit_code if run.exit_code is not None else run.returncode
        if code < 0:
            signal_number = -code
        elif 128 < code <= 128 + 64:  # how bubblewrap and shells report a signal
            signal_number = code - 128
        else:
            exit_code = code
        status = "ok" if exit_code == 0 else "error"
    note = None
    if status == "error":
        status, note = _diagnose(
            stderr, signal_number, limits, wall_time_s=run.wall_time_s, quota_bound=quota_bound
        )
    if status == "error" and "No space left on device" in stderr[-8192:]:
        status, note = _no_space(workdir, limits, config)
    used_after = disk_usage(workdir)
    allowed = max(limits.disk_quota_bytes, used_before)
    if used_after > allowed:
        # Between two checks the code could write past its quota: the writes that crossed it
        # are cut, as a filesystem quota would have refused them.
        used_after = trim_to(workdir, allowed, since=run.started_at)
        if status != "timeout":
            status, note = "disk_quota", None
    if note is None:
        note = _note(status, limits, run)
    if note:
        stderr = f"{stderr}\n{note}" if stderr and not stderr.endswith("\n") else f"{stderr}{note}"
    return ExecutionResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=exit_code,
        signal=signal_number,
        status=status,
        wall_time_s=round(run.wall_time_s, 4),
        stdout_truncated=run.stdout.truncated,
        stderr_truncated=run.stderr.truncated,
        disk_bytes=used_after,
    )


def _diagnose(
    stderr: str,
    signal_number: int | None,
    limits: Limits,
    *,
    wall_time_s: float,
    quota_bound: bool,
) -> tuple[str, str | None]:
    """The status of a failed run: was it a limit, and which?"""
    tail = stderr[-8192:]
    cpu_note = f"Time limit exceeded: the CPU time limit of {limits.cpu_s} s was reached."
    if signal_number == signal.SIGXCPU:
        return "timeout", cpu_note
    if signal_number == signal.SIGKILL and wall_time_s >= limits.cpu_s:
        # Code that ignores SIGXCPU is killed one CPU second later, at the hard limit.
        return "timeout", cpu_note
    too_large = signal_number == signal.SIGXFSZ or "File too large" in tail
    if too_large and quota_bound:
        return "disk_quota", None
    if too_large:
        return (
            "error",
            f"File size limit exceeded: files may hold {limits.max_file_bytes // MiB} MiB.",
        )
    if any(marker in tail for marker in _OOM_MARKERS):
        return "oom", None
    if signal_number is not None:
        try:
            name = signal.Signals(signal_number).name
        except ValueError:
            name = str(signal_number)
        return "error", f"Killed by signal {name}."
    return "error", None


def _no_space(workdir: Path, limits: Limits, config: Config) -> tuple[str, str | None]:
    """ENOSPC: a full /tmp or /dev/shm (memory, size-capped), or a full host disk."""
    disk = os.statvfs(workdir)
    if disk.f_bavail * disk.f_frsize < limits.max_file_bytes:
        return "disk_quota", "Disk quota exceeded: the host's disk is full; stopped."
    return (
        "oom",
        f"Out of memory: /tmp and /dev/shm are memory and hold {config.tmp_bytes // MiB} MiB and"
        f" {config.shm_bytes // MiB} MiB at most.",
    )


def _note(status: str, limits: Limits, run: Run) -> str | None:
    if status == "timeout":
        return f"Time limit exceeded: the execution was killed after {limits.timeout_s:g} s."
    if status == "oom":
        return (
            f"Out of memory: the execution may use {limits.memory_bytes // MiB} MiB, all its"
            " processes, shared memory and /tmp together."
        )
    if status == "disk_quota":
        quota_mib = limits.disk_quota_bytes // MiB
        return (
            f"Disk quota exceeded: the session's files may use {quota_mib} MiB (its own limit, or"
            " what the caller's other sessions leave of theirs); stopped."
        )
    if status == "output_limit":
        stream = "stdout" if run.stdout.truncated else "stderr"
        return (
            f"{stream} length exceeded: output truncated to {limits.max_output_bytes} bytes"
            " and the execution was stopped."
        )
    return None
