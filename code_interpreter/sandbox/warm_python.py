"""What a warm sandbox's zygote does for the host: ``py`` executions it serves itself, and
stateful chunks.

``serve`` asks the zygote for the ``python3`` of a ``py`` execution as the sandbox's ``python3``
client would ask for it, with the execution's stdio and what a process started by the agent
inherits (the agent says what that is in its first event, ``inherited``), so no process is
started between the host and the zygote's fork that runs the code. ``chunk`` runs a stateful
chunk in the zygote's state holder. Both read the zygote as ``zygote_client`` does: it is the
sandbox's, hence untrusted.
"""

from __future__ import annotations

import ast
import os
import select
import sys
import threading
from typing import TYPE_CHECKING, Any

from code_interpreter import zygote_client
from code_interpreter.sandbox.command import Config, Rlimits
from code_interpreter.sandbox.process import DRAIN_S, Run
from code_interpreter.sandbox.warm_supervise import WarmError, Watch

LIGHT_MAX_SOURCE = 64 * 1024  # longer code goes to the preloaded zygote without being parsed

if TYPE_CHECKING:
    from code_interpreter.sandbox.warm_sandbox import WarmSandbox


def inherited(
    config: Config, ready: dict[str, Any], fds: list[int]
) -> tuple[int | None, zygote_client.Inherited | None]:
    """The working directory's descriptor and what each process of the sandbox inherits, from
    the agent's ``ready`` event (sent before anything of the caller's ran). (None, None): every
    ``python3`` then starts through the agent."""
    cwd_fd, extra = (fds[0], fds[1:]) if fds else (None, [])
    for fd in extra:
        os.close(fd)
    try:
        info = os.stat(config.runtime_dir / "venv" / "bin" / ".real" / "python3")
        return cwd_fd, zygote_client.Inherited(
            umask=int(ready["umask"]),
            nice=int(ready["nice"]),
            rlimits=tuple((int(soft), int(hard)) for soft, hard in ready["rlimits"]),
            interpreter=(info.st_dev, info.st_ino),
        )
    except (KeyError, TypeError, ValueError, OSError):
        if cwd_fd is not None:
            os.close(cwd_fd)
        return None, None


def serve(
    warm: WarmSandbox,
    code: str,
    command: list[str],
    env: dict[str, str],
    stdio: list[int],
    rlimits: Rlimits,
) -> zygote_client.Served | None:
    """The zygote runs ``command`` as the sandbox's ``python3`` client would have it run:
    the client, the uid drop and the agent's fork are skipped, nothing else. Code that imports
    only the standard library goes to the light zygote (the same interpreter, nothing
    preloaded), the rest to the preloaded one. None: start it the usual way (no zygote yet, or
    an invocation it sends to the real interpreter)."""
    if warm.inherited is None or warm.cwd_fd is None:
        return None
    sockets = [warm.light_socket] if standard_library_only(code) else []
    for socket_path in [*sockets, warm.zygote_socket]:
        if not socket_path.exists():
            continue
        served = zygote_client.start_served(
            socket_path,
            command,
            env=env,
            cwd_fd=warm.cwd_fd,
            stdio=stdio,
            inherited=warm.inherited,
            rlimits=dict(rlimits.resource_limits()),
        )
        if served is not None:
            return served
    return None


def standard_library_only(code: str) -> bool:
    """Whether the source imports (by statement) nothing but standard-library modules: then
    the preloaded modules would be of no use, and forking a process their size costs more than
    it saves. Only a choice of speed: either zygote runs any code the same way (an import in a
    string still works, loaded when it runs)."""
    if len(code) > LIGHT_MAX_SOURCE:
        return False
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return True  # the interpreter reports it the same way
    except RecursionError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else [""]
        else:
            continue
        if any(name.partition(".")[0] not in sys.stdlib_module_names for name in names):
            return False
    return True


def chunk(
    warm: WarmSandbox,
    *,
    code: str,
    args: tuple[str, ...],
    expect_state: str | None,
    timeout_s: float,
    watch: Watch,
) -> tuple[Run, zygote_client.ChunkResult | None]:
    """A stateful ``py`` chunk in the zygote's state holder (see ``zygote_client``)."""
    env = warm.env_for("py")
    outcome: list[zygote_client.ChunkResult | BaseException] = []
    done_r, done_w = os.pipe()

    def begin(stdio: list[int]) -> int:
        def target() -> None:
            try:
                outcome.append(
                    zygote_client.run_chunk(
                        warm.zygote_socket,
                        code,
                        stdin=stdio[0],
                        stdout=stdio[1],
                        stderr=stdio[2],
                        expect_state=expect_state,
                        args=args,
                        env=env,
                        timeout_s=timeout_s,
                    )
                )
            except BaseException as exc:  # handed to the supervising thread
                outcome.append(exc)
            finally:
                for fd in stdio:
                    os.close(fd)
                os.write(done_w, b"x")

        stdio[:] = [os.dup(fd) for fd in stdio]  # the thread owns these, the caller its own
        threading.Thread(target=target, name="warm-chunk", daemon=True).start()
        return done_r

    def ended(deadline: float) -> int | None:
        os.read(done_r, 1)
        result = outcome[0]
        if isinstance(result, BaseException):
            return None
        if result.signal is not None:
            return result.signal  # a wait status for a signal death
        return (result.exit_code or 0) << 8

    try:
        run = warm.supervise(begin, ended, watch, sweep=warm.sweep, limit_s=timeout_s + 5.0)
    finally:
        if not outcome:  # the sandbox was ended: the thread returns once its socket closes
            select.select([done_r], [], [], DRAIN_S)
        os.close(done_r)
        os.close(done_w)
    result = outcome[0] if outcome else None
    if isinstance(result, zygote_client.ZygoteError):
        raise WarmError(f"the zygote could not run the chunk: {result}")
    if isinstance(result, BaseException):
        raise result
    return run, result
