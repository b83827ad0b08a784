"""One execution in a fresh sandbox, from its command line to its result: what ran out
(time, memory, output, disk) and the notes LibreChat's clients show for it."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from code_interpreter.sandbox.command import (
    LANGUAGES,
    Config,
    build_argv,
    checked_env,
    sandbox_env,
)
from code_interpreter.sandbox.files import disk_usage, hand_over, settled_usage, trim_to
from code_interpreter.sandbox.limits import (
    ExecutionResult,
    Limits,
    SandboxError,
    clamp_timeout,
)
from code_interpreter.sandbox.memory import start_guard
from code_interpreter.sandbox.process import Channels, Run, StartError, code_file, run_bwrap

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


def session_dir_taken(
    config: Config, workdir: Path, uid: int | None
) -> tuple[Path, int | None, int]:
    """The session directory, checked (a real directory, not a link), resolved and handed to
    the run's uid when running as root; with that uid and the bytes it already holds."""
    try:
        info = os.stat(workdir, follow_symlinks=False)
    except FileNotFoundError:
        raise ValueError(f"Session directory {workdir} does not exist") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"Session directory {workdir} is not a directory")
    workdir = workdir.resolve()
    if config.as_root:
        uid = config.scratch_uid if uid is None else uid
        return workdir, uid, hand_over(workdir, uid=uid, gid=uid)
    return workdir, None, disk_usage(workdir)


def execute_in(
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
    workdir, uid, used = session_dir_taken(config, workdir, uid)
    limits = checked_limits(limits)
    remaining = max(0, limits.disk_quota_bytes - used)
    quota_bound = remaining < limits.max_file_bytes  # then a file too large means quota exceeded
    rlimits = limits.rlimits(disk_left=remaining)
    environment = sandbox_env(lang, memory_bytes=limits.memory_bytes)
    extra_env = checked_env(dict(env or {}))

    font_caches = mpl_font_caches(str(config.runtime_dir))
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
                disk_room=lambda: disk_room(workdir, limits, used),
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
    return result_of(run, limits, workdir, used_before=used, quota_bound=quota_bound, config=config)


def checked_limits(limits: Limits) -> Limits:
    if min(limits.cpu_s, limits.memory_bytes, limits.max_processes, limits.max_open_files) <= 0:
        raise ValueError("Limits must be positive")
    timeout = clamp_timeout(limits.timeout_s)
    if timeout == limits.timeout_s:
        return limits
    return replace(limits, timeout_s=timeout)


@lru_cache(maxsize=8)
def mpl_font_caches(runtime_dir: str) -> tuple[str, ...]:
    return tuple(
        sorted(path.name for path in Path(runtime_dir, "mplconfig").glob("fontlist-*.json"))
    )


def disk_room(workdir: Path, limits: Limits, used_before: int) -> int:
    """What the session may still write; below 0 once this execution took it over its quota
    (it may have started over it: then it may not grow)."""
    return max(limits.disk_quota_bytes, used_before) - disk_usage(workdir)


def result_of(
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
    used_after = settled_usage(workdir)  # what writeback adds later is counted now
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
