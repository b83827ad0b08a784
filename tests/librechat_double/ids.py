"""Identifiers and dates of the chat API as LibreChat prints them (UUIDs, nanoids, JS dates)."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime

NO_PARENT = "00000000-0000-0000-0000-000000000000"
NEW_CONVO = "new"
_NANOID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# zod's `z.string().uuid()` (librechat-data-provider `isUUID`): versions 1-8 and the nil UUID.
_UUID = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-"
    r"[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000)$"
)
# The 21-character id LibreChat's /api/files/code/download route insists on (`isValidID`).
_CODE_ID = re.compile(r"^[A-Za-z0-9_-]{21}$")
_JS_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_JS_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_JS_DATE = re.compile(r"^\w{3} (\w{3}) (\d{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT\+0000")


def new_uuid() -> str:
    return str(uuid.uuid4())


def nanoid(size: int = 21) -> str:
    return "".join(secrets.choice(_NANOID_ALPHABET) for _ in range(size))


def step_id() -> str:
    """Run step ids of @librechat/agents: `step_` + a 21-character nanoid."""
    return f"step_{nanoid()}"


def completion_id() -> str:
    """The upstream `chatcmpl-…` id a message_creation step names."""
    return f"chatcmpl-{secrets.token_hex(12)}"


def tool_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID.match(value) is not None


def is_code_id(value: str) -> bool:
    return _CODE_ID.match(value) is not None


def epoch_ms(moment: float) -> int:
    return int(moment * 1000)


def js_date_string(moment: float) -> str:
    """`String(date)` in a UTC Node process: whole seconds, so milliseconds are lost."""
    stamp = datetime.fromtimestamp(moment, tz=UTC)
    return (
        f"{_JS_DAYS[stamp.weekday()]} {_JS_MONTHS[stamp.month - 1]} {stamp.day:02d} "
        f"{stamp.year} {stamp:%H:%M:%S} GMT+0000 (Coordinated Universal Time)"
    )


def parse_date(value: str) -> float | None:
    """What Mongoose makes of a date string: `String(date)` output or an ISO timestamp."""
    match = _JS_DATE.match(value)
    if match:
        month, day, year, hour, minute, second = match.groups()
        stamp = datetime(
            int(year),
            _JS_MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
        return stamp.timestamp()
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
