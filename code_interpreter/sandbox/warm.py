"""Warm per-session sandboxes for ``/exec``: which session keeps one, for how long, and the run.

A session's sandbox (``warm_sandbox``) stays alive after an execution for
``CODE_INTERPRETER_WARM_IDLE_S`` seconds, so the next execution of that session pays no sandbox
start, and its ``python3`` is a fork of the preloaded zygote. At most
``CODE_INTERPRETER_WARM_MAX`` are alive in one web process and ``..._WARM_MAX_PER_CALLER`` per
caller; the least recently used one ends first. ``CODE_INTERPRETER_WARM_MAX = 0`` turns warm
sandboxes off: every execution is cold.

Which executions run warm: those that continue a session (``session_id``), that name a
``runtime_session_hint`` (LibreChat's stateful profile: one warm sandbox per hint and caller),
or that ask for ``stateful`` Python. A first execution without any of them runs cold, as it
always did, so one-off executions do not start a zygote for nothing.

Python state (``stateful``): ``py`` executions of the session run as chunks in one persistent
interpreter. When the state a session had is gone (its sandbox went cold, was ended for a limit,
or the state ended itself), the run starts a fresh one and ``STATE_LOST_NOTE`` opens stderr.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from code_interpreter import defaults, zygote_client
from code_interpreter.sandbox import api, warm_python
from code_interpreter.sandbox.command import checked_env, load_config, setting
from code_interpreter.sandbox.limits import (
    ExecutionResult,
    Limits,
    SandboxError,
    SandboxUnavailable,
)
from code_interpreter.sandbox.process import StartError
from code_interpreter.sandbox.run import (
    checked_limits,
    disk_room,
    execute_in,
    result_of,
    session_dir_taken,
)
from code_interpreter.sandbox.warm_sandbox import Spec, WarmSandbox
from code_interpreter.sandbox.warm_supervise import WarmError, Watch

logger = logging.getLogger(__name__)
ZYGOTE_WAIT_S = 30.0  # a stateful chunk waits this long for a new sandbox's zygote

Key = tuple[str, str]  # (caller, session id)


def _ref(session_id: str) -> str:
    """A session in the log: a session id opens its session to whoever holds it (no named
    caller), so the log names a digest of it."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:12]


@dataclass
class _Entry:
    key: Key
    sandbox: WarmSandbox
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = True


