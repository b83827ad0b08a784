"""Everything the double remembers: users, sessions, limiters, bans, counters, request log.

One lock guards it all, so counters stay exact when tests hammer the double concurrently and
when they read the state from another thread. The clock is the wall clock plus an offset
that tests can advance (token expiry, ban expiry, limiter windows) without sleeping.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .chat_store import ChatStore
from .config import DoubleConfig
from .modes import FailureMode
from .rate_limit import FixedWindowLimiter
from .remote_store import RemoteAgentsStore
from .tokens import iso_timestamp, new_object_id, sha256_hex
from .validation import js_trim

ROLE_ADMIN = "ADMIN"
ROLE_USER = "USER"
INVITE_LIFETIME_S = 7 * 24 * 3600
REQUEST_LOG_SIZE = 10_000
# Uploads can be large: the request log keeps the head of a body only.
REQUEST_BODY_LOG_LIMIT = 64 * 1024
# bcrypt (bcryptjs in LibreChat) only looks at the first 72 bytes of a password.
BCRYPT_SIGNIFICANT_BYTES = 72

COUNTER_NAMES = (
    "register_calls",
    "accounts_created",
    "duplicate_registrations",
    "login_calls",
    "login_successes",
    "refresh_calls",
    "refresh_successes",
    "refresh_reused_token_failures",
    "refresh_invalid_token_failures",
    "logout_calls",
    "accounts_deleted",
    "non_browser_requests",
    "bans_issued",
    # Chat API (chat_routes.py, jobs.py, files_routes.py).
    "chat_requests",
    "generations_started",
    "generations_completed",
    "generations_aborted",
    "generations_failed",
    "stream_subscriptions",
    "stream_disconnects",
    "message_limit_denials",
    "concurrent_limit_denials",
    "uploads",
    # LibreChat 0.8.8 (auth_routes.py, steer_routes.py).
    "email_login_refusals",
    "steer_calls",
    "resume_calls",
)


def normalize_email(email: str) -> str:
    """LibreChat trims and lower-cases e-mails on every lookup and stores them lower-cased."""
    return js_trim(email).lower()


def passwords_match(stored: str, candidate: str) -> bool:
    significant = BCRYPT_SIGNIFICANT_BYTES
    return secrets.compare_digest(stored.encode()[:significant], candidate.encode()[:significant])


@dataclass
class User:
    id: str
    email: str
    name: str
    username: str
    # Plaintext: a test double, never a store of real credentials.
    password: str
    role: str
    email_verified: bool
    created_at: float
    updated_at: float
    personalization_id: str
    provider: str = "local"

    def lean_document(self) -> dict[str, Any]:
        """The Mongo document minus password, totpSecret and __v, in schema order."""
        return {
            "_id": self.id,
            "name": self.name,
            "username": self.username,
            "email": self.email,
            "emailVerified": self.email_verified,
            "avatar": None,
            "provider": self.provider,
            "role": self.role,
            "plugins": [],
            "twoFactorEnabled": False,
            "termsAccepted": False,
            "personalization": {"memories": True, "_id": self.personalization_id},
            "favorites": [],
            "skillStates": {},
            "refreshToken": [],
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }


@dataclass
class Session:
    id: str
    user_id: str
    expires_at: float
    refresh_token_hash: str = ""


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    peer_ip: str | None
    client_ip: str | None
    at: float
    # The request target's path as it came over the wire (still percent-encoded).
    raw_path: str = ""
    # The first REQUEST_BODY_LOG_LIMIT bytes; body_size counts them all.
    body: bytes = b""
    body_size: int = 0
    status: int | None = None

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "raw_path": self.raw_path,
            "query": self.query,
            "status": self.status,
            "peer_ip": self.peer_ip,
            "client_ip": self.client_ip,
            "user_agent": self.header("user-agent"),
            "x_forwarded_for": self.header("x-forwarded-for"),
            "body_size": self.body_size,
            "headers": [list(pair) for pair in self.headers],
            "at": self.at,
        }


@dataclass
class _Invite:
    email: str
    expires_at: float


@dataclass
class _Ban:
    expires_at: float
    violation_type: str


@dataclass
class _Store:
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    invites: dict[str, _Invite] = field(default_factory=dict)
    bans: dict[str, _Ban] = field(default_factory=dict)
    violation_scores: dict[tuple[str, str], int] = field(default_factory=dict)
    # Bounded so a long-running standalone double does not grow without end.
    requests: deque[RecordedRequest] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))


class _Counter:
    """A read-only counter attribute, so tests can assert `state.register_calls == 5`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: DoubleState, owner: type | None = None) -> int:
        return instance.counter(self._name)


