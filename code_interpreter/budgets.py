"""What one caller may hold at once, across their sessions and every web process.

A caller is ``Caller.budget_key``: the JWT's user, or the API key (narrowed to the user a request
names, which only LibreChat is trusted to name). Per caller:

* **executions running at once** (``CODE_INTERPRETER_MAX_CONCURRENT_PER_USER``), counted as
  leases in Redis when ``REDIS_URL`` is set and in the database otherwise, so every web process
  sees the same count; a lease lapses on its own if its process dies;
* **live sessions** (``CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER``);
* **disk** (``CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES``): the working directories (as last
  measured, files of failed or killed runs included) and the stored files of all their live
  sessions, plus what their running executions and uploads may still write. An execution
  reserves the most it may write before it starts, and its sandbox is held to what it got.

The reservation protocol never under-counts: a lease is taken with the largest reservation the
work could need *before* the committed usage is read, then shrunk to what was granted; and the
usage a finished execution leaves is committed *before* its lease goes. Whoever reads both sees
every byte at least once.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Protocol, TypeAlias

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from code_interpreter.models import CodeFile, CodeSession, ExecutionLease
from core.errors import ApplicationError, ErrorCode

# A lease outlives the longest execution by this much, then lapses (its process died).
LEASE_GRACE_S = 120


class RateLimited(ApplicationError):
    status = 429
    code = ErrorCode.THROTTLED

    def __init__(self, message: str, *, retry_after: int, code: ErrorCode | None = None) -> None:
        super().__init__(
            message,
            code=code,
            extra={"retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class DiskQuotaExceeded(ApplicationError):
    status = 413
    code = ErrorCode.DISK_QUOTA_EXCEEDED


@dataclass
class Lease:
    id: str
    caller: str
    running: bool
    reserved: int
    others_reserved: int  # what the caller's other leases held when this one was taken
    released: bool = False
    # While ``then(lease)`` runs: its transaction already holds ``lock_caller(caller)``.
    caller_locked: bool = False


Then: TypeAlias = Callable[[Lease], None]


class LeaseStore(Protocol):
    def acquire(
        self, caller: str, *, running: bool, limit: int, reserved: int, then: Then | None = None
    ) -> Lease | None:
        """A lease, or None when ``running`` and the caller has ``limit`` running already.
        ``then(lease)`` runs once it is held: in the same transaction with database leases,
        so what it writes and the lease commit together; if it raises, there is no lease."""
        ...

    def reserve(self, lease: Lease, reserved: int) -> None: ...

    def release(self, lease: Lease) -> None: ...

    def release_with_transaction(self, lease: Lease) -> None:
        """Inside the transaction that commits what the lease's work left: database leases go
        with it; Redis leases are released after it (by ``release``)."""
        ...


def _lease_ttl() -> float:
    return float(settings.CODE_INTERPRETER_TIMEOUT_MAX) + LEASE_GRACE_S


class DatabaseLeases:
    """Leases as rows, counted under a per-caller lock (PostgreSQL: an advisory lock; SQLite:
    its one writer at a time, ``transaction_mode=IMMEDIATE``). Plain SQL: it runs twice on
    every execution."""

    table = ExecutionLease._meta.db_table

    def acquire(
        self, caller: str, *, running: bool, limit: int, reserved: int, then: Then | None = None
    ) -> Lease | None:
        now = timezone.now()
        at = connection.ops.adapt_datetimefield_value(now)
        with transaction.atomic(), connection.cursor() as cursor:
            lock_caller(caller)
            cursor.execute(
                f"SELECT running, reserved_bytes, expires_at > %s FROM {self.table}"  # noqa: S608
                " WHERE caller = %s",
                [at, caller],
            )
            held = cursor.fetchall()
            live = [(bool(is_running), int(size)) for is_running, size, alive in held if alive]
            if len(live) < len(held):  # a dead process's leases lapse
                cursor.execute(
                    f"DELETE FROM {self.table} WHERE caller = %s AND expires_at <= %s",  # noqa: S608
                    [caller, at],
                )
            if running and sum(1 for is_running, _ in live if is_running) >= limit:
                return None
            lease = Lease(
                id=secrets.token_hex(16),
                caller=caller,
                running=running,
                reserved=reserved,
                others_reserved=sum(size for _, size in live),
            )
            expires = now + timedelta(seconds=_lease_ttl())
            cursor.execute(
                f"INSERT INTO {self.table} (id, caller, running, reserved_bytes, expires_at)"  # noqa: S608
                " VALUES (%s, %s, %s, %s, %s)",
                [
                    lease.id,
                    caller,
                    running,
                    reserved,
                    connection.ops.adapt_datetimefield_value(expires),
                ],
            )
            if then is not None:
                lease.caller_locked = True
                try:
                    then(lease)
                finally:
                    lease.caller_locked = False
        return lease

    def reserve(self, lease: Lease, reserved: int) -> None:
        ExecutionLease.objects.filter(pk=lease.id).update(reserved_bytes=reserved)
        lease.reserved = reserved

    def release(self, lease: Lease) -> None:
        if not lease.released:
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {self.table} WHERE id = %s", [lease.id])  # noqa: S608
            lease.released = True

    def release_with_transaction(self, lease: Lease) -> None:
        self.release(lease)


# KEYS[1]: the caller's hash (lease id -> "running reserved expires");
# ARGV: now, lease id, limit, running (0/1), reserved, expires, key ttl.
_ACQUIRE = """
local entries = redis.call('HGETALL', KEYS[1])
local running, others = 0, 0
for i = 1, #entries, 2 do
  local run, size, expires = string.match(entries[i + 1], '^(%d) (%d+) ([%d.]+)$')
  if run == nil or tonumber(expires) <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    running = running + tonumber(run)
    others = others + tonumber(size)
  end
