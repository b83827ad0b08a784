"""The code interpreter's sandbox: untrusted code runs under bubblewrap, and nowhere else.

One fresh sandbox per execution (``sandbox.command``: what it can see and how its uid is
chosen): no network, a read-only runtime, the session directory read-write at ``/mnt/data``, a
private ``/tmp``, resource limits (``sandbox.process``, ``sandbox.seccomp``), memory for the
whole tree (``sandbox.memory``), a disk quota (``sandbox.files``), and a wall-clock timeout that
kills the whole process tree (``sandbox.run``). ``sandbox.api`` holds the entry points and
``sandbox.limits`` what an execution may use and gives back.

A session's sandbox may instead stay alive between its executions (``sandbox.warm``: the pool
and the run; ``sandbox.warm_sandbox``: one warm sandbox, under the same rules;
``sandbox.warm_python``: what its zygote runs for the host; ``sandbox.warm_supervise``: its
limits), so the next run pays no sandbox start.

``execute()`` blocks; call it from a thread (``asyncio.to_thread``). It is safe to call from many
threads at once; bounding how many run at once is the caller's job.
"""

from code_interpreter.sandbox.api import (
    available_languages,
    canonical_language,
    check_sandbox,
    execute,
    sandbox_status,
    session_uids,
)
from code_interpreter.sandbox.command import SANDBOX_MOUNT
from code_interpreter.sandbox.files import OutputFile, disk_usage, open_output, scan_outputs
from code_interpreter.sandbox.limits import (
    ExecutionResult,
    Limits,
    SandboxError,
    SandboxUnavailable,
    clamp_timeout,
    default_limits,
)
from code_interpreter.sandbox.memory import memory_enforcement

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
