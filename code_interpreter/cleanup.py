"""Expired sessions go (records, stored files, directories), with the directories no session
owns; an erased account's sessions go with it (``on_account_erased``, connected in apps.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from code_interpreter import workspace
from code_interpreter.ids import is_valid_id
from code_interpreter.models import CodeSession
from code_interpreter.storage import delete_blobs
from core.accounts import Account

logger = logging.getLogger(__name__)


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
        delete_blobs(record.storage_name for record in files)
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


def on_account_erased(sender: object, *, user: Account, **_: object) -> None:
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
