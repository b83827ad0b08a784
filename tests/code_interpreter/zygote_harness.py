"""Runs inside one sandbox (test_zygote.py hands it over as a ``py`` execution).

Starts the zygote, then runs every case of /mnt/data/cases.json twice: with $SANDBOX_PY_ZYGOTE
naming its socket (served by the zygote, or sent on to the real interpreter) and naming a socket
that does not exist (the client execs the real interpreter at once: the oracle). Records stdout,
stderr, the exit status, chosen files, and how the zygote handled each run (its served and
fallback counters) in /mnt/data/results.json, with the zygote's status and log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, "/opt/runtime/zygote")

from code_interpreter.runtime import zygote_wire as wire

SOCKET = "/tmp/zygote.sock"
LOG = Path("/tmp/zygote.log")
DATA = Path("/mnt/data")


def status(timeout_s: float = 60, *, attempts: int = 3) -> dict[str, Any]:
    """The zygote's STATUS. A spare carries the request to the zygote; on a loaded host a spare
    can be lost on the way (the zygote forks another), which closes the connection unanswered:
    asked again then. A zygote that is gone refuses the connection and fails every attempt."""
    for attempt in range(1, attempts + 1):
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(timeout_s)
                sock.connect(SOCKET)
                wire.send(sock, wire.Kind.STATUS)
                document: dict[str, Any] = json.loads(wire.receive(sock).payload)
                return document
        except TimeoutError:
            print(
                f"STATUS timed out after {timeout_s} s; processes:\n{_processes()}", file=sys.stderr
            )
            print(f"zygote log:\n{LOG.read_text()[-3000:]}", file=sys.stderr)
            raise
        except wire.Closed:
            if attempt == attempts:
                raise
            print(f"STATUS: connection closed unanswered (attempt {attempt})", file=sys.stderr)
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _processes() -> str:
    """Every process of the sandbox: pid, parent, state, where it waits, its command line."""
    lines = []
    for name in sorted(os.listdir("/proc"), key=lambda n: int(n) if n.isdigit() else 0):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            wchan = Path(f"/proc/{name}/wchan").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        lines.append(f"{name} {stat[1]} {stat[0]} {wchan} {cmdline.decode(errors='replace')}")
    return "\n".join(lines)


def start_zygote(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    with LOG.open("wb") as log:
        zygote = subprocess.Popen(
            ["/opt/runtime/bin/sandbox-zygote", "--socket", SOCKET],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return zygote, status()
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the zygote did not start: {LOG.read_text()}")


def run(case: dict[str, Any], base_env: dict[str, str], *, zygote: bool) -> dict[str, Any]:
    env = dict(base_env)
    for name, value in case.get("env", {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env[wire.SOCKET_ENV] = SOCKET if zygote else "/tmp/absent.sock"
    stdin_data = case.get("stdin")
    blocked = [getattr(signal, name) for name in case.get("block", [])]
    with open(case.get("stdout") or os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            case["argv"],
            executable=case.get("executable"),
            env=env,
            cwd=case.get("cwd", "/mnt/data"),
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=sink if case.get("stdout") else subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, blocked))
            if blocked
            else None,
        )
        result: dict[str, Any] = {}
        if case.get("signal"):
            assert proc.stdout is not None
            pid_line = proc.stdout.readline()  # the code prints its pid, then waits
            time.sleep(0.3)  # until it sleeps
            os.kill(proc.pid, getattr(signal, case["signal"]))
            if case["signal"] == "SIGKILL":
                proc.wait()
                time.sleep(1.0)
                result["code_alive"] = _alive(int(pid_line))
        data = stdin_data.encode() if stdin_data is not None else None
        out, err = proc.communicate(data, 60)
    result.update(
        stdout=(out or b"").decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        returncode=proc.returncode,
    )
    for name in case.get("files", []):
        path = DATA / name
        result.setdefault("files", {})[name] = path.read_text() if path.exists() else None
        path.unlink(missing_ok=True)
    return result


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except OSError:
        return False
    return state != "Z"


def main() -> None:
    cases = json.loads((DATA / "cases.json").read_text())
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as bash has it
    zygote, first_status = start_zygote(base_env)
    results: dict[str, Any] = {"status_at_start": first_status}
    for case in cases:
        before = status()
        served = run(case, base_env, zygote=True)
        after = status()
        served["served"] = after["served"] - before["served"]
        served["fallbacks"] = after["fallbacks"] - before["fallbacks"]
        served["reasons"] = after["recent_fallbacks"][-served["fallbacks"] :][: served["fallbacks"]]
        entry = {"served": served}
        if case.get("distinct"):
            entry["again"] = run(case, base_env, zygote=True)
        else:
            entry["oracle"] = run(case, base_env, zygote=False)
        results[case["name"]] = entry
    results["status_at_end"] = status()
    zygote.terminate()
    zygote.wait()
    results["log"] = LOG.read_text()
    (DATA / "results.json").write_text(json.dumps(results))


main()
