"""What differs between the LibreChat releases the double serves (`version` in DoubleConfig).

The double keeps its own table rather than asking the BFF's librechat/versions.py: it stands in
for LibreChat, and must not agree with our client by construction. Facts and sources:
docs/librechat-versions.md.
"""

from __future__ import annotations

from typing import Any

RELEASES = ("0.8.7", "0.8.8")
LATEST = RELEASES[-1]
# api/server/controllers/agents/protocol.js (0.8.8): header, body and query field.
PROTOCOL_HEADER = "x-librechat-generation-protocol"
PROTOCOL_FIELD = "generationProtocolVersion"


def at_least(version: str, release: str) -> bool:
    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("-", 1)[0].split("."))

    return key(version) >= key(release)


def has_steer_and_resume(version: str) -> bool:
    """POST /api/agents/chat/steer and /resume (agents/index.js, chat.js)."""
    return at_least(version, "0.8.8")


def gates_password_login(version: str) -> bool:
    """validateEmailLogin on POST /api/auth/login: ALLOW_EMAIL_LOGIN=false refuses it."""
    return at_least(version, "0.8.8")


def _parse(value: Any) -> int | None:
    if value in (1, "1"):
        return 1
    if value in (2, "2"):
        return 2
    return None


def requested_protocol(headers: Any, query: Any, body: Any) -> int:
    """getRequestedGenerationProtocol: every marker present must say 2, else 1 (lowest wins;
    an unreadable marker reads as 1)."""
    markers = [
        body.get(PROTOCOL_FIELD) if isinstance(body, dict) else None,
        query.get(PROTOCOL_FIELD),
        headers.get(PROTOCOL_HEADER),
    ]
    advertised = [_parse(value) for value in markers if value is not None]
    if not advertised or any(value is None for value in advertised):
        return 1
    return 2 if all(value == 2 for value in advertised) else 1
