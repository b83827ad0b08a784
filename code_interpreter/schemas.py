"""Validation at the edge: the /exec body and the identity fields of the other routes.

Every problem is an ApplicationError with a message the model can act on (LibreChat shows the
reply body of a failed /exec to the model); nothing a client sends can cause a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from code_interpreter import sandbox
from code_interpreter.ids import (
    SHARED_KINDS,
    checked_id,
    checked_kind,
    checked_name,
    checked_resource_id,
)
from core.errors import ApplicationError, ErrorCode

MAX_ARGS = 100
MAX_ARG_CHARS = 4096
MAX_INPUT_FILES = 200
_HINT = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True)
class Access:
    """Which owner a request claims to act for (LibreChat's ``kind`` and ``id``)."""

    kind: str | None = None
    resource_id: str | None = None


@dataclass(frozen=True)
class FileRef:
    id: str
    session_id: str
    name: str
    access: Access
    version: int | None = None  # a skill file's, echoed back on the file as LibreChat sent it


@dataclass(frozen=True)
class ExecRequest:
    lang: str  # canonical: "py", "bash", ...
    code: str
    args: tuple[str, ...]
    session_id: str | None
    files: tuple[FileRef, ...]
    timeout_s: float | None
    stateful: bool = False  # py: variables and imports live on in the session's warm sandbox
    runtime_session_hint: str | None = None  # LibreChat v0.8.8: one warm sandbox per hint


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, code=ErrorCode.INVALID)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApplicationError(
            f"The request body is not valid JSON: {exc}", code=ErrorCode.MALFORMED_REQUEST
        ) from None
    if not isinstance(data, dict):
        raise ApplicationError(
            "The request body must be a JSON object.", code=ErrorCode.MALFORMED_REQUEST
        )
    return data


def parse_exec(data: Mapping[str, Any]) -> ExecRequest:
    raw_lang = data.get("lang")
    if not isinstance(raw_lang, str) or not raw_lang.strip():
        raise _invalid('lang is required, e.g. "py" or "bash".')
    lang = sandbox.canonical_language(raw_lang)
    if lang is None:
        raise ApplicationError(
            f"Unsupported language: {raw_lang}",
            code=ErrorCode.UNSUPPORTED_LANGUAGE,
            extra={"supported_languages": sorted(sandbox.available_languages())},
        )
    code = data.get("code")
    if not isinstance(code, str):
        raise _invalid("code is required and must be a string.")
    if not code.strip():
        raise _invalid("code is empty: send the code to run.")
    session_id = data.get("session_id")
    if session_id is not None:
        session_id = checked_id(session_id, "session_id")
    return ExecRequest(
        lang=lang,
        code=code,
        args=_parse_args(data.get("args")),
        session_id=session_id,
        files=_parse_files(data.get("files")),
        timeout_s=_parse_timeout(data.get("timeout")),
        stateful=_parse_stateful(data.get("stateful")),
        runtime_session_hint=_parse_hint(data.get("runtime_session_hint")),
    )


def _parse_stateful(raw: object) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise _invalid("stateful must be true or false.")
    return raw


def _parse_hint(raw: object) -> str | None:
    """LibreChat v0.8.8's ``runtime_session_hint``: up to 128 of [A-Za-z0-9._:-]."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _HINT.fullmatch(raw):
        raise _invalid(
            "runtime_session_hint must be a string of at most 128 letters, digits, '.', '_', "
            "':' or '-'."
        )
    return raw


def _parse_args(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ARGS:
        raise _invalid(f"args must be a list of at most {MAX_ARGS} strings.")
    for arg in raw:
        if not isinstance(arg, str) or len(arg) > MAX_ARG_CHARS or "\x00" in arg:
            raise _invalid(f"Each of args must be a string of at most {MAX_ARG_CHARS} characters.")
    return tuple(raw)


def _parse_timeout(raw: object) -> float | None:
    """``timeout`` is in milliseconds, as LibreChat and the official server use it."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not raw > 0:
        raise _invalid("timeout must be a positive number of milliseconds.")
    return sandbox.clamp_timeout(float(raw) / 1000)


def _parse_files(raw: object) -> tuple[FileRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_INPUT_FILES:
        raise _invalid(f"files must be a list of at most {MAX_INPUT_FILES} file references.")
    refs = []
    for index, item in enumerate(raw):
        field = f"files[{index}]"
        if not isinstance(item, dict):
            raise _invalid(f"{field} must be an object with id, storage_session_id and name.")
        session_id = item.get("storage_session_id", item.get("session_id"))
        refs.append(
            FileRef(
                id=checked_id(item.get("id"), f"{field}.id"),
                session_id=checked_id(session_id, f"{field}.storage_session_id"),
                name=checked_name(item.get("name"), f"{field}.name"),
                access=parse_access(
                    item.get("kind"),
                    item.get("resource_id"),
                    field=field,
                    resource_field="resource_id",
                ),
                version=parse_version(item.get("version"), f"{field}.version"),
            )
        )
    return tuple(refs)


def parse_version(raw: object, field: str = "version") -> int | None:
    """A skill's version: a non-negative integer (multipart sends it as digits)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**18:
        return raw
    raise _invalid(f"{field} must be a non-negative integer.")


def parse_access(
    kind: object,
    resource_id: object,
    *,
    entity_id: object = None,
    field: str = "",
    resource_field: str = "id",
) -> Access:
    """``kind``/``id`` (or legacy ``entity_id``, an agent's id) as the owner claimed."""
    prefix = f"{field}." if field else ""
    if kind in (None, ""):
        if entity_id not in (None, ""):
            return Access("agent", checked_resource_id(entity_id, f"{prefix}entity_id"))
        return Access()
    kind = checked_kind(kind, f"{prefix}kind")
    if kind in SHARED_KINDS:
        return Access(kind, checked_resource_id(resource_id, f"{prefix}{resource_field}"))
    if resource_id in (None, ""):
        return Access("user")
    return Access("user", checked_resource_id(resource_id, f"{prefix}{resource_field}"))
