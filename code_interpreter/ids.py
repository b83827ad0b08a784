"""Ids and names as LibreChat expects them: 21-character nanoids, resource ids, file names.

LibreChat rejects any session or file id that is not ``^[A-Za-z0-9_-]{21}$`` (contract C6), and
where a request names no caller the ids are the only capability, so they come from ``secrets``.
"""

from __future__ import annotations

import re
import secrets
from pathlib import PurePosixPath

from core.errors import ApplicationError, ErrorCode

ID_LENGTH = 21
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_ID = re.compile(r"[A-Za-z0-9_-]{21}")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
SHARED_KINDS = ("agent", "skill")
KINDS = ("user", *SHARED_KINDS)
MAX_NAME_CHARS = 512
MAX_NAME_DEPTH = 16


def new_id() -> str:
    """126 random bits: 64 symbols divide 256, so masking a byte is unbiased."""
    return "".join(_ALPHABET[byte & 63] for byte in secrets.token_bytes(ID_LENGTH))


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def checked_id(value: object, field: str) -> str:
    if not is_valid_id(value):
        raise ApplicationError(
            f"{field} must be a 21-character id of letters, digits, '_' and '-'.",
            code=ErrorCode.INVALID_ID,
        )
    assert isinstance(value, str)
    return value


def checked_resource_id(value: object, field: str) -> str:
    if not isinstance(value, str) or _RESOURCE_ID.fullmatch(value) is None:
        raise ApplicationError(
            f"{field} must be 1 to 128 letters, digits or '_.:@-'.", code=ErrorCode.INVALID_ID
        )
    return value


def checked_kind(value: object, field: str = "kind") -> str:
    if value not in KINDS:
        raise ApplicationError(
            f"{field} must be one of: {', '.join(KINDS)}.", code=ErrorCode.INVALID
        )
    assert isinstance(value, str)
    return value


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a path below /mnt/data, or None when it can."""
    if not isinstance(name, str) or not name:
        return "a file name is required"
    if len(name) > MAX_NAME_CHARS:
        return f"file names may have at most {MAX_NAME_CHARS} characters"
    if _CONTROL.search(name):
        return "file names may not contain control characters"
    if "\\" in name:
        return "file names may not contain backslashes"
    if name.startswith("/"):
        return "file names must be relative to /mnt/data"
    parts = name.split("/")
    if len(parts) > MAX_NAME_DEPTH:
        return f"file names may have at most {MAX_NAME_DEPTH} path components"
    for part in parts:
        if part in ("", ".", ".."):
            return "file names may not contain empty, '.' or '..' components"
        if len(part.encode()) > 255:
            return "each part of a file name may have at most 255 bytes"
    return None


def checked_name(name: object, field: str = "name") -> str:
    problem = name_problem(name)
    if problem:
        raise ApplicationError(
            f"Invalid {field} {name!r}: {problem}.", code=ErrorCode.INVALID_FILE_NAME
        )
    assert isinstance(name, str)
    return name


def basename(name: str) -> str:
    return PurePosixPath(name).name
