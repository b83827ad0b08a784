"""What the zygote's forks run: the spare, which serves one ``python3``, and the state holder.

A spare first rehearses a request (``rehearse``), then waits in ``accept()``. A ``CHUNK`` or
``STATUS`` request it forwards to the zygote; a ``python3`` request it either sends to the real
interpreter (and waits again), or takes: it tells the zygote (which forks a replacement) and
becomes that ``python3``.

The state holder runs stateful ``py`` chunks, one at a time, in one ``__main__``: each chunk's
stdio are the fds it came with, an exception marks only that chunk failed, and SystemExit (or
any death) ends the state.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

from code_interpreter.runtime import zygote_child as child
from code_interpreter.runtime import zygote_launch as launch
from code_interpreter.runtime import zygote_run as run
from code_interpreter.runtime import zygote_wire as wire
from code_interpreter.runtime.zygote_wire import Kind

STDIO_NAMES = ("stdin", "stdout", "stderr")


def serve_as_spare(
    listener: socket.socket, channel: socket.socket, facts: launch.Facts
) -> NoReturn:
    child.die_with_parent()
    namespace = child.prepare()
    rehearse(facts)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(wire.TIMEOUT_S)
        try:
            message = wire.receive(conn)
        except (OSError, wire.WireError):
            conn.close()
            continue
        if message.kind != Kind.PYTHON:
            with contextlib.suppress(OSError):
                fds = [conn.fileno(), *message.fds]
                wire.send(channel, Kind.FORWARD, message.kind, message.payload, fds)
            message.close_fds()
            conn.close()
            continue
        try:
            request = wire.decode_python_request(message)
        except wire.WireError:
            message.close_fds()
            conn.close()
            continue
        try:
            os.fchdir(request.cwd_fd)
            plan = launch.plan(request, cwd=os.getcwd(), facts=facts)
            wire.send(channel, Kind.TAKEN, fds=[conn.fileno()])
        except (OSError, launch.Unservable) as why:
            _fall_back(conn, channel, request, str(why) or type(why).__name__)
            continue
        except Exception as exc:  # a bug here must not keep the code from running
            _fall_back(conn, channel, request, f"internal error: {exc!r}")
            continue
        channel.close()
        listener.close()
        child.become(conn, request, plan, facts, namespace)


def rehearse(facts: launch.Facts) -> None:
    """Take a made-up request through what serving one does before the code runs, up to what
    cannot be undone: decoding it, planning it (reading the filesystem only), its stdio streams
    (on /dev/null, not kept), reading a script and compiling a line. A fork shares the zygote's
    pages until it writes to them, and Python writes to every object it uses; each first write
    costs a page copy (about 3 us here), hundreds of them per request. A spare waits idle: it
    pays them now.
    Nothing of it is kept, and a failure here only means those copies come later."""
    null = cwd = -1
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        cwd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        identity = next(iter(facts.identities.values()))
        script = os.path.abspath(wire.__file__)  # a readable regular file, not run
        environ = [f"{k}={v}".encode() for k, v in facts.environ.items() if k != "PYTHONPATH"]
        payload = wire.encode_python_request(
            argv=[identity.executable, script],
            environ=[*environ, b"PYTHONPATH=/tmp"],
            fd_targets=[0, 1, 2],
            interpreter=facts.interpreter,
            rlimits=[facts.rlimits[number] for number in sorted(facts.rlimits)],
        )
        message = wire.Message(Kind.PYTHON, payload=payload, fds=[cwd, null, null, null])
        with contextlib.suppress(launch.Unservable):
            launch.plan(wire.decode_python_request(message), cwd="/", facts=facts)
        for unbuffered in (True, False):
            for name, (encoding, errors) in zip(STDIO_NAMES, facts.stdio, strict=True):
                child.stdio_stream(
                    null, name, unbuffered=unbuffered, encoding=encoding, errors=errors
                )
        with open(script, "rb") as source:
            source.read(1)
        compile("pass\n", script, "exec", dont_inherit=True)
    except Exception:  # noqa: S110 - a rehearsal: serving works without it
        pass
    finally:
        for fd in (null, cwd):
            if fd >= 0:
                os.close(fd)


def _fall_back(
    conn: socket.socket, channel: socket.socket, request: wire.PythonRequest, reason: str
) -> None:
    with contextlib.suppress(OSError):
        wire.send(conn, Kind.FALLBACK)
    request.close_fds()
    conn.close()
    with contextlib.suppress(OSError):
        wire.send(channel, Kind.FELL_BACK, payload=reason.encode(errors="replace")[:500])


def hold_state(channel: socket.socket, request: wire.ChunkRequest, facts: launch.Facts) -> NoReturn:
    child.die_with_parent()
    channel.settimeout(None)
    environ = request.env
    identity = next(i for i in facts.identities.values() if i.executable.endswith("/python3"))
    child.set_identity("python3")
    namespace = child.prepare()
    child.set_signals(ignored=frozenset({signal.SIGINT}), blocked=frozenset())  # see run_chunk
    child.set_environ(environ)
    os.chdir(request.cwd)
    path, _ = launch.search_path(os.getcwd(), environ.get("PYTHONPATH", ""), identity)
    child.set_interpreter(
        argv=[""],
        orig_argv=[identity.executable],
        identity=identity,
        path=path,
        dont_write_bytecode=bool(environ.get("PYTHONDONTWRITEBYTECODE")),
        quiet=False,
    )
    devnull = os.open(os.devnull, os.O_RDWR)
    for number in range(1, sys.maxsize):
        try:
            message = wire.receive(channel)
        except (OSError, wire.WireError):
            os._exit(0)
        for fd, target in zip(message.fds, (0, 1, 2), strict=False):
            os.dup2(fd, target)
            os.close(fd)
        child.set_stdio(unbuffered=bool(environ.get("PYTHONUNBUFFERED")), encodings=facts.stdio)
        chunk = wire.decode_chunk_request(message.payload)
        try:
            status, ended = run.run_chunk(chunk.code, list(chunk.args), number, namespace)
        except KeyboardInterrupt:  # in the instant after the chunk's own code
            status, ended = 1, False
        status = run.finalize(status, namespace) if ended else status
        run.flush_stdio()
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        wire.send(channel, Kind.DONE, status, json.dumps({"ended": ended}).encode())
        if ended:
            os._exit(status)
    os._exit(0)
