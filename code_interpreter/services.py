"""Writes: run code in a session, store uploads and outputs, delete files, expire sessions."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from code_interpreter import budgets, sandbox, warm_sessions, workspace
from code_interpreter.auth import Caller
from code_interpreter.ids import basename, is_valid_id, name_problem, new_id
from code_interpreter.limits import execution_slots
from code_interpreter.models import CodeFile, CodeSession, FileOrigin, SessionOrigin
from code_interpreter.schemas import Access, ExecRequest, FileRef
from code_interpreter.selectors import NotFound, may_access, session_for_caller
from hestami_ai.errors import ApplicationError

if TYPE_CHECKING:
    from users.models import User

logger = logging.getLogger(__name__)
# Not worth handing back to LibreChat as an artifact: caches and hidden files.
_SKIPPED_PARTS = ("__pycache__", ".ipynb_checkpoints")


def file_storage() -> Storage:
    return storages["code_interpreter"]


def _ttl() -> timedelta:
    return timedelta(hours=settings.CODE_INTERPRETER_SESSION_TTL_HOURS)


def _content_type(name: str) -> str:
    return mimetypes.guess_type(basename(name), strict=False)[0] or "application/octet-stream"


def _delete_blobs(names: Iterable[str]) -> None:
    storage = file_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # a blob left behind costs space, not correctness
            logger.warning("could not delete stored file %s", name, exc_info=True)


def _store(session: CodeSession, source: Any, *, name: str, origin: str) -> CodeFile:
    """Hash ``source`` and save it in the storage; the record is not saved yet."""
    digest = hashlib.sha256()
    size = 0
    source.seek(0)
    while chunk := source.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    source.seek(0)
    file_id = new_id()
    stored = file_storage().save(f"{session.id}/{file_id}", File(source, name=basename(name)))
    return CodeFile(
        id=file_id,
        session=session,
        name=name,
        storage_name=stored,
        content_type=_content_type(name),
        size=size,
        sha256=digest.hexdigest(),
        origin=origin,
        created_at=timezone.now(),
    )


# -- /exec -------------------------------------------------------------------------------------


@dataclass
class ExecOutcome:
    session_id: str
    language: str
    result: sandbox.ExecutionResult
    files: list[dict[str, Any]] = field(default_factory=list)


def _file_entry(record: CodeFile, *, name: str | None = None, inherited: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": record.id,
        "name": name or record.name,
        "path": f"{sandbox.SANDBOX_MOUNT}/{name or record.name}",
        "storage_session_id": record.session_id,
    }
    if inherited:
        entry["inherited"] = True
    return entry


def _resolve_inputs(caller: Caller, refs: tuple[FileRef, ...]) -> dict[str, CodeFile]:
    """Mount name -> stored file, for the files the request names (the last of a name wins)."""
    if not refs:
        return {}
    now = timezone.now()
    found = {
        record.id: record
        for record in CodeFile.objects.select_related("session").filter(
            pk__in={ref.id for ref in refs}
        )
    }
    inputs: dict[str, CodeFile] = {}
    for ref in refs:
        record = found.get(ref.id)
        if (
            record is None
            or record.session_id != ref.session_id
            or record.session.expires_at <= now
            or not may_access(record.session.owner, caller, ref.access)
        ):
            raise NotFound(
                f"Input file not found: {ref.name} ({ref.session_id}/{ref.id}); it may have "
                "expired: upload it again.",
                code="file_not_found",
            )
        inputs.pop(ref.name, None)
        inputs[ref.name] = record
    return inputs


def _exec_owner(caller: Caller, inputs: dict[str, CodeFile]) -> str:
    """Outputs belong to the caller; with no caller named, to the one user whose files went in."""
    if caller.user_id:
        return f"user:{caller.user_id}"
    owners = {record.session.owner for record in inputs.values()}
    if len(owners) == 1 and next(iter(owners)).startswith("user:"):
        return owners.pop()
    return ""


def _skipped(relative_path: str) -> bool:
    parts = PurePosixPath(relative_path).parts
    return (
        name_problem(relative_path) is not None
        or any(part.startswith(".") or part in _SKIPPED_PARTS for part in parts)
        or relative_path.endswith(".pyc")
    )


def exec_run(*, caller: Caller, request: ExecRequest) -> ExecOutcome:
    """Run code in a new session, or in ``request.session_id``, with the input files mounted.

    Files the code wrote or changed become new files of this session, unless it failed; files
    it left as they were come back as ``inherited``. The run spends the caller's budgets
    (``budgets``): a lease of their concurrent executions, a new session of their live ones, and
    what disk their sessions have left.
    """
    now = timezone.now()
    inputs = _resolve_inputs(caller, request.files)
    budget = caller.budget_key
    request = warm_sessions.with_hinted_session(caller, request)
    if request.session_id:
        session = session_for_caller(caller, request.session_id)
        known = {record.name: record for record in session.files.all()}
    else:
        session = CodeSession(
            id=new_id(),
            owner=_exec_owner(caller, inputs),
            caller=budget,
            origin=SessionOrigin.EXEC,
            created_at=now,
            last_used_at=now,
            expires_at=now + _ttl(),
        )
        known = {}
    limits = sandbox.default_limits()
    if request.timeout_s is not None:
        limits = replace(limits, timeout_s=request.timeout_s)
    max_outputs = settings.CODE_INTERPRETER_MAX_OUTPUT_FILES
    quota = limits.disk_quota_bytes
    granted: list[int] = []

    def prepare(lease: budgets.Lease) -> None:
        """With the lease (in its transaction, with database leases): the session exists and
        has its uid, and what it may fill is known."""
        budgets.lock_caller(budget)
        used = budgets.usage(budget, exclude_session=session.id)
        if not request.session_id:
            _open_session(session, used)
        elif session.uid is None and sandbox.session_uids() is not None:
            _give_uid(session)
        granted.append(
            budgets.grant(
                lease,
                session_quota=quota,
                session_bytes=session.disk_bytes,
                session_id=session.id,
                used=used,
            )
        )

    wanted = max(0, quota - session.disk_bytes)
    with execution_slots.slot(budget, reserve=wanted, then=prepare) as lease:
        limits = replace(limits, disk_quota_bytes=granted[0])
        with workspace.session_lock(session.id):
            workdir, created = workspace.ensure_dir(session.id)
            if created and known:  # the directory was lost (another host, a wiped disk)
                _mount(workdir, {record.name: record for record in known.values()})
            mounted = _mount(
                workdir,
                {
                    name: record
                    for name, record in inputs.items()
                    if record.session_id != session.id or not (workdir / name).exists()
                },
            )
            before = (
                workspace.snapshot(workdir, max_files=10_000)
                if known or mounted or not created
                else {}
            )
            try:
                result = warm_sessions.execute_request(
                    request, caller=budget, session=session, workdir=workdir, limits=limits
                )
            except BaseException:  # what it left counts until the session expires
                CodeSession.objects.filter(pk=session.pk).update(
                    disk_bytes=sandbox.disk_usage(workdir)
                )
                raise
            after = workspace.snapshot(workdir, max_files=len(before) + max_outputs)
            entries: list[dict[str, Any]] = []
            written: list[str] = []
            for path, stamp in after.items():
                if before.get(path) == stamp:
                    if path in inputs:
                        entries.append(_file_entry(inputs[path], name=path, inherited=True))
                    elif path in known:
                        entries.append(_file_entry(known[path], inherited=True))
                elif result.status == "ok" and not _skipped(path):
                    written.append(path)
            records = _store_outputs(session, workdir, written[:max_outputs])
            try:
                _record_exec(
                    session, records, inputs, disk_bytes=result.disk_bytes, now=now, lease=lease
                )
            except BaseException:
                _delete_blobs(record.storage_name for record in records)
                raise
    entries[:0] = [_file_entry(record, inherited=False) for record in records]
    warm_sessions.remember_hint(budget, request, session.id)
    return ExecOutcome(session_id=session.id, language=request.lang, result=result, files=entries)


def _open_session(session: CodeSession, used: budgets.Usage) -> None:
    """Save a new session, within its caller's cap on live sessions, with its own uid."""
    with transaction.atomic(savepoint=False):
        budgets.lock_caller(session.caller)
        budgets.check_session_cap(session.caller, used)
        if sandbox.session_uids() is None:
            session.save(force_insert=True)
        else:
            _give_uid(session, insert=True)


