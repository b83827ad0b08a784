"""One warm sandbox: a session's bubblewrap sandbox kept alive between its executions.

The sandbox is the one ``command`` describes (namespaces, mounts, uid, seccomp, the
resource limits set on its PID 1 before it may run, its memory guarded for its whole life), with
three differences: its PID 1 is ``runtime/warm_agent.py``, which starts each execution the host
asks for; the source of each execution is written to a host directory bound read-only at
``/run/code``; and ``/run/zygote`` (a host directory of the session's uid) holds the sockets of
the two Python zygotes the agent starts in the background: the preloaded one, which every
``python3`` of the sandbox reaches through ``$SANDBOX_PY_ZYGOTE``, and a light one.

A ``py`` execution is asked of a zygote itself (``sandbox/warm_python.py``): its fork runs the
code, with nothing started between, as the sandbox's ``python3`` client would have had it run;
the rest start through the agent. An execution ends as a cold one does, then every process it
left is killed (the agent's ``sweep``: all but PID 1, the zygotes and their own children). A run
that passes a limit (time, output, disk, memory) ends the sandbox whole: ``alive`` is then False,
and the next run starts a new one. Not thread-safe: one execution at a time (``warm`` lends it
out).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from code_interpreter import zygote_client
from code_interpreter.sandbox import warm_python
from code_interpreter.sandbox.command import (
    CODE_DIR,
    LANGUAGES,
    RUNTIME_MOUNT,
    SANDBOX_MOUNT,
    Config,
    Rlimits,
    bwrap_argv,
    command_argv,
    drop_argv,
    sandbox_env,
)
from code_interpreter.sandbox.memory import start_guard
from code_interpreter.sandbox.process import (
    Capture,
    Run,
    RunningSandbox,
    StartError,
    code_source_dir,
    seccomp_pipe,
    start_bwrap,
    write_all,
)
from code_interpreter.sandbox.run import mpl_font_caches
from code_interpreter.sandbox.warm_supervise import (
    Hooks,
    WarmError,
    Watch,
    receive_event,
    send_request,
    supervise,
)

START_TIMEOUT_S = 20.0
ZYGOTE_DIR = "/run/zygote"
ZYGOTE_SOCKET = f"{ZYGOTE_DIR}/python.sock"
# A second zygote that preloads nothing, for py code that imports only the standard library:
# its forks are a few MiB, not the preloaded one's hundred (warm_python.serve chooses).
LIGHT_SOCKET = f"{ZYGOTE_DIR}/light.sock"
AGENT = f"{RUNTIME_MOUNT}/zygote/code_interpreter/runtime/warm_agent.py"


@dataclass(frozen=True)
class Spec:
    """What a warm sandbox is made for: a sandbox of another spec is another sandbox."""

    workdir: Path
    dir_id: tuple[int, int]  # (device, inode): a session directory made again is another one
    uid: int | None
    memory_bytes: int
    max_processes: int
    cpu_s: int
    max_open_files: int
    max_file_bytes: int


class WarmSandbox:
    def __init__(self, config: Config, spec: Spec) -> None:
        self.config = config
        self.spec = spec
        self.started_at = time.monotonic()
        self.runs = 0
        self.dead = False
        self.host_dir = Path(tempfile.mkdtemp(prefix="warm-", dir=code_source_dir()))
        self.code_dir = self.host_dir / "code"
        self.zygote_dir = self.host_dir / "zygote"
        self.code_dir.mkdir(mode=0o755)
        self.zygote_dir.mkdir(mode=0o700)
        # Bound read-only at /run/code for the sandbox's uid; the 0700 parent keeps others out.
        os.chmod(self.code_dir, 0o755)  # noqa: S103
        if config.as_root and spec.uid is not None:
            os.chown(self.zygote_dir, spec.uid, spec.uid)
        self.sandbox: RunningSandbox | None = None
        self.agent: socket.socket | None = None
        self.cwd_fd: int | None = None  # /mnt/data as the sandbox sees it (from the agent)
        self.inherited: zygote_client.Inherited | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- life ----------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        sandbox = self.sandbox
        return (
            not self.dead
            and sandbox is not None
            and sandbox.proc.poll() is None
            and not sandbox.out_of_memory
        )

    @property
    def zygote_socket(self) -> Path:
        return self.zygote_dir / Path(ZYGOTE_SOCKET).name

    @property
    def light_socket(self) -> Path:
        return self.zygote_dir / Path(LIGHT_SOCKET).name

    def _start(self) -> None:
        spec = self.spec
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_r, status_w = os.pipe()
        block_r, block_w = os.pipe()
        seccomp_fd = seccomp_pipe()
        child_fds = [
            fd for fd in (status_w, block_r, seccomp_fd, theirs.fileno()) if fd is not None
        ]
        binds = [
            "--ro-bind",
            str(self.code_dir),
            CODE_DIR,
            "--bind",
            str(self.zygote_dir),
            ZYGOTE_DIR,
        ]
        env = sandbox_env(LANGUAGES["bash"], memory_bytes=spec.memory_bytes)
        argv = bwrap_argv(
            config=self.config,
            workdir=spec.workdir,
            status_fd=status_w,
            block_fd=block_r,
            seccomp_fd=seccomp_fd,
            env=env,
            font_caches=mpl_font_caches(str(self.config.runtime_dir)),
            binds=binds,
        )
        real_python = f"{RUNTIME_MOUNT}/venv/bin/.real/python3"
        argv += ["--", real_python, "-I", "-S", AGENT, str(theirs.fileno())]
        rlimits = Rlimits(
            cpu_s=spec.cpu_s,
            data_bytes=spec.memory_bytes,
            processes=spec.max_processes,
            open_files=spec.max_open_files,
            file_bytes=spec.max_file_bytes,
        )
        try:
            proc = start_bwrap(argv, child_fds, output=subprocess.DEVNULL)
        finally:
            for fd in child_fds:
                if fd != theirs.fileno():
                    os.close(fd)
            theirs.close()
        self.agent = ours
        self.sandbox = RunningSandbox(
            proc,
            rlimits,
            block_w,
            lambda pid, pidfd: start_guard(
                pid=pid,
                pidfd=pidfd,
                memory_bytes=spec.memory_bytes,
                max_processes=spec.max_processes,
            ),
        )
        try:
            self._release(status_r)
        finally:
            os.close(status_r)
        if self.sandbox.failure:
            raise StartError(f"Could not set the sandbox's resource limits: {self.sandbox.failure}")
        fds: list[int] = []
        ready = self._event(time.monotonic() + START_TIMEOUT_S, fds)
        if ready.get("event") != "ready":
            for fd in fds:
                os.close(fd)
            raise WarmError("the warm sandbox's agent did not start")
        self.cwd_fd, self.inherited = warm_python.inherited(self.config, ready, fds)
        self._start_zygote(env)

    def _release(self, status_r: int) -> None:
        """Read bubblewrap's status until it names PID 1, which is then limited and let go."""
        assert self.sandbox is not None
        status = Capture(64 * 1024)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.sandbox.pidfd is None:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([status_r], [], [], max(0.0, left))
            if not ready:
                raise WarmError("bubblewrap did not start the warm sandbox in time")
            chunk = os.read(status_r, 65536)
            if not chunk:
                raise WarmError("bubblewrap could not start the warm sandbox")
            status.feed(chunk)
            self.sandbox.watch(status.text())

    def _start_zygote(self, env: dict[str, str]) -> None:
        """The zygotes, started as ``sandbox-zygote`` starts one but without its shell: a sweep
        may come while it preloads, and would kill a shell's helpers (``$(dirname ...)``)."""
        zygote_env = {key: value for key, value in env.items() if key != "PYTHONPATH"}
        real = os.readlink(self.config.runtime_dir / "venv" / "bin" / ".real" / "python3")
        python = f"{RUNTIME_MOUNT}/venv/bin/{Path(real).name}"
        request = {"op": "background", "env": zygote_env, "cwd": f"{RUNTIME_MOUNT}/zygote"}
        for socket_path, preload in ((ZYGOTE_SOCKET, []), (LIGHT_SOCKET, ["--preload", ""])):
            command = [python, "-m", "code_interpreter.runtime.zygote", "--socket", socket_path]
            self._send({**request, "argv": [*self._drop(), *command, *preload]})
            event = self._event(time.monotonic() + START_TIMEOUT_S)
            if event.get("event") != "started":
                raise WarmError("the warm sandbox did not start its zygote")

    def wait_for_zygote(self, timeout_s: float, *, light: bool = False) -> bool:
        """Whether the zygote answers (it preloads for a few hundred ms after the start);
        ``light``: the light one's too."""
        deadline = time.monotonic() + timeout_s
        sockets = [self.zygote_socket, *([self.light_socket] if light else [])]
        while time.monotonic() < deadline and self.alive:
            try:
                for socket_path in sockets:
                    zygote_client.zygote_status(socket_path, timeout_s=2.0)
                return True
            except (zygote_client.ZygoteError, OSError):
                time.sleep(0.02)
        return False

    def close(self) -> None:
        """End the sandbox whole (every process in it) and remove its host directories."""
        self.dead = True
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox.wait_gone()
            self.sandbox.stop_guard()
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        if self.cwd_fd is not None:
            os.close(self.cwd_fd)
            self.cwd_fd = None
        shutil.rmtree(self.host_dir, ignore_errors=True)

    # -- executions ----------------------------------------------------------------------------

    def env_for(self, lang: str) -> dict[str, str]:
        env = sandbox_env(LANGUAGES[lang], memory_bytes=self.spec.memory_bytes)
        env[zygote_client.SOCKET_ENV] = ZYGOTE_SOCKET
        return env

    def _drop(self, extra_env: dict[str, str] | None = None) -> list[str]:
        if not self.config.as_root:
            return []
        assert self.spec.uid is not None
        return drop_argv(config=self.config, uid=self.spec.uid, extra_env=extra_env or {})

    def run(
        self,
        *,
        lang: str,
        code: str,
        args: tuple[str, ...],
        extra_env: dict[str, str],
        rlimits: Rlimits,
        watch: Watch,
    ) -> Run:
        """One execution, as ``process.run_bwrap`` runs one in a cold sandbox. A ``py`` one is
        the zygote's to run when it can (no process started on the way: ``warm_python``)."""
        language = LANGUAGES[lang]
        self._write_code(language.source, code)
        env = self.env_for(lang)
        served_env = {**env, **extra_env}  # the zygote's fork is already the session's uid
        if not self.config.as_root:
            env = served_env
        command = command_argv(language, args, rlimits=rlimits)
        limits = [[int(name), soft, hard] for name, (soft, hard) in rlimits.resource_limits()]
        request: dict[str, Any] = {"op": "run", "env": env, "cwd": SANDBOX_MOUNT}
        request.update(argv=[*self._drop(extra_env), *command], rlimits=limits)
        request.update(sweep=True, uid=self._sweep_uid)  # the agent sweeps before "exited"
        served: list[zygote_client.Served] = []

        def begin(stdio: list[int]) -> int:
            if lang == "py":
                started = warm_python.serve(self, code, command, served_env, stdio, rlimits)
                if started is not None:
                    served.append(started)
                    return started.fileno()
            self._send(request, stdio)
            if self._event(time.monotonic() + START_TIMEOUT_S).get("event") != "started":
                raise WarmError("the warm sandbox did not start the execution")
            assert self.agent is not None
            return self.agent.fileno()

        left: list[bool] = []

        def ended(deadline: float) -> int | None:
            if served:
                try:
                    return served[0].wait(deadline)
                except zygote_client.ZygoteError:
                    return None
            event = self._event(deadline)
            left.append(bool(event.get("swept")))
            return int(event["status"]) if event.get("event") == "exited" else None

        def sweep(deadline: float) -> None:
            if served:  # after the served process is gone: the agent sweeps what it left
                served[0].close()
                left.append(self.sweep(deadline))

        try:
            run = self.supervise(begin, ended, watch, sweep=sweep)
        finally:
            for started in served:
                started.close()
        if any(left):  # the run left processes behind: they are killed, and so is the sandbox,
            self.close()  # so nothing of them (a served python3 a moment later) runs on
        return run

    def _write_code(self, name: str, code: str) -> None:
        fd, temp = tempfile.mkstemp(dir=self.host_dir, suffix=".src")
        try:
            write_all(fd, code.encode("utf-8", errors="surrogateescape"))
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        os.replace(temp, self.code_dir / name)

    # -- supervision ---------------------------------------------------------------------------

    @property
    def _sweep_uid(self) -> int | None:
        return self.spec.uid if self.config.as_root else None

    def sweep(self, deadline: float) -> bool:
        """Whether there was anything to kill (a sandbox that did not answer is ended)."""
        self._send({"op": "sweep", "uid": self._sweep_uid})
        event = self._event(deadline)
        if event.get("event") != "swept":
            self.close()
        return bool(event.get("any"))

    # -- the agent's channel -------------------------------------------------------------------

    def _send(self, request: dict[str, Any], fds: list[int] | None = None) -> None:
        if self.agent is None:
            raise WarmError("the warm sandbox is gone")
        try:
            send_request(self.agent, request, fds or [])
        except OSError as exc:
            self.close()
            raise WarmError(f"the warm sandbox is gone: {exc}") from None

    def _event(self, deadline: float, fds: list[int] | None = None) -> dict[str, Any]:
        """The agent's next event (its descriptors added to ``fds``); an empty one when it is
        gone or says nothing in time."""
        if self.agent is None:
            return {}
        try:
            return receive_event(self.agent, deadline, fds)
        except (OSError, ValueError):
            self.close()
            return {}

    def supervise(
        self,
        begin: Callable[[list[int]], int],
        ended: Callable[[float], int | None],
        watch: Watch,
        *,
        sweep: Callable[[float], object],
        limit_s: float | None = None,
    ) -> Run:
        """``begin`` starts the execution and returns the descriptor its end makes readable;
        ``sweep`` kills what it left (unless the agent did before it told of the end)."""
        hooks = Hooks(
            out_of_memory=lambda: self.sandbox is not None and self.sandbox.out_of_memory,
            alive=lambda: self.alive,
            sweep=sweep,
            end=self.close,
        )
        try:
            return supervise(begin, ended, watch=watch, hooks=hooks, limit_s=limit_s)
        finally:
            self.runs += 1
