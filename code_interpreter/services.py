"""``/exec``: run code in a session (new, or continued from the files it names) and store what
it wrote. Uploads and deleting a file: uploads.py; expiry and clean-up: cleanup.py."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from code_interpreter import budgets, sandbox, warm_sessions, workspace
from code_interpreter.auth import Caller
from code_interpreter.ids import name_problem, new_id
from code_interpreter.limits import execution_slots
from code_interpreter.models import CodeFile, CodeSession, FileOrigin, SessionOrigin
from code_interpreter.schemas import ExecRequest, FileRef
from code_interpreter.selectors import NotFound, may_access, session_for_caller
from code_interpreter.storage import delete_blobs, file_storage, session_ttl, store
from core.errors import ErrorCode

logger = logging.getLogger(__name__)
# Not worth handing back to LibreChat as an artifact: caches and hidden files.
_SKIPPED_PARTS = ("__pycache__", ".ipynb_checkpoints")


# -- /exec -------------------------------------------------------------------------------------


@dataclass
class ExecOutcome:
    session_id: str
    language: str
    result: sandbox.ExecutionResult
    files: list[dict[str, Any]] = field(default_factory=list)


def owner_descriptor(owner: str, version: int | None = None) -> dict[str, Any]:
    """A file's ``kind`` and ``resource_id`` (and a skill's ``version``), from whom its session
    belongs to: what LibreChat v0.8.8 sends back when it names the file again (unsaid, it
    takes ``kind: user``, and a skill file without its version would come back as a user's)."""
    kind, _, resource_id = owner.partition(":")
    if kind not in ("user", "agent", "skill"):
        return {"kind": "user"}
    descriptor: dict[str, Any] = {"kind": kind, "resource_id": resource_id}
    if kind == "skill" and version is not None:
        descriptor["version"] = version
    return descriptor


def _file_entry(
    record: CodeFile, *, name: str | None = None, inherited: bool, version: int | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": record.id,
        "name": name or record.name,
        "path": f"{sandbox.SANDBOX_MOUNT}/{name or record.name}",
        "storage_session_id": record.session_id,
        **owner_descriptor(record.session.owner, version),
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
                code=ErrorCode.FILE_NOT_FOUND,
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
    versions = {ref.id: ref.version for ref in request.files if ref.version is not None}
    budget = caller.budget_key
    request, hinted = warm_sessions.with_hinted_session(caller, request)
    if hinted is not None:
        session = hinted
    elif request.session_id:
        session = session_for_caller(caller, request.session_id)
    else:
        session = CodeSession(
            id=new_id(),
            owner=_exec_owner(caller, inputs),
            caller=budget,
            origin=SessionOrigin.EXEC,
            created_at=now,
            last_used_at=now,
            expires_at=now + session_ttl(),
        )
    known = _KnownFiles(session, new=not request.session_id)
    limits = sandbox.default_limits()
    if request.timeout_s is not None:
        limits = replace(limits, timeout_s=request.timeout_s)
    max_outputs = settings.CODE_INTERPRETER_MAX_OUTPUT_FILES
    quota = limits.disk_quota_bytes
    granted: list[int] = []

    def prepare(lease: budgets.Lease) -> None:
        """With the lease (in its transaction, with database leases): the session exists and
        has its uid, and what it may fill is known."""
        if not lease.caller_locked:
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
            if created and known.files():  # the directory was lost (another host, a wiped disk)
                _mount(workdir, known.files())
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
                if not created or mounted or known.files()
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
                        version = versions.get(inputs[path].id)
                        entries.append(
                            _file_entry(inputs[path], name=path, inherited=True, version=version)
                        )
                    elif path in known.files():
                        entries.append(_file_entry(known.files()[path], inherited=True))
                elif result.status == "ok" and not _skipped(path):
                    written.append(path)
            records = _store_outputs(session, workdir, written[:max_outputs])
            try:
                _record_exec(
                    session, records, inputs, disk_bytes=result.disk_bytes, now=now, lease=lease
                )
            except BaseException:
                delete_blobs(record.storage_name for record in records)
                raise
    entries[:0] = [_file_entry(record, inherited=False) for record in records]
    warm_sessions.remember_hint(caller, request, session.id)
    return ExecOutcome(session_id=session.id, language=request.lang, result=result, files=entries)


class _KnownFiles:
    """The session's stored files by name, read once and only when needed: a run that leaves
    no file of a directory it did not have to rebuild unchanged (``print(1)`` in a session
    without files) makes no query for them."""

    def __init__(self, session: CodeSession, *, new: bool) -> None:
        self.session = session
        self.by_name: dict[str, CodeFile] | None = {} if new else None

    def files(self) -> dict[str, CodeFile]:
        if self.by_name is None:
            self.by_name = {record.name: record for record in self.session.files.all()}
        return self.by_name


def _open_session(session: CodeSession, used: budgets.Usage) -> None:
    """Save a new session, within its caller's cap on live sessions, with its own uid. Runs in
    ``prepare``'s transaction, which holds the caller's lock and read ``used`` under it."""
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
                code=ErrorCode.FILE_NOT_FOUND,
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
                records.append(store(session, source, name=path, origin=FileOrigin.OUTPUT))
    except BaseException:
        delete_blobs(record.storage_name for record in records)
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
    expires = now + session_ttl()
    with transaction.atomic():
        # A session this request opened holds these already, unless its run left files.
        if (session.last_used_at, session.expires_at, session.disk_bytes) != (
            now,
            expires,
            disk_bytes,
        ):
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
                transaction.on_commit(lambda: delete_blobs(stale))
        used = {record.session_id for record in inputs.values()} - {session.pk}
        if used:  # what was just used stays around as long as what it produced
            CodeSession.objects.filter(pk__in=used, expires_at__lt=expires).update(
                last_used_at=now, expires_at=expires
            )