def _give_uid(session: CodeSession, *, insert: bool = False) -> None:
    """A root-run sandbox's host uid: one no other live session holds (the database's unique
    constraint decides), free again when the session is deleted at expiry."""
    uids = sandbox.session_uids()
    assert uids is not None
    for _ in range(64):
        session.uid = uids[secrets.randbelow(len(uids))]
        if insert:
            if _insert_unless_taken(session):
                return
            continue
        try:
            with transaction.atomic():
                CodeSession.objects.filter(pk=session.pk).update(uid=session.uid)
            return
        except IntegrityError:
            continue
    raise sandbox.SandboxUnavailable(
        "No free sandbox uid: every one of CODE_INTERPRETER_SANDBOX_UID_SPAN is held by a live "
        "session. Raise it, or shorten CODE_INTERPRETER_SESSION_TTL_HOURS."
    )


def _insert_unless_taken(session: CodeSession) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: whether the row went in (its uid was free), without a
    savepoint per try (this runs on every new session)."""
    fields = CodeSession._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    values = [
        field.get_db_prep_save(getattr(session, field.attname), connection) for field in fields
    ]
    marks = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CodeSession._meta.db_table} ({columns}) VALUES ({marks})"  # noqa: S608
            " ON CONFLICT DO NOTHING",
            values,
        )
        return bool(cursor.rowcount == 1)


def _mount(workdir: Path, files: dict[str, CodeFile]) -> dict[str, CodeFile]:
    storage = file_storage()
    for name, record in files.items():
        try:
            with storage.open(record.storage_name, "rb") as source:
                workspace.write_file(workdir, name, source)
        except FileNotFoundError:
            raise NotFound(
                f"Input file not found: {name} ({record.session_id}/{record.id}) is no longer "
                "stored: upload it again.",
                code="file_not_found",
            ) from None
    return files


def _store_outputs(session: CodeSession, workdir: Path, paths: list[str]) -> list[CodeFile]:
    records: list[CodeFile] = []
    try:
        for path in paths:
            try:
                source = sandbox.open_output(workdir, path)
            except FileNotFoundError:  # replaced by a link or removed meanwhile
                continue
            with source:
                records.append(_store(session, source, name=path, origin=FileOrigin.OUTPUT))
    except BaseException:
        _delete_blobs(record.storage_name for record in records)
        raise
    return records


def _record_exec(
    session: CodeSession,
    records: list[CodeFile],
    inputs: dict[str, CodeFile],
    *,
    disk_bytes: int,
    now: datetime,
    lease: budgets.Lease,
) -> None:
    expires = now + _ttl()
    with transaction.atomic():
        CodeSession.objects.filter(pk=session.pk).update(
            last_used_at=now, expires_at=expires, disk_bytes=disk_bytes
        )
        budgets.lease_store().release_with_transaction(lease)
        if records:
            replaced = CodeFile.objects.filter(session=session, name__in=[r.name for r in records])
            stale = list(replaced.values_list("storage_name", flat=True))
            replaced.delete()
            CodeFile.objects.bulk_create(records)
            if stale:
                transaction.on_commit(lambda: _delete_blobs(stale))
        used = {record.session_id for record in inputs.values()} - {session.pk}
        if used:  # what was just used stays around as long as what it produced
            CodeSession.objects.filter(pk__in=used, expires_at__lt=expires).update(
                last_used_at=now, expires_at=expires
            )


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
        expires_at=now + _ttl(),
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
                    code="payload_too_large" if too_large else "invalid_file_name",
                    status=413 if too_large else 400,
                )
            if problem:
                results.append(UploadResult(filename=name, error=problem))
                continue
            seen.add(name)
            record = _store(session, upload, name=name, origin=FileOrigin.UPLOAD)
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
        _delete_blobs(record.storage_name for record in records)
        raise
    return session.id, results


# -- deletion and expiry -----------------------------------------------------------------------


def file_delete(*, record: CodeFile) -> None:
    """Forget a file: its record, its stored bytes and its copy in the session's directory."""
    with transaction.atomic():
        record.delete()
        transaction.on_commit(lambda: _delete_blobs([record.storage_name]))
    with workspace.session_lock(record.session_id):
        workspace.remove_file(workspace.session_dir(record.session_id), record.name)


