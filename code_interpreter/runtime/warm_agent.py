"""PID 1 of a warm sandbox: starts each execution the host asks for, and nothing else.

A warm sandbox (``code_interpreter/sandbox/warm_sandbox.py``) stays alive between executions of one
session. Its PID 1 is this agent, run by the runtime's real interpreter (``-I -S``: standard
library only) with the privileges the sandbox's init has (root with the uid-drop capabilities
under a root-run service, the sandbox's uid in a user namespace). It talks only with the host,
over the socket it is given as fd ``argv[1]``; nothing in the sandbox can reach that socket.

Requests and events are length-prefixed JSON; a request's descriptors (the execution's stdin,
stdout and stderr) come with its first bytes (SCM_RIGHTS).

The first event, ``ready``, tells the host what every process of the sandbox inherits (umask,
nice value, resource limits) and carries an ``O_PATH`` descriptor of the working directory
(``/mnt/data`` as the sandbox sees it): with them the host asks the zygote itself for a
``python3`` (``code_interpreter.zygote_client.start_served``), as the ``python3`` client would.

* ``run``: fork, start a new session, put the three descriptors at 0, 1, 2 and close every
  other, lower the resource limits given, chdir and exec ``argv`` with ``env`` (the host builds
  the argv: under a root-run service it starts with ``sandbox-dropuid``). Answers ``started``
  with the pid, and ``exited`` with the wait status once it ends.
* ``background``: the same with stdio on /dev/null, for a zygote (there are two: the
  preloaded one and a light one); its pid is remembered.
* ``sweep``: kill every process but PID 1, the zygotes and the zygotes' own children (their
  spares, the state holder, and served ``python3`` runs, which a zygote kills with their
  clients), as the sandbox's uid (``uid``), the only one its processes have. A ``run`` with
  ``"sweep": true`` is swept this way before its ``exited`` is sent, which says whether there
  was anything to kill (then the host ends the sandbox: a served ``python3`` whose client was
  killed could outlive the sweep by a moment, until the zygote kills it).

The agent reaps every orphan, as an init must. It never trusts what runs in the sandbox: it
reads only ``/proc`` to find processes to kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
from typing import Any

HEADER = struct.Struct("!I")
MAX_REQUEST = 4 * 1024 * 1024
SWEEP_PASSES = 200
RLIMITS = 16  # RLIM_NLIMITS on Linux: what the python3 client reports too
# Ignored by the agent (PID 1): only the host ends the sandbox. Its children get them back.
HOST_ENDS_IT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    head, fds, _, _ = socket.recv_fds(sock, HEADER.size, 3)
    if not head:
        return None
    while len(head) < HEADER.size:
        more = sock.recv(HEADER.size - len(head))
        if not more:
            return None
        head += more
    (size,) = HEADER.unpack(head)
    if size > MAX_REQUEST:
        raise SystemExit("warm agent: oversized request")
    body = bytearray()
    while len(body) < size:
        more = sock.recv(size - len(body))
        if not more:
            return None
        body += more
    return json.loads(body), fds


def send(sock: socket.socket, event: dict[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(event).encode()
    data = HEADER.pack(len(body)) + body
    if fds:
        data = data[socket.send_fds(sock, [data], fds) :]
    sock.sendall(data)


def inherited() -> dict[str, Any]:
    """What each process started here inherits (before a run lowers its limits)."""
    mask = os.umask(0)
    os.umask(mask)
    limits = [list(resource.getrlimit(number)) for number in range(RLIMITS)]
    return {"umask": mask, "nice": os.getpriority(os.PRIO_PROCESS, 0), "rlimits": limits}


def start(request: dict[str, Any], fds: list[int]) -> int:
    argv = [str(part) for part in request["argv"]]
    env = {str(k): str(v) for k, v in request["env"].items()}
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, *HOST_ENDS_IT):
            signal.signal(signum, signal.SIG_DFL)  # all the agent changed: an ignored one stays
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if not fds:
            null = os.open(os.devnull, os.O_RDWR)
            fds = [null, null, null]
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target, inheritable=True)
        os.closerange(3, 65536)
        for name, soft, hard in request.get("rlimits", []):
            resource.setrlimit(int(name), (int(soft), int(hard)))
        os.chdir(str(request.get("cwd", "/")))
        os.execve(argv[0], argv, env)  # noqa: S606 - the host's command line, no shell
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"sandbox: cannot start {argv[0]}: {exc}\n".encode())
    finally:
        os._exit(127)


def processes() -> dict[int, int]:
    """pid -> parent pid, for every process of the sandbox (its own /proc)."""
    found: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:  # one open, read and close: this runs after every execution
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        finally:
            os.close(fd)
        found[int(name)] = int(fields[1])
    return found


def strays(zygotes: set[int], *, me: int) -> list[int]:
    return [
        pid
        for pid, parent in processes().items()
        if pid not in (1, me) and pid not in zygotes and parent not in zygotes
    ]


def sweep(zygotes: set[int], uid: int | None) -> int:
    """Kill every stray; returns how many there were at first."""
    if not strays(zygotes, me=os.getpid()):
        return 0
    sweeper = os.fork()
    if sweeper == 0:
        try:
            if uid is not None:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            me = os.getpid()
            for _ in range(SWEEP_PASSES):  # a fork bomb is bounded by RLIMIT_NPROC
                left = strays(zygotes, me=me)
                if not left:
                    break
                for pid in left:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(sweeper, 0)
    return 1


def _uid(request: dict[str, Any]) -> int | None:
    uid = request.get("uid")
    return uid if isinstance(uid, int) else None


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for signum in HOST_ENDS_IT:
        signal.signal(signum, signal.SIG_IGN)  # only the host ends the sandbox (SIGKILL)
    running: int | None = None
    zygotes: set[int] = set()
    sweep_after, sweep_uid = False, None
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    send(sock, {"event": "ready", **inherited()}, [cwd])
    os.close(cwd)
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while True:  # reap everything, orphans included
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == running:
                running = None
                # Before the host hears of the end: nothing runs on after it.
                swept = sweep(zygotes, sweep_uid) if sweep_after else 0
                send(sock, {"event": "exited", "pid": pid, "status": status, "swept": swept})
            else:
                zygotes.discard(pid)
        if sock.fileno() not in ready:
            continue
        message = receive(sock)
        if message is None:
            return  # the host has gone: so does the sandbox
        request, fds = message
        op = request.get("op")
        if op in ("run", "background"):
            pid = start(request, fds)
            if op == "run":
                running = pid
                sweep_after, sweep_uid = bool(request.get("sweep")), _uid(request)
            else:
                zygotes.add(pid)
            send(sock, {"event": "started", "pid": pid})
        elif op == "sweep":
            send(sock, {"event": "swept", "any": sweep(zygotes, _uid(request))})
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    main()
