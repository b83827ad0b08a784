"""The zygote's wire format, spoken on its unix socket (and between it and its own children).

Every message is a 16-byte header, ``magic kind value length`` in native byte order, then
``length`` bytes of payload, sent with one ``sendmsg`` whose file descriptors (SCM_RIGHTS) ride on
the header's first byte. ``runtime/python_client.c`` writes and reads the same bytes.

Requests (client -> zygote):

* ``PYTHON``: a ``python3`` invocation; the payload is :data:`PYTHON_FIXED`, the caller's resource
  limits, its inherited fd numbers, then argv and environ as NUL-terminated strings. The fds are
  its working directory (an ``O_PATH`` descriptor) and then each inherited fd, in that order.
* ``CHUNK``: a stateful ``py`` chunk (:class:`ChunkRequest` as JSON; fds: stdin, stdout, stderr).
* ``STATUS``: the zygote's state as JSON.

Replies: ``FALLBACK`` (start the real interpreter), ``STARTED`` (value: the pid; fd: a pidfd for
forwarding signals), then ``ENDED`` (value: the wait status), or ``STATUS`` / ``ERROR``. A
``PYTHON`` client answers ``STARTED`` with the single byte :data:`GO` before any user code runs,
so a client that gave up waiting can start the real interpreter without the code running twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

MAGIC = b"PYZ1"
HEADER = struct.Struct("=4sIiI")  # magic, kind, value, payload length
MAX_FDS = 253  # the kernel's limit per message (SCM_MAX_FD)
MAX_PAYLOAD = 64 * 1024 * 1024
GO = b"G"
SOCKET_ENV = "SANDBOX_PY_ZYGOTE"  # where clients find the zygote's socket
TIMEOUT_S = 10.0  # for a request's bytes once connected, and for the zygote's own children

# umask, nice, ignored signals, blocked signals (bit n-1 for signal n), the interpreter the
# client would exec (st_dev, st_ino), its process name, then the counts of rlimits and fds.
PYTHON_FIXED = struct.Struct("=IiQQQQ16sII")
RLIMIT = struct.Struct("=QQ")
FD_NUMBER = struct.Struct("=i")
COUNTS = struct.Struct("=II")  # argc, envc
RLIM_INFINITY_U64 = 2**64 - 1


class Kind(IntEnum):
    # requests
    PYTHON = 1
    CHUNK = 2
    STATUS = 3
    # replies
    FALLBACK = 11
    STARTED = 12
    ENDED = 13
    STATE = 14  # the reply to STATUS
    ERROR = 15
    # between the zygote and its children
    TAKEN = 21  # a spare took a request (fd: the client's connection)
    FELL_BACK = 22  # a spare sent a client to the real interpreter (payload: why)
    FORWARD = 23  # a spare hands a CHUNK or STATUS request over (value: its kind)
    DONE = 24  # the state holder finished a chunk (value: exit code; payload: JSON)


class WireError(Exception):
    """A malformed, oversized or truncated message."""


class Closed(WireError):
    """The peer closed the connection before a message began."""


@dataclass
class Message:
    kind: int
    value: int = 0
    payload: bytes = b""
    fds: list[int] = field(default_factory=list)

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def send(
    sock: socket.socket, kind: int, value: int = 0, payload: bytes = b"", fds: Sequence[int] = ()
) -> None:
    data = HEADER.pack(MAGIC, kind, value, len(payload)) + payload
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def receive(sock: socket.socket, *, max_payload: int = MAX_PAYLOAD) -> Message:
    """One message; the caller owns (and must close) its fds."""
    header = b""
    fds: list[int] = []
    try:
        while len(header) < HEADER.size:
            data, new_fds, flags, _ = socket.recv_fds(sock, HEADER.size - len(header), MAX_FDS)
            fds += new_fds
            if flags & socket.MSG_CTRUNC:
                raise WireError("too many file descriptors")
            if not data:
                raise Closed("connection closed") if not header else WireError("truncated")
            header += data
        magic, kind, value, length = HEADER.unpack(header)
        if magic != MAGIC or length > max_payload:
            raise WireError("not a zygote message")
        payload = receive_exactly(sock, length)
    except BaseException:
        Message(0, fds=fds).close_fds()
        raise
    return Message(kind, value, payload, fds)


def receive_exactly(sock: socket.socket, length: int) -> bytes:
    chunks: list[bytes] = []
    while length:
        chunk = sock.recv(min(length, 1 << 20))
        if not chunk:
            raise WireError("truncated")
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


@dataclass
class PythonRequest:
    """A python3 invocation as the client described it (see ``python_client.c``)."""

    umask: int
    nice: int
    ignored: frozenset[int]  # signals the caller had set to SIG_IGN
    blocked: frozenset[int]  # the caller's signal mask
    interpreter: tuple[int, int]  # (st_dev, st_ino) of the interpreter the client would exec
    comm: str  # the client's process name
    rlimits: dict[int, tuple[int, int]]  # as resource.getrlimit reports them (-1: unlimited)
    fd_targets: list[int]  # the fd number each passed fd had in the caller
    cwd_fd: int
    passed_fds: list[int]  # in the zygote's process, same order as fd_targets
    argv: list[str]
    environ: list[bytes]  # "KEY=value" entries, as the caller had them

    def close_fds(self) -> None:
        Message(0, fds=[self.cwd_fd, *self.passed_fds]).close_fds()


def _signal_set(mask: int) -> frozenset[int]:
    return frozenset(bit + 1 for bit in range(64) if mask >> bit & 1)


def _rlimit_value(value: int) -> int:
    return -1 if value == RLIM_INFINITY_U64 else value


def decode_python_request(message: Message) -> PythonRequest:
    """Raises WireError for anything malformed; the message's fds then stay the caller's."""
    payload = message.payload
    try:
        umask, nice, ignored, blocked, dev, ino, comm, n_limits, n_fds = PYTHON_FIXED.unpack_from(
            payload
        )
        offset = PYTHON_FIXED.size
        rlimits = {}
        for resource_number in range(n_limits):
            soft, hard = RLIMIT.unpack_from(payload, offset)
            rlimits[resource_number] = (_rlimit_value(soft), _rlimit_value(hard))
            offset += RLIMIT.size
        targets = [FD_NUMBER.unpack_from(payload, offset + i * 4)[0] for i in range(n_fds)]
        offset += n_fds * FD_NUMBER.size
        argc, envc = COUNTS.unpack_from(payload, offset)
        offset += COUNTS.size
    except struct.error as exc:
        raise WireError(f"bad request: {exc}") from None
    strings = payload[offset:].split(b"\0")
    if strings[-1:] != [b""] or len(strings) - 1 != argc + envc:
        raise WireError("bad request: argv and environ do not match their counts")
    if len(message.fds) != n_fds + 1 or len(set(targets)) != n_fds or min(targets, default=0) < 0:
        raise WireError("bad request: file descriptors do not match their numbers")
    return PythonRequest(
        umask=umask,
        nice=nice,
        ignored=_signal_set(ignored),
        blocked=_signal_set(blocked),
        interpreter=(dev, ino),
        comm=os.fsdecode(comm.rstrip(b"\0")),
        rlimits=rlimits,
        fd_targets=targets,
        cwd_fd=message.fds[0],
        passed_fds=message.fds[1:],
        argv=[os.fsdecode(arg) for arg in strings[:argc]],
        environ=strings[argc:-1],
    )


def encode_python_request(
    *,
    argv: Sequence[str],
    environ: Sequence[bytes],
    fd_targets: Sequence[int],
    interpreter: tuple[int, int],
    umask: int = 0o022,
    nice: int = 0,
    ignored: int = 0,
    blocked: int = 0,
    comm: str = "python3",
    rlimits: Sequence[tuple[int, int]] = (),
) -> bytes:
    """The payload of a PYTHON request, as the C client builds it (for tests and tools)."""
    parts = [
        PYTHON_FIXED.pack(
            umask,
            nice,
            ignored,
            blocked,
            *interpreter,
            os.fsencode(comm)[:15],
            len(rlimits),
            len(fd_targets),
        )
    ]
    parts += [RLIMIT.pack(*(RLIM_INFINITY_U64 if v < 0 else v for v in lim)) for lim in rlimits]
    parts += [FD_NUMBER.pack(fd) for fd in fd_targets]
    parts.append(COUNTS.pack(len(argv), len(environ)))
    parts += [os.fsencode(arg) + b"\0" for arg in argv]
    parts += [entry + b"\0" for entry in environ]
    return b"".join(parts)


@dataclass(frozen=True)
class ChunkRequest:
    """A stateful chunk: its code, sys.argv[1:], and the state's environment and directory
    (used when the chunk starts a state). ``expect_state`` is the state the caller last had."""

    code: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    expect_state: str | None = None

    def encode(self) -> bytes:
        return json.dumps(
            {
                "code": self.code,
                "args": list(self.args),
                "env": self.env,
                "cwd": self.cwd,
                "expect_state": self.expect_state,
            }
        ).encode()


def decode_chunk_request(payload: bytes) -> ChunkRequest:
    try:
        document = json.loads(payload)
    except ValueError:
        raise WireError("a chunk request is JSON") from None
    if not isinstance(document, dict):
        raise WireError("a chunk request is a JSON object")
    code, args, env = document.get("code"), document.get("args", []), document.get("env", {})
    cwd, expected = document.get("cwd", "/"), document.get("expect_state")
    if not (
        isinstance(code, str)
        and isinstance(args, list)
        and all(isinstance(arg, str) for arg in args)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(cwd, str)
        and cwd.startswith("/")
        and (expected is None or isinstance(expected, str))
    ):
        raise WireError("malformed chunk request")
    return ChunkRequest(code, tuple(args), env, cwd, expected)