class Pool:
    """The warm sandboxes of this process, in least-recently-used order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[Key, _Entry] = OrderedDict()
        self.states: dict[Key, str] = {}  # the last Python state of a session, if any
        # caller -> hint -> session id, oldest first: a caller keeps at most as many hints as it
        # may have live sessions (a new hint per call must not grow this process's memory).
        self.hints: dict[str, OrderedDict[str, str]] = {}
        self.reaper: threading.Thread | None = None

    # -- lending -------------------------------------------------------------------------------

    def take(self, key: Key, spec: Spec) -> WarmSandbox | None:
        """The session's warm sandbox, lent out (None: there is none, start one)."""
        ended: list[WarmSandbox] = []
        try:
            with self.lock:
                entry = self.entries.get(key)
                if entry is None or entry.busy:
                    return None
                if entry.sandbox.alive and entry.sandbox.spec == spec:
                    entry.busy = True
                    self.entries.move_to_end(key)
                    return entry.sandbox
                del self.entries[key]
                ended.append(entry.sandbox)
                return None
        finally:
            _close_all(ended)

    def make_room(self, caller: str) -> bool:
        """End least recently used sandboxes until one more fits; False when all are busy."""
        ended: list[WarmSandbox] = []
        try:
            with self.lock:
                for limit, mine in ((per_caller_max(), True), (host_max(), False)):
                    while True:
                        held = [e for e in self.entries.values() if not mine or e.key[0] == caller]
                        if len(held) < limit:
                            break
                        idle = [e for e in held if not e.busy]
                        if not idle:
                            return False
                        del self.entries[idle[0].key]
                        ended.append(idle[0].sandbox)
            return True
        finally:
            _close_all(ended)

    def give_back(self, key: Key, warm: WarmSandbox, *, new: bool) -> None:
        ended: list[WarmSandbox] = []
        with self.lock:
            entry = self.entries.get(key)
            if new and entry is None and warm.alive:
                self.entries[key] = _Entry(key, warm, busy=False)
            elif entry is not None and entry.sandbox is warm and warm.alive:
                entry.busy, entry.last_used = False, time.monotonic()
                self.entries.move_to_end(key)
            else:
                if entry is not None and entry.sandbox is warm:
                    del self.entries[key]
                ended.append(warm)
            self._start_reaper()
        _close_all(ended)

    def hinted(self, caller: str, hint: str, session_id: str | None) -> str | None:
        """The session a hint maps to for this caller; naming another session moves the hint
        (and ends the sandbox it had: one warm sandbox per hint)."""
        with self.lock:
            hints = self.hints.setdefault(caller, OrderedDict())
            known = hints.get(hint)
            if session_id is None:
                return known
            hints[hint] = session_id
            hints.move_to_end(hint)
            while len(hints) > max(1, int(setting("MAX_SESSIONS_PER_CALLER", 1000))):
                hints.popitem(last=False)
            entry = self.entries.get((caller, known)) if known not in (None, session_id) else None
            if entry is not None and not entry.busy:  # a running one: the idle timeout ends it
                del self.entries[entry.key]
            else:
                entry = None
        if entry is not None:
            _close_all([entry.sandbox])
        return session_id

    def forget_hints(self, caller: str, session_id: str) -> None:
        with self.lock:
            hints = self.hints.get(caller, OrderedDict())
            for name in [hint for hint, known in hints.items() if known == session_id]:
                del hints[name]

    # -- the idle timeout ----------------------------------------------------------------------

    def _start_reaper(self) -> None:
        if self.reaper is None or not self.reaper.is_alive():
            self.reaper = threading.Thread(
                target=self._reap_forever, name="warm-reaper", daemon=True
            )
            self.reaper.start()

    def _reap_forever(self) -> None:
        while True:
            time.sleep(max(0.05, min(5.0, idle_s() / 4)))
            self.reap()
            with self.lock:
                if not self.entries:
                    self.reaper = None
                    return

    def reap(self, now: float | None = None) -> int:
        """End the sandboxes idle longer than the timeout, or dead; how many ended."""
        now = time.monotonic() if now is None else now
        ended: list[WarmSandbox] = []
        with self.lock:
            for key, entry in list(self.entries.items()):
                if entry.busy:
                    continue
                if now - entry.last_used >= idle_s() or not entry.sandbox.alive:
                    del self.entries[key]
                    ended.append(entry.sandbox)
        _close_all(ended)
        return len(ended)

    def close_all(self) -> None:
        with self.lock:
            ended = [entry.sandbox for entry in self.entries.values() if not entry.busy]
            self.entries = OrderedDict((k, e) for k, e in self.entries.items() if e.busy)
        _close_all(ended)

    def forget(self) -> None:
        """In a forked child: drop what the parent holds, without ending it."""
        self.lock = threading.Lock()
        self.entries, self.states, self.hints, self.reaper = OrderedDict(), {}, {}, None

    def clear(self) -> None:
        """End every idle sandbox and forget every state and hint (tests, shutdown)."""
        self.close_all()
        with self.lock:
            self.states.clear()
            self.hints.clear()

    def alive(self, caller: str | None = None) -> int:
        with self.lock:
            return sum(1 for e in self.entries.values() if caller is None or e.key[0] == caller)


def _close_all(sandboxes: list[WarmSandbox]) -> None:
    for warm in sandboxes:
        try:
            warm.close()
        except Exception:  # one failed clean-up must not keep the others
            logger.warning("could not end a warm sandbox", exc_info=True)


pool = Pool()
atexit.register(pool.close_all)
# A forked web worker starts with no warm sandbox: those it inherited belong to its parent.
os.register_at_fork(after_in_child=pool.forget)


def host_max() -> int:
    return int(setting("WARM_MAX", defaults.WARM_MAX))


def per_caller_max() -> int:
    return int(setting("WARM_MAX_PER_CALLER", defaults.WARM_MAX_PER_CALLER))


def idle_s() -> float:
    return float(setting("WARM_IDLE_S", defaults.WARM_IDLE_S))


# -- one execution -----------------------------------------------------------------------------


