"""What the chat proxy lets through to LibreChat: an allowlist, matched on the canonical path.

Deny by default. ``ROUTES`` is the one table of LibreChat routes the chat page and the mobile
apps may reach, each with the reason it is there and the LibreChat release that has it; the same
table is in docs/chat-proxy.md (a test keeps the two equal). Everything else is refused with 403
``route_refused`` before LibreChat is asked anything.

Express routes case-insensitively, takes a trailing slash as optional, and any HTTP client on
the way may resolve ``./`` and ``../`` (contract, pitfall 16). So the path is first brought to
one canonical form, the way Express would see it, and anything that could be read two ways is
refused with 400 ``path_ambiguous``:

* the path is taken as the client sent it (the raw request target), split on ``/`` and each
  segment percent-decoded once;
* refused: an empty segment (``//``), a ``.`` or ``..`` segment, ``\\``, ``;`` (a path parameter
  to some servers), ``%`` escapes of ``/``, ``\\``, ``.`` or ``%``, a malformed escape, control
  characters (``%00``), and anything that is not ASCII (a look-alike such as Cyrillic a (U+0430) or
  the Kelvin sign, which some case-folding turns into ``k``);
* one trailing slash is dropped (Express treats ``/convos/`` as ``/convos``);
* the literal parts of a route match case-insensitively; parameters (ids) keep their case and
  must look like what LibreChat issues.

The upstream path is then built from the matched route: its literal parts as the table spells
them and each parameter re-encoded, so the path LibreChat routes is byte for byte the path that
was checked. Facts from LibreChat v0.8.7's ``api/server/index.js`` (the mounts) and
``api/server/routes/*.js``, and v0.8.8's ``api/server/routes/agents/index.js`` and ``chat.js``
(steer, resume), as cited per route in docs/chat-proxy.md. Which release we sit in front of is
``librechat.versions``' business: ``resolve`` takes its version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

from django.http import HttpRequest

from core.errors import ApplicationError, ErrorCode
from librechat.versions import version_key

PROXY_PREFIX = "/api/chat"
# The chat POST, whose pre-start denials LibreChat writes as SSE text with status 200 ...
CHAT_START = "agents/chat/:endpoint"
# ... and the event stream, which may be silent for minutes during a tool call.
CHAT_STREAM = "agents/chat/stream/:streamId"


@dataclass(frozen=True)
class Route:
    """One LibreChat route under ``/api/``: ``method``, ``path`` with ``:name`` parameters, the
    reason a client needs it, and the first LibreChat release that has it."""

    method: str
    path: str
    reason: str
    since: str = "0.8.7"


# Ordered as docs/chat-proxy.md shows them. A route of a later LibreChat release is one more line
# with its `since`; librechat.versions says which release we sit in front of.
ROUTES: tuple[Route, ...] = (
    Route("GET", "config", "start-up settings (app title, interface flags) every client reads"),
    Route("GET", "endpoints", "the model menu: endpoints, and which need a user-provided key"),
    Route("GET", "models", "the model menu: the models of each endpoint"),
    Route("GET", "balance", "the user's token balance (204 while balances are off)"),
    Route("GET", "banner", "the operator's announcement banner"),
    Route("GET", "user", "the user's LibreChat profile; its id builds file download paths"),
    Route("GET", "search/enable", "whether message search is available"),
    Route("GET", "convos", "the conversation list (limit, cursor, search, archived, tags)"),
    Route("GET", "convos/:conversationId", "one conversation: title, endpoint, model"),
    Route("GET", "convos/gen_title/:conversationId", "a new conversation's title, if missed"),
    Route("POST", "convos/update", "rename a conversation"),
    Route("POST", "convos/archive", "archive or unarchive a conversation"),
    Route("DELETE", "convos", "delete one conversation (LibreChat insists on arg.conversationId)"),
    Route("GET", "messages", "a conversation's messages page by page, and message search"),
    Route("GET", "messages/:conversationId", "all messages of a conversation"),
    Route("PUT", "messages/:conversationId/:messageId", "edit the text of a message"),
    Route("POST", CHAT_START, "send a message: starts the answer"),
    Route("GET", CHAT_STREAM, "the answer as it is written (server-sent events, ?resume=true)"),
    Route("GET", "agents/chat/status/:conversationId", "whether an answer is still being written"),
    Route("GET", "agents/chat/active", "the user's answers still being written (app restart)"),
    Route("POST", "agents/chat/abort", "stop an answer"),
    Route("POST", "agents/chat/steer", "add to an answer being written", since="0.8.8"),
    Route("POST", "agents/chat/resume", "answer a paused run (tool approval, question)", "0.8.8"),
    Route("POST", "files", "upload a file (multipart)"),
    Route("POST", "files/images", "upload an image for the model to see"),
    Route("GET", "files", "the user's files"),
    Route("DELETE", "files", "delete files of the user's own"),
    Route("GET", "files/config", "upload limits and accepted file types"),
    Route("GET", "files/download/:userId/:fileId", "download an attachment"),
    Route("GET", "files/code/download/:sessionId/:fileId", "download a file the code tool made"),
    Route("GET", "presets", "the user's saved model presets"),
    Route("POST", "presets", "save a model preset"),
    Route("POST", "presets/delete", "delete a model preset"),
)

# What a parameter may hold. Ids LibreChat issues are UUIDs, ObjectIds (24 hex) and nanoids
# (21 of [A-Za-z0-9_-]); a parent id still being saved ends in `_`. Endpoint names come from
# librechat.yaml (`Mistral AI`): ASCII letters, digits, spaces and a little punctuation.
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
PARAMETERS: dict[str, re.Pattern[str]] = {
    "conversationId": _ID,
    "messageId": _ID,
    "streamId": _ID,
    "userId": _ID,
    "fileId": _ID,
    "sessionId": _ID,
    "endpoint": re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.()+-]{0,99}"),
}
# Values LibreChat routes elsewhere although the pattern would take them: `POST /api/agents/
# chat/duplicate` is agents/v1.js's `POST /:id/duplicate` with id "chat" (likewise `revert`).
# `steer` and `resume` are routes of their own from 0.8.8 on; before, LibreChat would start a
# turn on an endpoint of that name, so they are never taken as endpoint names: one path, one
# meaning, whatever the release.
SHADOWED: dict[str, frozenset[str]] = {
    "endpoint": frozenset({"duplicate", "revert", "steer", "resume"})
}

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# Decoded, these would change how the path splits or resolves; encoded, they are ambiguous.
_ENCODED_FORBIDDEN = {"/": "/", "\\": "\\", ".": ".", "%": "%"}


class PathAmbiguous(ApplicationError):
    status = 400
    code = ErrorCode.PATH_AMBIGUOUS


class RouteRefused(ApplicationError):
    status = 403
    code = ErrorCode.ROUTE_REFUSED


@dataclass(frozen=True)
class Allowed:
    """An allowed request: its route and the canonical path (what LibreChat gets, encoded)."""

    route: Route
    path: str


def active_routes(version: str) -> tuple[Route, ...]:
    """The routes of ``ROUTES`` that LibreChat ``version`` has."""
    return tuple(r for r in ROUTES if version_key(r.since) <= version_key(version))


@dataclass(frozen=True)
class _Compiled:
    route: Route
    # (literal, None) or (None, parameter name), per segment
    segments: tuple[tuple[str | None, str | None], ...]


@lru_cache(maxsize=4)
def _table(version: str) -> dict[tuple[str, int], tuple[_Compiled, ...]]:
    """Routes by (method, segment count), literal segments before parameters at each position
    (Express would run the literal route first wherever both exist, as with `chat/abort`)."""
    table: dict[tuple[str, int], list[_Compiled]] = {}
    for route in active_routes(version):
        segments: list[tuple[str | None, str | None]] = []
        for part in route.path.split("/"):
            if part.startswith(":"):
                if part[1:] not in PARAMETERS:
                    raise ValueError(f"{route.path}: no pattern for parameter {part}")
                segments.append((None, part[1:]))
            else:
                segments.append((part, None))
        table.setdefault((route.method, len(segments)), []).append(
            _Compiled(route, tuple(segments))
        )
    return {
        key: tuple(sorted(entries, key=lambda c: [lit is None for lit, _ in c.segments]))
        for key, entries in table.items()
    }


def canonical_segments(raw: str, *, decoded: bool = False) -> list[str]:
    """The segments of a path as Express would route them, each percent-decoded once.

    ``raw`` is the path as the client sent it, starting with ``/``; ``decoded``: it was already
    percent-decoded by the server (no raw request target available), so ``%`` is not decoded
    again. Raises ``PathAmbiguous`` for anything that could be read two ways.
    """
    if not raw.startswith("/"):
        raise PathAmbiguous("The path must start with '/'.")
    parts = raw[1:].split("/")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing slash is optional to Express
    segments = []
    for part in parts:
        if part == "":
            raise PathAmbiguous("Empty path segments ('//') are ambiguous.")
        segment = part if decoded else _decode(part)
        _check_segment(segment)
        segments.append(segment)
    return segments


def _decode(part: str) -> str:
    if "%" not in part and part.isascii():
        return part
    if "%" in _ESCAPE.sub("", part):
        raise PathAmbiguous("The path has a malformed percent-escape.")
    for escape in _ESCAPE.findall(part):
        if chr(int(escape, 16)) in _ENCODED_FORBIDDEN:
            raise PathAmbiguous(
                "An encoded '/', '\\', '.' or '%' in the path is ambiguous; send it as is."
            )
    try:
        return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), part).encode("latin-1").decode()
    except UnicodeError:
        raise PathAmbiguous("The path's percent-escapes are not UTF-8.") from None


def _check_segment(segment: str) -> None:
    if segment in {".", ".."}:
        raise PathAmbiguous("'.' and '..' path segments are ambiguous.")
    if not segment.isascii():
        raise PathAmbiguous(
            "Non-ASCII characters in the path are refused: LibreChat's routes and ids are ASCII."
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
        raise PathAmbiguous("Control characters (such as %00) in the path are refused.")
    for character, what in (("\\", "a backslash"), (";", "';' (a path parameter)"), ("%", "'%'")):
        if character in segment:  # as sent or percent-encoded
            raise PathAmbiguous(f"The path holds {what}, which is ambiguous.")


def resolve(method: str, raw_path: str, *, version: str, decoded: bool = False) -> Allowed:
    """The allowed route for ``method`` and ``raw_path`` (LibreChat's path after ``/api``, as
    sent) in front of LibreChat ``version``, or ``PathAmbiguous`` / ``RouteRefused``."""
    segments = canonical_segments(raw_path, decoded=decoded)
    lowered = [s.lower() for s in segments]  # ASCII only: no Unicode case-folding surprises
    for compiled in _table(version).get((method, len(segments)), ()):
        path = _match(compiled, segments, lowered)
        if path is not None:
            return Allowed(compiled.route, path)
    raise RouteRefused(
        f"{method} /api/{'/'.join(segments)} is not among the LibreChat {version} routes this "
        "proxy lets through (docs/chat-proxy.md)."
    )


def _match(compiled: _Compiled, segments: list[str], lowered: list[str]) -> str | None:
    built = []
    for (literal, name), segment, low in zip(compiled.segments, segments, lowered, strict=True):
        if literal is not None:
            if low != literal:
                return None
            built.append(literal)
            continue
        assert name is not None
        if not PARAMETERS[name].fullmatch(segment) or low in SHADOWED.get(name, ()):
            return None
        built.append(quote(segment, safe=""))
    return "/api/" + "/".join(built)


def raw_request_path(request: HttpRequest) -> tuple[str, bool]:
    """The path as the client sent it, and whether it is already decoded.

    Django's ``path_info`` is percent-decoded, which hides an encoded ``/`` or ``.``: take the
    raw request target from the ASGI scope (``raw_path``) or the WSGI server (gunicorn's
    ``RAW_URI``, uWSGI's and mod_wsgi's ``REQUEST_URI``). Without one (``runserver``), fall back
    to the decoded path: the upstream path is still rebuilt from what was checked.
    """
    scope = getattr(request, "scope", None)
    raw_bytes = scope.get("raw_path") if isinstance(scope, dict) else None
    if isinstance(raw_bytes, bytes) and raw_bytes:
        return raw_bytes.decode("latin-1"), False
    target = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if target:
        if not target.startswith("/"):
            target = urlsplit(target).path or "/"  # absolute-form request target
        return target.split("?", 1)[0], False
    return request.path_info, True


def check_request(request: HttpRequest, method: str, *, version: str) -> Allowed:
    """Resolve a request to ``/api/chat/<path>``; the prefix must have been sent as is."""
    raw, decoded = raw_request_path(request)
    if not raw.startswith(PROXY_PREFIX + "/"):
        raise PathAmbiguous(f"The path must start with {PROXY_PREFIX}/ exactly as written.")
    return resolve(method, raw[len(PROXY_PREFIX) :], version=version, decoded=decoded)
