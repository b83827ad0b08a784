"""The Code API's cold path (a new session per execution, as LibreChat's first call in a
conversation does) against an older commit, in interleaved pairs, with CPU time per execution.

    .venv/bin/python bench/code_exec_cold.py --base /path/to/old/checkout [--pairs 5]
        [--runs 30] [--chart-runs 8] [--requests 120]

Each side is our app under uvicorn (one worker) on loopback, started from its own checkout
with its own sandbox runtime (``<checkout>/var/sandbox-runtime``). Per pair, in alternating
order, each side gets: ``print(1)`` round trips (p50), matplotlib chart + ``/download`` round
trips (p50), and executions/s at concurrency 4. No request names a session. Beside the
wall-clock rate, the CPU time (user + system) of the whole server tree (uvicorn, its sandboxes,
their supervisors, everything they started and reaped) is divided by the executions done:
unlike a rate, that figure hardly moves with other tenants' load or CPU steal. The server runs
under a small subreaper so that the CPU of processes that outlive their parent is still counted.
Each pair also times a bare ``print(1)`` at nice 0 and at nice 10 (sandboxed code runs at nice 10
since issue 12): how much longer other tenants' load makes a niced process wait, for scale.

The other checkout: ``git worktree add --detach /tmp/base <commit>``, then give it this venv
(``ln -s $PWD/.venv /tmp/base/.venv``, if its dependencies are a subset) and a sandbox runtime
(a copy of ``var/sandbox-runtime``, or its own ``make sandbox``).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.code_exec import CHART, HEADERS, PRINT, Column, bare, throughput  # noqa: E402
from bench.common import bench_env, free_port, start_app, wait_http  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
TICK = os.sysconf("SC_CLK_TCK")


def subreaper(argv: list[str]) -> None:
    """Run ``argv`` as our child and reap every orphan of its tree until it exits; SIGTERM is
    passed on. (Run as ``code_exec_cold.py --subreaper -- argv...``.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = subprocess.Popen(argv)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)


def tree_cpu_s(root: int) -> float:
    """User + system CPU of ``root`` and every live descendant, each with what its reaped
    children used (cutime + cstime)."""
    parents: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(value) for value in fields[11:15])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(parents.get(pid, []))
    return total / TICK


class Side:
    def __init__(self, name: str, code_dir: Path, tmp: Path) -> None:
        self.name = name
        env = {
            **os.environ,
            **bench_env(tmp),
            "CODE_INTERPRETER_RUNTIME_DIR": str(code_dir / "var" / "sandbox-runtime"),
            "CODE_INTERPRETER_AUTH": "none",
            "CODE_INTERPRETER_SESSIONS_DIR": str(tmp / "sessions"),
            "CODE_INTERPRETER_STORAGE_OPTIONS": f'{{"location": "{tmp / "stored"}"}}',
            "CODE_INTERPRETER_QUEUE_WAIT_S": "60",
            # Every execution opens a session of the one caller: thousands in a run.
            "CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER": "1000000",
        }
        manage = [sys.executable, str(code_dir / "manage.py"), "migrate", "-v", "0"]
        subprocess.run(manage, cwd=code_dir, env=env, check=True)
        port = free_port()
        prefix = [sys.executable, str(Path(__file__).resolve()), "--subreaper", "--"]
        self.app = start_app(port, env, prefix=prefix, app_dir=code_dir)
        self.url = f"http://127.0.0.1:{port}/api/code/v1"
        wait_http(f"{self.url}/health", self.app)
        self.client = httpx.Client(base_url=self.url, headers=HEADERS, timeout=120)
        self.column = Column(name, self.client, keep_session=False)  # a new session each time

    def p50_ms(
        self, name: str, body: dict[str, str], runs: int, *, download: bool = False
    ) -> float:
        samples = [self.column.once(name, body, download=download) for _ in range(runs)]
        return statistics.median(samples) * 1e3

    def rate(self, concurrency: int, total: int) -> tuple[float, float]:
        """Executions/s, and CPU ms per execution of the whole server tree (a refused
        request would count as one: ``throughput`` prints any)."""
        cpu_before = tree_cpu_s(self.app.pid)
        rate = asyncio.run(
            throughput(self.url, dict(HEADERS), concurrency, total, warm=False, token=None)
        )
        cpu = tree_cpu_s(self.app.pid) - cpu_before
        return rate, cpu / total * 1e3

    def close(self) -> None:
        self.client.close()
        self.app.terminate()
        self.app.wait(10)