end
if ARGV[4] == '1' and running >= tonumber(ARGV[3]) then
  return {0, others}
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return {1, others}
"""


class RedisLeases:
    """Leases in one Redis hash per caller, taken and counted by one Lua script."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_ACQUIRE)

    @staticmethod
    def _key(caller: str) -> str:
        return f"code_interpreter:leases:{caller}"

    def _value(self, lease: Lease, reserved: int) -> str:
        return f"{int(lease.running)} {reserved} {time.time() + _lease_ttl():.3f}"

    def acquire(
        self, caller: str, *, running: bool, limit: int, reserved: int, then: Then | None = None
    ) -> Lease | None:
        lease_id = secrets.token_hex(16)
        ttl = math.ceil(_lease_ttl())
        granted, others = self.script(
            keys=[self._key(caller)],
            args=[time.time(), lease_id, limit, int(running), reserved, time.time() + ttl, ttl],
        )
        if not granted:
            return None
        lease = Lease(lease_id, caller, running, reserved, int(others))
        if then is not None:
            try:
                with transaction.atomic():
                    then(lease)
            except BaseException:
                self.release(lease)
                raise
        return lease

    def reserve(self, lease: Lease, reserved: int) -> None:
        self.client.hset(self._key(lease.caller), lease.id, self._value(lease, reserved))
        lease.reserved = reserved

    def release(self, lease: Lease) -> None:
        if not lease.released:
            self.client.hdel(self._key(lease.caller), lease.id)
            lease.released = True

    def release_with_transaction(self, lease: Lease) -> None:
        pass  # after the commit, never before: the usage must be seen first


def lease_store() -> LeaseStore:
    return _store(settings.REDIS_URL or "")


@lru_cache(maxsize=4)
def _store(redis_url: str) -> LeaseStore:
    return RedisLeases(redis_url) if redis_url else DatabaseLeases()


def lock_caller(caller: str) -> None:
    """Serialise writes for one caller until the transaction ends (call inside one)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [caller])


# -- disk and sessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    sessions: int  # live sessions
    bytes: int  # their directories (as last measured) and stored files


def usage(caller: str, *, exclude_session: str | None = None) -> Usage:
    """What the caller's live sessions hold, in one query (on every execution, so plain SQL);
    the directory of ``exclude_session`` (measured afresh by its own execution) is left out."""
    sessions, files = CodeSession._meta.db_table, CodeFile._meta.db_table
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COUNT(*),
                   COALESCE(SUM(CASE WHEN id = %s THEN 0 ELSE disk_bytes END), 0),
                   (SELECT COALESCE(SUM(f.size), 0) FROM {files} f
                    JOIN {sessions} s ON f.session_id = s.id
                    WHERE s.caller = %s AND s.expires_at > %s)
            FROM {sessions} WHERE caller = %s AND expires_at > %s
            """,  # noqa: S608 - table names from the models, values as parameters
            [exclude_session or "", caller, now, caller, now],
        )
        count, dirs, stored = cursor.fetchone()
    return Usage(int(count), int(dirs) + int(stored))


def committed_bytes(caller: str, *, exclude_session: str | None = None) -> int:
    return usage(caller, exclude_session=exclude_session).bytes


def grant(
    lease: Lease,
    *,
    session_quota: int,
    session_bytes: int,
    session_id: str,
    used: Usage | None = None,
) -> int:
    """The bytes a session's directory may hold during this execution: its own quota, or what
    the caller's quota leaves (``used``, read after the lease exists, without this session's
    directory). The lease then reserves what the directory may still add over what it held."""
    quota = settings.CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES
    if used is None:
        used = usage(lease.caller, exclude_session=session_id)
    allowed = max(0, min(session_quota, quota - used.bytes - lease.others_reserved))
    reserve = max(0, allowed - session_bytes)
    if reserve != lease.reserved:
        lease_store().reserve(lease, reserve)
    return allowed


@contextmanager
def disk_held(caller: str, size: int) -> Iterator[None]:
    """Hold ``size`` bytes of the caller's disk while they are written (an upload), or refuse
    with 413 ``Disk quota exceeded`` when their sessions have no room for them."""
    store = lease_store()
    lease = store.acquire(caller, running=False, limit=0, reserved=size)
    assert lease is not None  # only running leases are counted against a limit
    try:
        quota = settings.CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES
        if usage(caller).bytes + lease.others_reserved + size > quota:
            raise DiskQuotaExceeded(disk_quota_message(quota))
        yield
    finally:
        store.release(lease)


def disk_quota_message(caller_quota: int) -> str:
    return (
        f"Disk quota exceeded: your sessions may hold {caller_quota // 1024**2} MiB together; "
        "delete files or wait for old sessions to expire."
    )


def check_session_cap(caller: str, used: Usage | None = None) -> None:
    """Refuse a new session when the caller has as many live ones as allowed (call inside a
    transaction that holds ``lock_caller``, before creating it)."""
    cap = settings.CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER
    if (used or usage(caller)).sessions < cap:
        return
    live = CodeSession.objects.filter(caller=caller, expires_at__gt=timezone.now())
    oldest = live.order_by("expires_at").values_list("expires_at", flat=True).first()
    retry_after = max(1, math.ceil((oldest - timezone.now()).total_seconds())) if oldest else 60
    raise RateLimited(
        f"Too many sessions: {cap} are live; reuse a session_id, or retry in {retry_after} s "
        "when the oldest expires.",
        retry_after=retry_after,
        code=ErrorCode.TOO_MANY_SESSIONS,
    )
