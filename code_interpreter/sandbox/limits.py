"""What an execution may use and what it gives back: ``Limits`` (defaults:
code_interpreter/defaults.py, overridden by the ``CODE_INTERPRETER_*`` settings), the
``ExecutionResult`` and the sandbox's errors."""

from __future__ import annotations

from dataclasses import dataclass

from code_interpreter import defaults
from code_interpreter.sandbox.command import Rlimits, setting


@dataclass(frozen=True)
class Limits:
    timeout_s: float = defaults.TIMEOUT_DEFAULT_S  # wall clock, kills the whole tree
    cpu_s: int = defaults.CPU_SECONDS
    # The whole execution: every process, shared memory, /tmp and /dev/shm (sandbox.memory).
    memory_bytes: int = defaults.MEMORY_BYTES
    max_processes: int = defaults.MAX_PROCESSES
    max_open_files: int = defaults.MAX_OPEN_FILES
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_output_bytes: int = defaults.MAX_OUTPUT_BYTES  # per stream
    disk_quota_bytes: int = defaults.DISK_QUOTA_BYTES  # for the whole session directory

    def rlimits(self, *, disk_left: int) -> Rlimits:
        """The per-process rlimits of one execution; no file may outgrow what the quota has left."""
        return Rlimits(
            cpu_s=self.cpu_s,
            data_bytes=self.memory_bytes,
            processes=self.max_processes,
            open_files=self.max_open_files,
            file_bytes=min(self.max_file_bytes, disk_left),
        )


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
        timeout_s=float(setting("TIMEOUT_DEFAULT", defaults.TIMEOUT_DEFAULT_S)),
        cpu_s=int(setting("CPU_SECONDS", defaults.CPU_SECONDS)),
        memory_bytes=int(setting("MEMORY_BYTES", defaults.MEMORY_BYTES)),
        max_processes=int(setting("MAX_PROCESSES", defaults.MAX_PROCESSES)),
        max_open_files=int(setting("MAX_OPEN_FILES", defaults.MAX_OPEN_FILES)),
        max_file_bytes=int(setting("MAX_FILE_BYTES", defaults.MAX_FILE_BYTES)),
        max_output_bytes=int(setting("MAX_OUTPUT_BYTES", defaults.MAX_OUTPUT_BYTES)),
        disk_quota_bytes=int(setting("DISK_QUOTA_BYTES", defaults.DISK_QUOTA_BYTES)),
    )


def clamp_timeout(timeout_s: float | None) -> float:
    """A requested timeout within (0, CODE_INTERPRETER_TIMEOUT_MAX]; None means the default."""
    if timeout_s is None:
        return float(setting("TIMEOUT_DEFAULT", defaults.TIMEOUT_DEFAULT_S))
    return min(max(float(timeout_s), 0.1), float(setting("TIMEOUT_MAX", defaults.TIMEOUT_MAX_S)))
