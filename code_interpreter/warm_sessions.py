"""Which ``/exec`` requests run in a warm sandbox, and LibreChat's ``runtime_session_hint``.

A request runs warm (``warm``) when it continues a session (``session_id``), names a hint, or
asks for ``stateful`` Python; else cold, as before. A hint maps, per caller, to the session it
last ran in (without a JWT, also per credential: ``_scopes``), so a request with the hint and no
``session_id`` continues that session (and its warm sandbox) while it lives; naming another
session moves the hint there.

One execution at a time per hint and caller (``runtime_session``, per ``runtime_scope``):
LibreChat's prewarm (``bash true`` with the hint) and the first real call may overlap, so a
second execution waits up to ``CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S`` for the first, then is
refused as ``runtime_session_busy`` (409), as the official stateful service refuses it. Within
one web process, like the warm sandboxes themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from django.conf import settings

from code_interpreter.auth import Caller
from code_interpreter.keyed_locks import KeyedLocks
from code_interpreter.models import CodeSession
from code_interpreter.sandbox import ExecutionResult, Limits, warm
from code_interpreter.schemas import ExecRequest
from code_interpreter.selectors import NotFound, session_for_caller


class RuntimeSessionBusy(Exception):
    """Another execution holds the hint's runtime session for longer than the wait."""


_held = KeyedLocks()


@contextmanager
def runtime_session(scope: str, hint: str | None) -> Iterator[None]:
    """Hold the runtime session of ``hint`` in ``scope`` (``Caller.runtime_scope``; nothing to
    hold without a hint)."""
    if not hint:
        yield
        return
    with ExitStack() as stack:
        try:
            wait = max(0.0, settings.CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S)
            stack.enter_context(_held.hold((scope, hint), timeout=wait))
        except TimeoutError:
            raise RuntimeSessionBusy(hint) from None
        yield


def _scopes(caller: Caller) -> list[str]:
    """Where a caller's hints are kept: under the caller (its budget key, as its warm
    sandboxes), and, without a JWT, also under its credential (``Caller.runtime_scope``), where
    LibreChat's calls that name no user (bash_tool, the prewarm) find them."""
    scopes = [caller.budget_key]
    if caller.runtime_scope != caller.budget_key:
        scopes.append(caller.runtime_scope)
    return scopes


def with_hinted_session(
    caller: Caller, request: ExecRequest
) -> tuple[ExecRequest, CodeSession | None]:
    """A request naming a ``runtime_session_hint`` but no session continues the session the
    hint last ran in for this caller, while it lives (and while this caller may use it): the
    request naming it, and that session as checked (None: no hinted session)."""
    hint = request.runtime_session_hint
    if not hint or request.session_id:
        return request, None
    for scope in _scopes(caller):
        session_id = warm.pool.hinted(scope, hint, None)
        if session_id is None:
            continue
        try:
            session = session_for_caller(caller, session_id)
        except NotFound:
            if scope == caller.budget_key:
                warm.pool.forget_hints(scope, session_id)
            continue
        return replace(request, session_id=session_id), session
    return request, None


def remember_hint(caller: Caller, request: ExecRequest, session_id: str) -> None:
    if request.runtime_session_hint:
        for scope in _scopes(caller):
            warm.pool.hinted(scope, request.runtime_session_hint, session_id)


def execute_request(
    request: ExecRequest, *, caller: str, session: CodeSession, workdir: Path, limits: Limits
) -> ExecutionResult:
    """Warm when the request continues a session, names a hint or asks for state; else cold."""
    return warm.execute(
        caller=caller,
        session_id=session.id,
        lang=request.lang,
        code=request.code,
        args=request.args,
        workdir=workdir,
        limits=limits,
        uid=session.uid,
        stateful=request.stateful,
        keep_warm=bool(request.session_id or request.runtime_session_hint or request.stateful),
    )
