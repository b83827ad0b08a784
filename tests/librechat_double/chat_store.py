"""Conversations, messages, files, the title cache and the generation-job registry.

What Mongo (and LibreChat's in-memory caches) hold for the chat API. Documents are kept as
plain dicts and rendered the way Mongoose's `lean()` prints them: `_id` and the identifying
keys first, then the other fields in the order the captures show (alphabetical), dates as
ISO strings. Timestamps are the double's clock, nudged to stay strictly increasing so that
cursor paging is deterministic.

Thread-safe: the generation jobs run on the server's event loop while tests read the store
from their own thread. `reset()` swaps the whole data object, so a job still running when a
test resets the double writes into the discarded one.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DoubleConfig
from .ids import js_date_string, parse_date
from .rate_limit import FixedWindowLimiter
from .tokens import iso_timestamp, new_object_id

if TYPE_CHECKING:
    from .jobs import Job

_DATE_FIELDS = frozenset({"createdAt", "updatedAt", "expiredAt"})
# getConvosByCursor's projection.
CONVO_LIST_FIELDS = (
    "conversationId",
    "endpoint",
    "title",
    "createdAt",
    "updatedAt",
    "user",
    "model",
    "agent_id",
    "assistant_id",
    "spec",
    "iconURL",
    "chatProjectId",
    "pinned",
)
CONVO_SORT_FIELDS = ("title", "createdAt", "updatedAt")
DEFAULT_CONVO_TITLE = "New Chat"


@dataclass
class StoredConvo:
    oid: str
    conversation_id: str
    user: str
    fields: dict[str, Any]


@dataclass
class StoredMessage:
    oid: str
    message_id: str
    user: str
    seq: int
    fields: dict[str, Any]


@dataclass
class StoredFile:
    oid: str
    file_id: str
    user: str
    fields: dict[str, Any]
    path: Path | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.path.stat().st_size if self.path is not None else 0

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        if self.path is None:
            return
        with self.path.open("rb") as handle:
            while chunk := handle.read(size):
                yield chunk


@dataclass
class _ChatData:
    convos: dict[tuple[str, str], StoredConvo] = field(default_factory=dict)
    messages: dict[tuple[str, str], StoredMessage] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    # `${userId}-${conversationId}` -> (title, expires at)
    titles: dict[str, tuple[str, float]] = field(default_factory=dict)
    pending_requests: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    seq: int = 0
    last_stamp: float = 0.0
    files_dir: Path | None = None


def render(head: list[tuple[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
    """A lean document: the identifying keys, then the rest in alphabetical order."""
    document = dict(head)
    for key in sorted(fields):
        document[key] = _json_value(key, fields[key])
    return document


def _json_value(key: str, value: Any) -> Any:
    if key in _DATE_FIELDS and isinstance(value, float):
        return iso_timestamp(value)
    return value


class ChatStore:
    def __init__(
        self, config: DoubleConfig, now: Callable[[], float], count: Callable[[str], None]
    ) -> None:
        self.config = config
        self.now = now
        self.count = count
        self._lock = threading.RLock()
        self._data = _ChatData()
        self.message_ip_limiter = FixedWindowLimiter()
        self.message_user_limiter = FixedWindowLimiter()
        self.upload_ip_limiter = FixedWindowLimiter()
        self.upload_user_limiter = FixedWindowLimiter()

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything; running generations are cancelled and their writes discarded."""
        with self._lock:
            old, self._data = self._data, _ChatData()
        for limiter in (
            self.message_ip_limiter,
            self.message_user_limiter,
            self.upload_ip_limiter,
            self.upload_user_limiter,
        ):
            limiter.reset()
        for job in old.jobs.values():
            job.cancel_from_any_thread()
        if old.files_dir is not None:
            shutil.rmtree(old.files_dir, ignore_errors=True)

    def stamp(self) -> float:
        """The clock in whole milliseconds, strictly increasing across calls."""
        with self._lock:
            moment = math.floor(self.now() * 1000) / 1000
            if moment <= self._data.last_stamp:
                moment = round(self._data.last_stamp + 0.001, 3)
            self._data.last_stamp = moment
            return moment

    def upload_dir(self) -> Path:
        with self._lock:
            if self._data.files_dir is None:
                path = Path(tempfile.mkdtemp(prefix="librechat-double-files-"))
                self._data.files_dir = path
                # Removed on reset, or when the data is dropped / the interpreter exits.
                weakref.finalize(self._data, shutil.rmtree, path, True)
            return self._data.files_dir

    # -- conversations -----------------------------------------------------------------------

    def convo_owner(self, conversation_id: str) -> str | None:
        """`searchConversation`: who owns this id, whoever asks."""
        with self._lock:
            for convo in self._data.convos.values():
                if convo.conversation_id == conversation_id:
                    return convo.user
            return None

    def get_convo(self, user_id: str, conversation_id: str) -> dict[str, Any] | None:
        with self._lock:
            convo = self._data.convos.get((user_id, conversation_id))
            return None if convo is None else self._render_convo(convo)

    def save_convo(
        self,
        user_id: str,
        conversation_id: str,
        changes: dict[str, Any],
        *,
        upsert: bool = True,
        defaults: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """`saveConvo`: $set the changes, creating the document (with defaults) if missing."""
        with self._lock:
            key = (user_id, conversation_id)
            convo = self._data.convos.get(key)
            now = self.stamp()
            if convo is None:
                if not upsert:
                    return None
                fields: dict[str, Any] = {
                    "createdAt": now,
                    "expiredAt": None,
                    "files": [],
                    "isArchived": False,
                    "isTemporary": False,
                    "tags": [],
                    "title": DEFAULT_CONVO_TITLE,
                    **(defaults or {}),
                }
                convo = StoredConvo(new_object_id(now), conversation_id, user_id, fields)
                self._data.convos[key] = convo
            convo.fields.update(changes)
            convo.fields["updatedAt"] = now
            return self._render_convo(convo)

    def list_convos(
        self,
        user_id: str,
        *,
        cursor: str | None,
        limit: int,
        is_archived: bool,
        tags: list[str] | None,
        search: str | None,
        sort_by: str,
        sort_direction: str,
    ) -> dict[str, Any]:
        """`getConvosByCursor`: a projection, `limit` per page, a base64 JSON cursor."""
        if sort_by not in CONVO_SORT_FIELDS:
            raise ValueError(f"Invalid sortBy field: {sort_by}")
        descending = sort_direction != "asc"
        with self._lock:
            convos = [
                c
                for c in self._data.convos.values()
                if c.user == user_id
                and bool(c.fields.get("isArchived")) == is_archived
                and (not tags or any(t in (c.fields.get("tags") or []) for t in tags))
                and (not search or search.lower() in str(c.fields.get("title") or "").lower())
            ]
            bound = _decode_convo_cursor(cursor, sort_by)
            if bound is not None:
                convos = [c for c in convos if _after_cursor(c, sort_by, bound, descending)]
            convos.sort(
                key=lambda c: (_sort_value(c, sort_by), c.fields["updatedAt"]), reverse=descending
            )
            page = convos[: limit + 1]
            next_cursor = None
            if len(page) > limit:
                page.pop()
                last = page[-1]
                primary = (
                    last.fields.get("title")
                    if sort_by == "title"
                    else iso_timestamp(last.fields[sort_by])
                )
                composite = {
                    "primary": primary,
                    "secondary": iso_timestamp(last.fields["updatedAt"]),
                }
                next_cursor = base64.b64encode(
                    json.dumps(composite, separators=(",", ":")).encode()
                ).decode()
            return {
                "conversations": [self._render_convo_listing(c) for c in page],
                "nextCursor": next_cursor,
            }

    def delete_convos(self, user_id: str, conversation_id: str | None) -> dict[str, Any]:
        """`deleteConvos`: counts of what went; LookupError when nothing matched."""
        with self._lock:
            doomed = [
                key
                for key, c in self._data.convos.items()
                if c.user == user_id
                and (conversation_id is None or c.conversation_id == conversation_id)
            ]
            if not doomed:
                raise LookupError("Conversation not found or already deleted.")
            ids = {key[1] for key in doomed}
            for key in doomed:
                del self._data.convos[key]
            messages = [
                key
                for key, m in self._data.messages.items()
                if m.user == user_id and m.fields.get("conversationId") in ids
            ]
            for key in messages:
                del self._data.messages[key]
            return {
                "acknowledged": True,
                "deletedCount": len(doomed),
                "messages": {"acknowledged": True, "deletedCount": len(messages)},
            }

    def erase_user(self, user_id: str) -> None:
        """What deleteUserController removes from the chat collections: conversations,
        messages and files (with their bytes)."""
        with self._lock:
            for key in [k for k, c in self._data.convos.items() if c.user == user_id]:
                del self._data.convos[key]
            for key in [k for k, m in self._data.messages.items() if m.user == user_id]:
                del self._data.messages[key]
            file_ids = [fid for fid, f in self._data.files.items() if f.user == user_id]
        self.delete_files(file_ids)

    def conversations_of(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_convo(c) for c in self._data.convos.values() if c.user == user_id]

    def _render_convo(self, convo: StoredConvo) -> dict[str, Any]:
        fields = dict(convo.fields)
        fields["messages"] = [
            m.oid for m in self._messages_locked(convo.user, convo.conversation_id)
        ]
        head = [
            ("_id", convo.oid),
            ("conversationId", convo.conversation_id),
            ("user", convo.user),
            ("__v", 0),
        ]
        return render(head, fields)

    def _render_convo_listing(self, convo: StoredConvo) -> dict[str, Any]:
        fields = {k: v for k, v in convo.fields.items() if k in CONVO_LIST_FIELDS}
        head = [("_id", convo.oid), ("conversationId", convo.conversation_id), ("user", convo.user)]
        return render(head, fields)

    # -- messages ----------------------------------------------------------------------------

    def save_message(self, user_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """`saveMessage`: upsert by (messageId, user); schema defaults on insert."""
        with self._lock:
            message_id = str(message["messageId"])
            key = (user_id, message_id)
            stored = self._data.messages.get(key)
            now = self.stamp()
            changes = {k: v for k, v in message.items() if k not in {"messageId", "user"}}
            if stored is None:
                self._data.seq += 1
                fields: dict[str, Any] = {
                    "createdAt": now,
                    "error": False,
                    "expiredAt": None,
                    "isCreatedByUser": False,
                    "isTemporary": False,
                    "unfinished": False,
                }
                stored = StoredMessage(
                    new_object_id(now), message_id, user_id, self._data.seq, fields
                )
                self._data.messages[key] = stored
            stored.fields.update(changes)
            stored.fields["updatedAt"] = now
            return self._render_message(stored, public=True)

    def find_message(
        self, user_id: str, message_id: str, conversation_id: str | None = None
    ) -> dict[str, Any] | None:
        with self._lock:
            stored = self._data.messages.get((user_id, message_id))
            if stored is None:
                return None
            if (
                conversation_id is not None
                and stored.fields.get("conversationId") != conversation_id
            ):
                return None
            return self._render_message(stored, public=True)

    def get_messages(
        self, user_id: str, conversation_id: str, *, public: bool = True
    ) -> list[dict[str, Any]]:
        """`getMessages({conversationId, user})`, creation order; `public` drops _id/user/__v."""
        with self._lock:
            return [
                self._render_message(m, public=public)
                for m in self._messages_locked(user_id, conversation_id)
            ]

    def messages_page(
        self,
        user_id: str,
        conversation_id: str,
        *,
        sort_field: str,
        descending: bool,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        """`getMessagesByCursor`: the cursor is `String(date)`, so it keeps whole seconds only."""
        with self._lock:
            messages = self._messages_locked(user_id, conversation_id)
            if cursor:
                bound: Any = cursor if sort_field == "endpoint" else parse_date(cursor)
                if bound is not None:
                    messages = [
                        m
                        for m in messages
                        if m.fields.get(sort_field) is not None
                        and (
                            m.fields[sort_field] < bound
                            if descending
                            else m.fields[sort_field] > bound
                        )
                    ]
            messages.sort(key=lambda m: (m.fields.get(sort_field) or 0, m.seq), reverse=descending)
            page = messages[: limit + 1]
            next_cursor = None
            if len(page) > limit:
                page.pop()
                value = page[-1].fields.get(sort_field)
                next_cursor = (
                    js_date_string(value) if isinstance(value, float) else str(value or "")
                )
            return {
                "messages": [self._render_message(m, public=False) for m in page],
                "nextCursor": next_cursor,
            }

    def update_message(
        self, user_id: str, message_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """`updateMessage`: LookupError when the user has no such message."""
        with self._lock:
            stored = self._data.messages.get((user_id, message_id))
            if stored is None:
                raise LookupError("Message not found or user not authorized.")
            stored.fields.update(changes)
            stored.fields["updatedAt"] = self.stamp()
            fields = stored.fields
            result = {
                "messageId": stored.message_id,
                "conversationId": fields.get("conversationId"),
                "parentMessageId": fields.get("parentMessageId"),
                "sender": fields.get("sender"),
                "text": fields.get("text"),
                "isCreatedByUser": fields.get("isCreatedByUser"),
                "tokenCount": fields.get("tokenCount"),
                "feedback": fields.get("feedback"),
                "endpoint": fields.get("endpoint"),
            }
            return {k: v for k, v in result.items() if v is not None or k == "parentMessageId"}

    def thread(self, user_id: str, conversation_id: str, leaf: str | None) -> list[dict[str, Any]]:
        """The branch ending at `leaf`, root first (what LibreChat sends upstream as history)."""
        with self._lock:
            by_id = {m.message_id: m for m in self._messages_locked(user_id, conversation_id)}
            branch: list[dict[str, Any]] = []
            seen: set[str] = set()
            current = leaf
            while current and current in by_id and current not in seen:
                seen.add(current)
                branch.append(self._render_message(by_id[current], public=True))
                current = by_id[current].fields.get("parentMessageId")
            return list(reversed(branch))

    def _messages_locked(self, user_id: str, conversation_id: str) -> list[StoredMessage]:
        found = [
            m
            for m in self._data.messages.values()
            if m.user == user_id and m.fields.get("conversationId") == conversation_id
        ]
        found.sort(key=lambda m: (m.fields["createdAt"], m.seq))
        return found

    def _render_message(self, stored: StoredMessage, *, public: bool) -> dict[str, Any]:
        if public:
            return render([("messageId", stored.message_id)], stored.fields)
        head = [
            ("_id", stored.oid),
            ("messageId", stored.message_id),
            ("user", stored.user),
            ("__v", 0),
        ]
        return render(head, stored.fields)

    # -- files -------------------------------------------------------------------------------

    def add_file(
        self,
        user_id: str,
        file_id: str,
        fields: dict[str, Any],
        *,
        path: Path | None = None,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            now = self.stamp()
            stored = StoredFile(
                new_object_id(now),
                file_id,
                user_id,
                {"createdAt": now, "object": "file", "usage": 0, **fields, "updatedAt": now},
                path=path,
                data=data,
            )
            self._data.files[file_id] = stored
            return self.render_file(stored)

    def find_file(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._data.files.get(file_id)

    def file_by_filepath(self, filepath: str) -> StoredFile | None:
        with self._lock:
            for stored in self._data.files.values():
                if str(stored.fields.get("filepath", "")).split("?")[0] == filepath:
                    return stored
            return None

    def code_output_file(self, user_id: str, conversation_id: str, name: str) -> StoredFile | None:
        with self._lock:
            for stored in self._data.files.values():
                fields = stored.fields
                if (
                    stored.user == user_id
                    and fields.get("context") == "execute_code"
                    and fields.get("conversationId") == conversation_id
                    and fields.get("filename") == name
                ):
                    return stored
            return None

    def update_file(self, file_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            stored = self._data.files.get(file_id)
            if stored is None:
                return None
            stored.fields.update(changes)
            stored.fields["updatedAt"] = self.stamp()
            return self.render_file(stored)

    def files_of(self, user_id: str) -> list[dict[str, Any]]:
        """`getFiles({user})`: newest update first."""
        with self._lock:
            owned = [f for f in self._data.files.values() if f.user == user_id]
            owned.sort(key=lambda f: f.fields["updatedAt"], reverse=True)
            return [self.render_file(f) for f in owned]

    def use_files(self, user_id: str, file_ids: list[str]) -> list[dict[str, Any]]:
        """A chat message references files: usage + 1, then the records the message carries."""
        used: list[dict[str, Any]] = []
        with self._lock:
            for file_id in file_ids:
                stored = self._data.files.get(file_id)
                if stored is None or stored.user != user_id:
                    continue
                stored.fields["usage"] = int(stored.fields.get("usage", 0)) + 1
                stored.fields["updatedAt"] = self.stamp()
                fields = {k: v for k, v in stored.fields.items() if k != "temp_file_id"}
                used.append(render([("file_id", stored.file_id)], {**fields, "user": stored.user}))
        return used

    def delete_files(self, file_ids: list[str]) -> int:
        with self._lock:
            doomed = [self._data.files.pop(fid) for fid in file_ids if fid in self._data.files]
        for stored in doomed:
            if stored.path is not None:
                stored.path.unlink(missing_ok=True)
        return len(doomed)

    def render_file(self, stored: StoredFile) -> dict[str, Any]:
        head = [("_id", stored.oid), ("file_id", stored.file_id), ("__v", 0)]
        return render(head, {**stored.fields, "user": stored.user})

    # -- the title cache (CacheKeys.GEN_TITLE) ------------------------------------------------

    def cache_title(self, user_id: str, conversation_id: str, title: str) -> None:
        with self._lock:
            expires = self.now() + self.config.title_cache_ttl_s
            self._data.titles[f"{user_id}-{conversation_id}"] = (title, expires)

    def cached_title(self, user_id: str, conversation_id: str) -> str | None:
        with self._lock:
            entry = self._data.titles.get(f"{user_id}-{conversation_id}")
            if entry is None or entry[1] <= self.now():
                return None
            return entry[0]

    def forget_title(self, user_id: str, conversation_id: str, title: str | None = None) -> None:
        with self._lock:
            key = f"{user_id}-{conversation_id}"
            entry = self._data.titles.get(key)
            if entry is not None and (title is None or entry[0] == title):
                del self._data.titles[key]

    # -- concurrency (packages/api/src/middleware/concurrency.ts) ----------------------------

    def try_start_request(self, user_id: str) -> tuple[bool, int, int]:
        """checkAndIncrementPendingRequest: (allowed, pendingRequests, limit)."""
        limit = max(self.config.concurrent_message_max, 1)
        if not self.config.limit_concurrent_messages:
            return True, 0, limit
        with self._lock:
            pending = self._data.pending_requests.get(user_id, 0)
            if pending >= limit:
                return False, pending, limit
            self._data.pending_requests[user_id] = pending + 1
            return True, pending + 1, limit

    def finish_request(self, user_id: str, data: _ChatData | None = None) -> None:
        with self._lock:
            target = data or self._data
            current = target.pending_requests.get(user_id, 0)
            if current > 1:
                target.pending_requests[user_id] = current - 1
            else:
                target.pending_requests.pop(user_id, None)

    def pending_requests(self, user_id: str) -> int:
        with self._lock:
            return self._data.pending_requests.get(user_id, 0)

    # -- generation jobs ---------------------------------------------------------------------

    @property
    def data(self) -> _ChatData:
        """The current generation of the store (a job keeps the one it started in)."""
        with self._lock:
            return self._data

    def register_job(self, job: Job) -> Job | None:
        """createJob: a new job for the same stream id replaces the old one (returned)."""
        with self._lock:
            previous = self._data.jobs.get(job.stream_id)
            self._data.jobs[job.stream_id] = job
            return previous

    def get_job(self, stream_id: str) -> Job | None:
        with self._lock:
            job = self._data.jobs.get(stream_id)
            if job is None:
                return None
            if (
                job.status == "error"
                and job.completed_at is not None
                and self.now() - job.completed_at > self.config.stream_error_job_ttl_s
            ):
                del self._data.jobs[stream_id]
                return None
            return job

    def drop_job(self, job: Job) -> None:
        with self._lock:
            if job.data.jobs.get(job.stream_id) is job:
                del job.data.jobs[job.stream_id]

    def active_job_ids(self, user_id: str | None = None) -> list[str]:
        """Running jobs, newest first (getActiveJobIdsByUser)."""
        with self._lock:
            running = [
                j
                for j in self._data.jobs.values()
                if j.status == "running" and (user_id is None or j.user_id == user_id)
            ]
            running.sort(key=lambda j: j.created_at, reverse=True)
            return [j.stream_id for j in running]

    def subscriber_count(self, stream_id: str | None = None) -> int:
        with self._lock:
            jobs = list(self._data.jobs.values())
        return sum(
            len(j.subscribers) for j in jobs if stream_id is None or j.stream_id == stream_id
        )

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "conversations": len(self._data.convos),
                "messages": len(self._data.messages),
                "files": len(self._data.files),
                "active_streams": self.active_job_ids(),
                "subscribers": sum(len(j.subscribers) for j in self._data.jobs.values()),
                "pending_requests": dict(self._data.pending_requests),
            }


def _sort_value(convo: StoredConvo, sort_by: str) -> Any:
    value = convo.fields.get(sort_by)
    if sort_by == "title":
        return str(value or "")
    return value or 0.0


def _decode_convo_cursor(cursor: str | None, sort_by: str) -> tuple[Any, float] | None:
    """A malformed cursor is ignored (LibreChat logs it and starts from the beginning)."""
    if not cursor:
        return None
    try:
        decoded = json.loads(base64.b64decode(cursor))
        primary_raw, secondary_raw = decoded["primary"], decoded["secondary"]
        secondary = parse_date(str(secondary_raw))
        primary = str(primary_raw) if sort_by == "title" else parse_date(str(primary_raw))
    except (ValueError, KeyError, TypeError):
        return None
    if primary is None or secondary is None:
        return None
    return primary, secondary


def _after_cursor(
    convo: StoredConvo, sort_by: str, bound: tuple[Any, float], descending: bool
) -> bool:
    primary, secondary = bound
    value = _sort_value(convo, sort_by)
    updated = convo.fields["updatedAt"]
    if descending:
        return bool(value < primary or (value == primary and updated < secondary))
    return bool(value > primary or (value == primary and updated > secondary))
