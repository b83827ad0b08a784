"""Where the code interpreter's files live (the ``code_interpreter`` storage: local or S3) and
how one is stored: hashed, named by a fresh id, its record left for the caller to save."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.utils import timezone

from code_interpreter.ids import basename, new_id
from code_interpreter.models import CodeFile, CodeSession

logger = logging.getLogger(__name__)


def file_storage() -> Storage:
    return storages["code_interpreter"]


def session_ttl() -> timedelta:
    return timedelta(hours=settings.CODE_INTERPRETER_SESSION_TTL_HOURS)


def content_type(name: str) -> str:
    return mimetypes.guess_type(basename(name), strict=False)[0] or "application/octet-stream"


def delete_blobs(names: Iterable[str]) -> None:
    storage = file_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # a blob left behind costs space, not correctness
            logger.warning("could not delete stored file %s", name, exc_info=True)


def store(session: CodeSession, source: Any, *, name: str, origin: str) -> CodeFile:
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
        content_type=content_type(name),
        size=size,
        sha256=digest.hexdigest(),
        origin=origin,
        created_at=timezone.now(),
    )