KEYS = ("print", "chart", "rate", "cpu_rate", "cpu_print")
BARE = ["/usr/bin/python3", "-I", "-S", "-c", "print(1)"]


def pairs(sides: list[Side], args: argparse.Namespace) -> None:
    """Each pair measures every side once, in turn (the order alternates), and a bare
    ``print(1)`` at nice 0 and at nice 10: sandboxed code runs at nice 10, so under other
    tenants' load it waits longer for a CPU than the code of a checkout that ran it at nice 0."""
    results: dict[str, dict[str, list[float]]] = {
        side.name: {key: [] for key in KEYS} for side in sides
    }
    niced: dict[int, list[float]] = {0: [], 10: []}
    print(
        "pair side     print(1) p50  chart p50   exec/s c=4  CPU ms/exec c=4  CPU ms/print(1)  load"
    )
    for pair in range(args.pairs):
        for side in sides if pair % 2 == 0 else sides[::-1]:
            cpu = tree_cpu_s(side.app.pid)
            printed = side.p50_ms("print", PRINT, args.runs)
            cpu_print = (tree_cpu_s(side.app.pid) - cpu) / args.runs * 1e3
            chart = side.p50_ms("chart", CHART, args.chart_runs, download=True)
            rate, cpu_rate = side.rate(4, args.requests)
            row = results[side.name]
            for key, value in zip(KEYS, (printed, chart, rate, cpu_rate, cpu_print), strict=True):
                row[key].append(value)
            print(
                f"{pair + 1:4} {side.name:7}{printed:12.1f}{chart:11.1f}{rate:12.1f}"
                f"{cpu_rate:17.1f}{cpu_print:17.1f}  {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        for nice in niced:
            samples = bare(["nice", "-n", str(nice), *BARE], args.runs)
            niced[nice].append(statistics.median(samples) * 1e3)
        print(f"     bare print(1) p50, ms: nice 0 {niced[0][-1]:.1f}, nice 10 {niced[10][-1]:.1f}")
    print("medians:" + "".join(f"{key:>12}" for key in KEYS))
    for name, row in results.items():
        print(f"  {name:7}" + "".join(f"{statistics.median(row[key]):12.1f}" for key in KEYS))
    before, after = results["before"], results["after"]
    for key in KEYS:
        change = statistics.median(after[key]) / statistics.median(before[key]) - 1
        print(f"  {key:10} after vs before: {change * 100:+.1f} %")
    print(
        f"  bare print(1) p50: nice 0 {statistics.median(niced[0]):.1f} ms, nice 10 "
        f"{statistics.median(niced[10]):.1f} ms"
    )


def main() -> None:
    if sys.argv[1:2] == ["--subreaper"]:
        subreaper(sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--chart-runs", type=int, default=8)
    parser.add_argument("--requests", type=int, default=120)
    args = parser.parse_args()
    temps = [Path(tempfile.mkdtemp(prefix=f"bench-cold-{n}-")) for n in ("before", "after")]
    sides: list[Side] = []
    try:
        sides = [Side("before", args.base.resolve(), temps[0]), Side("after", ROOT, temps[1])]
        for side in sides:  # warm the caches, unmeasured
            side.p50_ms("print", PRINT, 5)
            side.p50_ms("chart", CHART, 2, download=True)
            side.rate(4, 20)
        pairs(sides, args)
    finally:
        for side in sides:
            side.close()
        for tmp in temps:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