@dataclass
class CleanupReport:
    sessions: int = 0
    files: int = 0
    bytes: int = 0
    orphan_dirs: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "sessions": self.sessions,
            "files": self.files,
            "bytes": self.bytes,
            "orphan_dirs": self.orphan_dirs,
        }


def sessions_cleanup(
    *,
    now: datetime | None = None,
    batch_size: int = 200,
    progress: Callable[[int], object] | None = None,
) -> CleanupReport:
    """Remove expired sessions (records, stored files, directories) and orphaned directories."""
    now = now or timezone.now()
    report = CleanupReport()
    while True:
        batch = list(
            CodeSession.objects.filter(expires_at__lte=now)
            .order_by("expires_at")
            .prefetch_related("files")[:batch_size]
        )
        if not batch:
            break
        for session in batch:
            _session_remove(session, report, expires_at__lte=now)
        if progress:
            progress(len(batch))
    report.orphan_dirs = _orphan_dirs_cleanup(now)
    logger.info("code sessions cleanup %s", report.as_dict())
    return report


def _session_remove(session: CodeSession, report: CleanupReport, **still: Any) -> None:
    """A session's record, stored files and directory; ``still``: conditions the record must
    still meet to go (checked under the session's lock)."""
    files = list(session.files.all())
    with workspace.session_lock(session.id):
        CodeSession.objects.filter(pk=session.pk, **still).delete()
        _delete_blobs(record.storage_name for record in files)
        workspace.remove_dir(session.id)
    report.sessions += 1
    report.files += len(files)
    report.bytes += sum(record.size for record in files)


