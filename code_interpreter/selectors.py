"""Reads: which sessions and files a caller may use. Anything else is simply "not found"."""

from __future__ import annotations

from django.utils import timezone

from code_interpreter.auth import Caller
from code_interpreter.ids import SHARED_KINDS
from code_interpreter.models import CodeFile, CodeSession
from code_interpreter.schemas import Access
from core.errors import ApplicationError, ErrorCode


class NotFound(ApplicationError):
    status = 404
    code = ErrorCode.NOT_FOUND


ANYONE = Access()


def may_access(owner: str, caller: Caller, access: Access = ANYONE) -> bool:
    """Does the caller reach something owned by ``owner``?

    Made without a named caller: the ids are the capability. Owned by an agent or a skill:
    whoever names that resource (as LibreChat's shared kinds work). Owned by a user: that user;
    or, when no JWT proves who is calling and the request names nobody, whoever holds the ids.
    """
    if not owner:
        return True
    if access.kind in SHARED_KINDS:
        return owner == f"{access.kind}:{access.resource_id}"
    if caller.user_id is not None:
        return owner == f"user:{caller.user_id}"
    return not caller.verified


def session_for_caller(caller: Caller, session_id: str, access: Access = ANYONE) -> CodeSession:
    session = CodeSession.objects.filter(pk=session_id, expires_at__gt=timezone.now()).first()
    if session is None or not may_access(session.owner, caller, access):
        raise NotFound(f"Session {session_id} not found (it may have expired).")
    return session


def file_for_caller(
    caller: Caller, session_id: str, file_id: str, access: Access = ANYONE
) -> CodeFile:
    record = (
        CodeFile.objects.select_related("session")
        .filter(pk=file_id, session_id=session_id, session__expires_at__gt=timezone.now())
        .first()
    )
    if record is None or not may_access(record.session.owner, caller, access):
        raise NotFound(f"File {session_id}/{file_id} not found (it may have expired).")
    return record


def session_files(session: CodeSession) -> list[CodeFile]:
    return list(session.files.all())