def execute(
    *,
    caller: str,
    session_id: str,
    lang: str,
    code: str,
    args: tuple[str, ...] = (),
    workdir: Path,
    limits: Limits,
    uid: int | None,
    stateful: bool = False,
    keep_warm: bool = True,
    env: Mapping[str, str] | None = None,
) -> ExecutionResult:
    """Run in the session's warm sandbox (started if need be), or cold when warm sandboxes are
    off or every slot is busy. Raises as ``sandbox.execute`` does."""
    config = load_config()
    problem = api.unready(config)
    if problem:
        raise SandboxUnavailable(problem)
    name = api.resolve_language(lang, config)
    if name is None:
        raise ValueError(f"Unsupported language: {lang}")
    cold = partial(execute_in, config, name, code, args, Path(workdir), limits, env, uid)
    if not keep_warm or host_max() <= 0 or per_caller_max() <= 0:
        return cold()
    workdir, uid, used = session_dir_taken(config, Path(workdir), uid)
    limits = checked_limits(limits)
    key = (caller, session_id)
    info = os.stat(workdir)
    spec = Spec(
        workdir=workdir,
        dir_id=(info.st_dev, info.st_ino),
        uid=uid,
        memory_bytes=limits.memory_bytes,
        max_processes=limits.max_processes,
        cpu_s=limits.cpu_s,
        max_open_files=limits.max_open_files,
        max_file_bytes=limits.max_file_bytes,
    )
    warm, new = pool.take(key, spec), False
    if warm is None:
        if not pool.make_room(caller):
            return cold()
        try:
            warm, new = WarmSandbox(config, spec), True
            alive = pool.alive()
            logger.info("warm sandbox started for session %s (%d alive)", _ref(session_id), alive)
        except (StartError, WarmError, OSError) as exc:
            logger.warning("could not start a warm sandbox (running cold): %s", exc)
            return cold()
    try:
        return _run(warm, key, name, code, args, workdir, limits, used, dict(env or {}), stateful)
    finally:
        pool.give_back(key, warm, new=new)


def _run(
    warm: WarmSandbox,
    key: Key,
    name: str,
    code: str,
    args: tuple[str, ...],
    workdir: Path,
    limits: Limits,
    used: int,
    env: dict[str, str],
    stateful: bool,
) -> ExecutionResult:
    remaining = max(0, limits.disk_quota_bytes - used)
    watch = Watch(
        timeout_s=limits.timeout_s,
        max_output_bytes=limits.max_output_bytes,
        disk_room=partial(disk_room, workdir, limits, used),
        disk_room_at_start=max(limits.disk_quota_bytes, used) - used,
    )
    note = None
    try:
        if stateful and name == "py" and warm.wait_for_zygote(ZYGOTE_WAIT_S):
            run, chunk = warm_python.chunk(
                warm,
                code=code,
                args=args,
                expect_state=pool.states.get(key),
                timeout_s=limits.timeout_s,
                watch=watch,
            )
            if chunk is not None:
                note = chunk.note
                # Kept even when the chunk ended its state: the next chunk then says it is gone.
                pool.states[key] = chunk.state
            elif key in pool.states:
                note = zygote_client.STATE_LOST_NOTE
                pool.states.pop(key)
        else:
            rlimits = limits.rlimits(disk_left=remaining)
            run = warm.run(
                lang=name,
                code=code,
                args=args,
                extra_env=checked_env(env),
                rlimits=rlimits,
                watch=watch,
            )
    except WarmError as exc:
        raise SandboxError(f"The session's sandbox failed: {exc}") from exc
    result = result_of(
        run,
        limits,
        workdir,
        used_before=used,
        quota_bound=remaining < limits.max_file_bytes,
        config=warm.config,
    )
    if result.status not in ("ok", "error"):  # any limit, even one only a process met
        warm.close()  # ended whole: the next run starts a new sandbox
        logger.info("warm sandbox of session %s ended: %s", _ref(key[1]), result.status)
    if not warm.alive and key in pool.states:
        pool.states[key] = "lost"  # gone with the sandbox: the next chunk says so
    if note:
        result = _with_note(result, note)
    return result


def _with_note(result: ExecutionResult, note: str) -> ExecutionResult:
    return replace(result, stderr=f"{note}\n{result.stderr}")
