"""``/upload``: files stored in a new session, within the caller's disk quota and session cap;
and forgetting one file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from code_interpreter import budgets, workspace
from code_interpreter.auth import Caller
from code_interpreter.ids import name_problem, new_id
from code_interpreter.models import CodeFile, CodeSession, FileOrigin, SessionOrigin
from code_interpreter.schemas import Access
from code_interpreter.storage import delete_blobs, session_ttl, store
from core.errors import ApplicationError, ErrorCode


def access_owner(caller: Caller, access: Access) -> str:
    """The owner of what a request creates: the shared resource it names, or the caller."""
    if access.kind in ("agent", "skill"):
        return f"{access.kind}:{access.resource_id}"
    if caller.user_id:
        return f"user:{caller.user_id}"
    return ""


# -- /upload -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadResult:
    filename: str
    file_id: str | None = None
    error: str | None = None


def _upload_problem(upload: UploadedFile[Any], seen: set[str]) -> str | None:
    name = upload.name or ""
    problem = name_problem(name)
    if problem:
        return f"Invalid file name {name!r}: {problem}."
    if "/" in name:
        return f"Invalid file name {name!r}: upload a file, not a path."
    if name in seen:
        return f"Duplicate file name {name!r} in this upload."
    if (upload.size or 0) > settings.CODE_INTERPRETER_MAX_FILE_BYTES:
        return (
            f"File too large: {name} has {upload.size} bytes; the limit is "
            f"{settings.CODE_INTERPRETER_MAX_FILE_BYTES}."
        )
    return None


def upload_files(
    *,
    caller: str,
    owner: str,
    uploads: list[UploadedFile[Any]],
    read_only: bool = False,
    strict: bool = True,
) -> tuple[str, list[UploadResult]]:
    """Store uploads in a new session of ``caller``'s (a ``Caller.budget_key``), within their
    disk quota and cap on live sessions. ``strict``: the first bad file fails the request."""
    size = sum(upload.size or 0 for upload in uploads)
    with budgets.disk_held(caller, size):
        return _upload_files(caller, owner, uploads, read_only=read_only, strict=strict)


def _upload_files(
    caller: str,
    owner: str,
    uploads: list[UploadedFile[Any]],
    *,
    read_only: bool,
    strict: bool,
) -> tuple[str, list[UploadResult]]:
    now = timezone.now()
    session = CodeSession(
        id=new_id(),
        owner=owner,
        caller=caller,
        origin=SessionOrigin.UPLOAD,
        created_at=now,
        last_used_at=now,
        expires_at=now + session_ttl(),
    )
    results: list[UploadResult] = []
    records: list[CodeFile] = []
    seen: set[str] = set()
    try:
        for upload in uploads:
            name = upload.name or ""
            problem = _upload_problem(upload, seen)
            if problem and strict:
                too_large = problem.startswith("File too large")
                raise ApplicationError(
                    problem,
                    code=ErrorCode.PAYLOAD_TOO_LARGE if too_large else ErrorCode.INVALID_FILE_NAME,
                    status=413 if too_large else 400,
                )
            if problem:
                results.append(UploadResult(filename=name, error=problem))
                continue
            seen.add(name)
            record = store(session, upload, name=name, origin=FileOrigin.UPLOAD)
            record.read_only = read_only
            records.append(record)
            results.append(UploadResult(filename=name, file_id=record.id))
        if records:
            with transaction.atomic():
                budgets.lock_caller(caller)
                budgets.check_session_cap(caller)
                session.save(force_insert=True)
                CodeFile.objects.bulk_create(records)
    except BaseException:
        delete_blobs(record.storage_name for record in records)
        raise
    return session.id, results


# -- deletion ----------------------------------------------------------------------------------


def file_delete(*, record: CodeFile) -> None:
    """Forget a file: its record, its stored bytes and its copy in the session's directory."""
    with transaction.atomic():
        record.delete()
        transaction.on_commit(lambda: delete_blobs([record.storage_name]))
    with workspace.session_lock(record.session_id):
        workspace.remove_file(workspace.session_dir(record.session_id), record.name)