def sessions_delete_owned(*, owner: str) -> CleanupReport:
    """Every session of one owner, with its files (an account's deletion: users.lifecycle)."""
    report = CleanupReport()
    for session in CodeSession.objects.filter(owner=owner).prefetch_related("files"):
        _session_remove(session, report, owner=owner)
    logger.info("code sessions of a deleted account removed %s", report.as_dict())
    return report


def on_account_erased(sender: object, *, user: User, **_: object) -> None:
    """What this app holds for a user: the sessions LibreChat opened as them."""
    if user.librechat_user_id:
        sessions_delete_owned(owner=f"user:{user.librechat_user_id}")


def _orphan_dirs_cleanup(now: datetime) -> int:
    """Directories no session owns any more (a crash between run and record), after a grace."""
    root = workspace.sessions_root()
    if not root.is_dir():
        return 0
    grace = (now - timedelta(hours=1)).timestamp()
    candidates = [
        entry.name
        for entry in root.iterdir()
        if is_valid_id(entry.name) and entry.lstat().st_mtime < grace
    ]
    known = set(CodeSession.objects.filter(pk__in=candidates).values_list("pk", flat=True))
    removed = 0
    for name in candidates:
        if name not in known:
            workspace.remove_dir(name)
            removed += 1
    return removed


def session_count_expired(now: datetime | None = None) -> int:
    return CodeSession.objects.filter(expires_at__lte=now or timezone.now()).count()
