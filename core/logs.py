"""Logging: a request id on every record, secrets scrubbed, text or JSON (``LOG_FORMAT``).

The request id lives in a contextvar, set by ``core.middleware.RequestIdMiddleware``: no
thread-local, no thread hop, and it follows the request into ``sync_to_async`` threads and the
tasks it starts. In DBOS workflow steps the workflow id stands in for it; elsewhere (Celery,
commands) there is none, and calls to LibreChat get a new id each.
The filters below are attached to the handlers in ``settings.LOGGING``, so every record that is
written, from any logger, passes through them (docs/observability.md).
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from dbos import DBOS
from django.conf import settings
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# What we accept from a client or load balancer: UUIDs, hex, base64ish; no spaces, quotes or
# line breaks (they would forge log lines), and short.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """The value if it is a usable request id, else None."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def _workflow_id() -> str | None:
    """Inside a DBOS workflow (its threads do not inherit the request's context): its id, which
    ties together every call and log line of one provisioning run."""
    try:
        return DBOS.workflow_id
    except Exception:  # no DBOS context at all
        return None


def current_request_id() -> str | None:
    """The request's id; in a workflow step, the workflow's id; elsewhere None."""
    return request_id_var.get() or _workflow_id()


def outgoing_request_id() -> str:
    """For a call to another service: the current id, or a new one outside any request."""
    return current_request_id() or new_request_id()


# -- redaction -----------------------------------------------------------------------------------

REDACTED = "[REDACTED]"
# Names of secrets (not secrets).
_SECRET_NAMES = "|".join(
    (
        "password",
        "passwd",
        "pwd",
        "confirm_password",
        "password1",
        "password2",
        "secret",
        "secret_key",
        "token",
        "access_token",
        "refresh_token",
        "refreshtoken",
        "api[_-]?key",
        "x-api-key",
        "client_secret",
        "signing_key",
        "private_key",
        "encryption_key",
    )
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xxx / "authorization": "Basic xxx" (also in header reprs).
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=,]\s*(?:b?[\"'])?)"
            r"((?:bearer|basic|token)\s+)?[^\s\"',;)}\]]+"
        ),
        r"\1\2" + REDACTED,
    ),
    # Cookie / Set-Cookie headers: the whole value.
    (
        re.compile(r"(?i)(\b(?:set-)?cookie[\"']?\s*[:=,]\s*(?:b?[\"'])?)[^\"'\n)}\]]+"),
        r"\1" + REDACTED,
    ),
    # refreshToken=..., sessionid=..., csrftoken=... wherever they appear.
    (
        re.compile(r"(?i)\b(refreshToken|sessionid|csrftoken)=[^;\s\"',&]+"),
        r"\1=" + REDACTED,
    ),
    # JWTs (header.payload.signature, base64url, header starting with {" -> eyJ).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[REDACTED_JWT]"),
    # Fernet tokens: version byte 0x80 and a timestamp, base64url -> "gAAAAA".
    (re.compile(r"\bgAAAAA[A-Za-z0-9_=-]{40,}"), "[REDACTED_FERNET]"),
    # Credentials in URLs: scheme://user:password@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1" + REDACTED + "@"),
    # name=value, name: value, 'name': 'value', "name": "value" for secret-looking names.
    (
        re.compile(
            rf"(?i)([\"']?\b(?:{_SECRET_NAMES})[\"']?\s*(?:=|:)\s*[\"']?)"
            r"(?!\[REDACTED)([^\s\"',;&)}\]]+)"
        ),
        r"\1" + REDACTED,
    ),
)
# Attribute names of `extra=` values that are secrets whatever they hold.
_SECRET_KEY = re.compile(rf"(?i)^(?:{_SECRET_NAMES}|authorization|cookie|set-cookie)$")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
}


def _configured_secrets() -> Iterable[str]:
    """Secrets from the settings: scrubbed as literal strings wherever they appear."""
    if not settings.configured:
        return ()
    values = [
        getattr(settings, "SECRET_KEY", ""),
        getattr(settings, "JWT_SIGNING_KEY", ""),
        *str(getattr(settings, "LIBRECHAT_ENCRYPTION_KEY", "") or "").split(","),
        *getattr(settings, "CODE_INTERPRETER_API_KEYS", ()),
    ]
    return [v.strip() for v in values if v and len(v.strip()) >= 8]


def scrub(text: str) -> str:
    """``text`` with every secret we can recognise replaced."""
    for secret in _configured_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_value(key: str, value: Any, depth: int = 0) -> Any:
    if _SECRET_KEY.match(key):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if depth < 4 and isinstance(value, dict):
        return {k: _scrub_value(str(k), v, depth + 1) for k, v in value.items()}
    if depth < 4 and isinstance(value, (list, tuple)):
        return type(value)(_scrub_value("", v, depth + 1) for v in value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return scrub(str(value))


class RedactSecretsFilter(logging.Filter):
    """Scrubs the message, its arguments, the traceback and ``extra=`` values of a record.

    The message is formatted here once (``msg % args``) and the record carries the scrubbed text
    from then on, so every handler and formatter after this one sees no secret.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, scrubbed
            message = f"{record.msg!r} {record.args!r}"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = scrub(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                setattr(record, key, _scrub_value(key, value))
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or ``-``) on the record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the
    ``extra=`` fields, and exc_info when there is a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("json_ensure_ascii", False)
        # uvicorn's `color_message` extra repeats the message with terminal colour codes.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message"])
        super().__init__(*args, **kwargs)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def logging_config(*, log_format: str, level: str, access_log: bool = True) -> dict[str, Any]:
    """The LOGGING setting: one console handler with the request-id and redaction filters.

    ``access_log``: uvicorn's line per request. Django applies this after uvicorn set its logging
    up, so uvicorn's own ``--no-access-log`` would be undone here; this is the switch instead."""
    formatter = (
        {"()": "core.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "core.logs.RequestIdFilter"},
            "redact": {"()": "core.logs.RedactSecretsFilter"},
        },
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id", "redact"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own console handler would print unfiltered duplicates with DEBUG on.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.db.backends": {"level": "INFO"},
            # httpx logs every request at INFO: noise, and work on the proxy's hot path.
            "httpx": {"level": "WARNING"},
            # DBOS adds a plain handler of its own unless its logger already has one.
            "dbos": {"handlers": ["console"], "propagate": False},
            # uvicorn's own lines (start-up, errors, access log) in the same format.
            "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # Without handlers uvicorn skips the access line altogether (it checks hasHandlers).
            "uvicorn.access": {
                "handlers": ["console"] if access_log else [],
                "level": level,
                "propagate": False,
            },
        },
    }