class DoubleState:
    # What reached the route handlers (requests answered by a failure mode are not counted).
    register_calls = _Counter()
    accounts_created = _Counter()
    duplicate_registrations = _Counter()
    login_calls = _Counter()
    login_successes = _Counter()
    refresh_calls = _Counter()
    refresh_successes = _Counter()
    refresh_reused_token_failures = _Counter()
    refresh_invalid_token_failures = _Counter()
    logout_calls = _Counter()
    accounts_deleted = _Counter()
    non_browser_requests = _Counter()
    bans_issued = _Counter()
    chat_requests = _Counter()
    generations_started = _Counter()
    generations_completed = _Counter()
    generations_aborted = _Counter()
    generations_failed = _Counter()
    # SSE subscriptions to generation streams, and those the client closed before the end.
    stream_subscriptions = _Counter()
    stream_disconnects = _Counter()
    message_limit_denials = _Counter()
    concurrent_limit_denials = _Counter()
    uploads = _Counter()

    def __init__(self, config: DoubleConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._store = _Store()
        self._clock_offset_s = 0.0
        self._mode = FailureMode()
        self._ready = True
        self.login_limiter = FixedWindowLimiter()
        self.register_limiter = FixedWindowLimiter()
        # Conversations, messages, files and generation jobs (chat_store.py).
        self.chat = ChatStore(config, self.now, self.count)
        # Agents, agent API keys and role permissions (remote_store.py).
        self.remote = RemoteAgentsStore(self.now)

    def count(self, name: str) -> None:
        with self._lock:
            self._store.counters[name] += 1

    def counter(self, name: str) -> int:
        with self._lock:
            return self._store.counters[name]

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._store.counters)

    # -- clock, mode, readiness --------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._clock_offset_s

    def advance_clock(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the double's clock only moves forward")
        with self._lock:
            self._clock_offset_s += seconds

    @property
    def mode(self) -> FailureMode:
        with self._lock:
            return self._mode

    def set_mode(self, mode: FailureMode) -> None:
        with self._lock:
            self._mode = mode

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = ready

    # -- users -------------------------------------------------------------------------------

    def add_user(
        self,
        email: str,
        password: str,
        *,
        name: str | None = None,
        username: str = "",
        role: str | None = None,
        email_verified: bool = True,
    ) -> User:
        """Seed a user the way `npm run create-user` would (no gates, no limits)."""
        user, created = self.register_user(
            email,
            password,
            name=name or email.split("@")[0],
            username=username,
            email_verified=email_verified,
            role=role,
        )
        if not created:
            raise ValueError(f"{email} already exists in the double")
        return user

    def register_user(
        self,
        email: str,
        password: str,
        *,
        name: str,
        username: str,
        email_verified: bool,
        role: str | None = None,
    ) -> tuple[User, bool]:
        """Create unless the e-mail exists; the first user ever becomes ADMIN."""
        key = normalize_email(email)
        with self._lock:
            existing = self._store.users.get(key)
            if existing is not None:
                return existing, False
            now = self.now()
            user = User(
                id=new_object_id(now),
                email=key,
                name=name,
                username=username.lower(),
                password=password,
                role=role or (ROLE_ADMIN if not self._store.users else ROLE_USER),
                email_verified=email_verified,
                created_at=now,
                updated_at=now,
                personalization_id=new_object_id(now),
            )
            self._store.users[key] = user
            return user, True

    def get_user(self, email: str) -> User | None:
        with self._lock:
            return self._store.users.get(normalize_email(email))

    def user_by_id(self, user_id: str) -> User | None:
        with self._lock:
            return next((u for u in self._store.users.values() if u.id == user_id), None)

    def users(self) -> list[User]:
        with self._lock:
            return list(self._store.users.values())

    def set_email_verified(self, email: str, verified: bool) -> None:
        self._update_user(email, email_verified=verified)

    def mark_unverified(self, email: str) -> None:
        self.set_email_verified(email, False)

    def set_password(self, email: str, password: str) -> None:
        self._update_user(email, password=password)

    def delete_user(self, email: str) -> None:
        """The account, its sessions and everything the chat store holds for it."""
        with self._lock:
            user = self._store.users.pop(normalize_email(email))
            self._delete_user_sessions_locked(user.id)
        self.chat.erase_user(user.id)
        self.remote.delete_user_keys(user.id)

    def _update_user(self, email: str, **changes: Any) -> None:
        with self._lock:
            user = self._store.users[normalize_email(email)]
            for key, value in changes.items():
                setattr(user, key, value)
            user.updated_at = self.now()

    # -- invites (config/invite-user.js) ------------------------------------------------------

    def create_invite(self, email: str) -> str:
        token = secrets.token_hex(32)
        with self._lock:
            self._store.invites[sha256_hex(token)] = _Invite(
                email=normalize_email(email), expires_at=self.now() + INVITE_LIFETIME_S
            )
        return token

    def consume_invite(self, token: str, email: object) -> bool:
        with self._lock:
            invite = self._store.invites.get(sha256_hex(token))
            if invite is None or invite.expires_at <= self.now():
                return False
            if not isinstance(email, str) or normalize_email(email) != invite.email:
                return False
            del self._store.invites[sha256_hex(token)]
            return True

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, user_id: str) -> Session:
        with self._lock:
            now = self.now()
            session = Session(
                id=new_object_id(now),
                user_id=user_id,
                expires_at=now + self.config.refresh_expiry_s,
            )
            self._store.sessions[session.id] = session
            return session

    def find_live_session(self, user_id: str, token_hash: str | None) -> Session | None:
        """`findSession`: with no token it returns *any* live session of the user."""
        with self._lock:
            now = self.now()
            for session in self._store.sessions.values():
                if session.user_id != user_id or session.expires_at <= now:
                    continue
                if token_hash is None or session.refresh_token_hash == token_hash:
                    return session
            return None

    def store_refresh_hash(self, session_id: str, token_hash: str) -> None:
        with self._lock:
            session = self._store.sessions.get(session_id)
            if session is not None:
                session.refresh_token_hash = token_hash

    def delete_session(self, session_id: str) -> None:
        with self._lock:
            self._store.sessions.pop(session_id, None)

    def delete_user_sessions(self, user_id: str) -> int:
        with self._lock:
            return self._delete_user_sessions_locked(user_id)

    def _delete_user_sessions_locked(self, user_id: str) -> int:
        doomed = [sid for sid, s in self._store.sessions.items() if s.user_id == user_id]
        for session_id in doomed:
            del self._store.sessions[session_id]
        return len(doomed)

    def sessions_of(self, email: str) -> list[Session]:
        user = self.get_user(email)
        if user is None:
            return []
        with self._lock:
            return [s for s in self._store.sessions.values() if s.user_id == user.id]

    # -- violations and bans (logViolation.js, banViolation.js, checkBan.js) -----------------

    def is_banned(self, *keys: str | None) -> bool:
        with self._lock:
            now = self.now()
            for key in keys:
                ban = self._store.bans.get(key) if key else None
                if ban is not None and ban.expires_at > now:
                    return True
            return False

    def record_violation(
        self, *, user_id: str, ip: str | None, violation_type: str, score: int
    ) -> bool:
        """Add to the user's score; crossing a multiple of BAN_INTERVAL bans user and IP.

        Returns True when a threshold was crossed (sessions are then gone, even if the
        ban itself has no duration, LibreChat's "soft ban").
        """
        config = self.config
        with self._lock:
            key = (violation_type, user_id)
            previous = self._store.violation_scores.get(key, 0)
            current = previous + score
            self._store.violation_scores[key] = current
            if not config.ban_violations:
                return False
            interval = config.ban_interval
            if math.floor(previous / interval) >= math.floor(current / interval):
                return False
            self._delete_user_sessions_locked(user_id)
            if config.ban_duration_s > 0:
                expires_at = self.now() + config.ban_duration_s
                for banned in (user_id, ip):
                    if banned:
                        self._store.bans[banned] = _Ban(expires_at, violation_type)
                self._store.counters["bans_issued"] += 1
            return True

    def ban(self, key: str, *, duration_s: float | None = None) -> None:
        """Ban a user id or an IP directly, as if a violation had crossed the threshold."""
        with self._lock:
            seconds = self.config.ban_duration_s if duration_s is None else duration_s
            self._store.bans[key] = _Ban(self.now() + seconds, "manual")

    def violation_score(self, user_id: str, violation_type: str = "non_browser") -> int:
        with self._lock:
            return self._store.violation_scores.get((violation_type, user_id), 0)

    # -- request log -------------------------------------------------------------------------

    def record_request(self, request: RecordedRequest) -> None:
        with self._lock:
            self._store.requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._store.requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.path == path and (method is None or r.method == method.upper())
        ]

    # -- whole-state operations --------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything except the config; back to mode ok, ready, real time."""
        with self._lock:
            self._store = _Store()
            self._clock_offset_s = 0.0
            self._mode = FailureMode()
            self._ready = True
            self.login_limiter.reset()
            self.register_limiter.reset()
        self.chat.reset()
        self.remote.reset()

    def summary(self) -> dict[str, Any]:
        chat = self.chat.summary()
        with self._lock:
            now = self.now()
            return {
                "mode": self._mode.name,
                "ready": self._ready,
                "clock_offset_s": self._clock_offset_s,
                "counters": dict(self._store.counters),
                "users": [
                    {
                        "id": u.id,
                        "email": u.email,
                        "role": u.role,
                        "email_verified": u.email_verified,
                        "live_sessions": sum(
                            1
                            for s in self._store.sessions.values()
                            if s.user_id == u.id and s.expires_at > now
                        ),
                    }
                    for u in self._store.users.values()
                ],
                "bans": sorted(k for k, b in self._store.bans.items() if b.expires_at > now),
                "requests": len(self._store.requests),
                "chat": chat,
            }
