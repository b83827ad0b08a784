"""Which ``/exec`` requests run in a warm sandbox, and LibreChat's ``runtime_session_hint``.

A request runs warm (``warm``) when it continues a session (``session_id``), names a hint, or
asks for ``stateful`` Python; else cold, as before. A hint maps, per caller, to the session it
last ran in, so a request with the hint and no ``session_id`` continues that session (and its
warm sandbox) while it lives; naming another session moves the hint there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from code_interpreter.auth import Caller
from code_interpreter.models import CodeSession
from code_interpreter.sandbox import ExecutionResult, Limits, warm
from code_interpreter.schemas import ExecRequest
from code_interpreter.selectors import NotFound, session_for_caller


def with_hinted_session(caller: Caller, request: ExecRequest) -> ExecRequest:
    """A request naming a ``runtime_session_hint`` but no session continues the session the
    hint last ran in for this caller, while it lives."""
    hint = request.runtime_session_hint
    if not hint or request.session_id:
        return request
    session_id = warm.pool.hinted(caller.budget_key, hint, None)
    if session_id is None:
        return request
    try:
        session_for_caller(caller, session_id)
    except NotFound:
        warm.pool.forget_hints(caller.budget_key, session_id)
        return request
    return replace(request, session_id=session_id)


def remember_hint(caller: str, request: ExecRequest, session_id: str) -> None:
    if request.runtime_session_hint:
        warm.pool.hinted(caller, request.runtime_session_hint, session_id)


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
