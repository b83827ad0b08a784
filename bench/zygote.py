"""The preloaded python3 (the zygote) inside one real sandbox, against cold starts, in one run.

    .venv/bin/python bench/zygote.py [--runs 40] [--chart-runs 15] [--preload numpy,pandas,...]

Inside one sandbox (a bash execution that starts the zygote and keeps the sandbox alive), a
timing script spawns each command from Python and waits for it: a bare ``/usr/bin/python3 -I
-S -c 'print(1)'``, the runtime's interpreter directly, ``python3 -c 'print(1)'`` cold (the
client execs the real interpreter) and through the zygote, an invocation the zygote sends back
(``-I``), ``import matplotlib.pyplot`` cold, and a chart (plot, savefig to /mnt/data) cold and
through the zygote; then trivial executions per second at concurrency 4, cold and warm. From the
host, stateful ``py`` chunks go through the zygote's socket (zygote_client.run_chunk). It
prints medians and p90 (ms), and the zygote's PSS and RSS after the preload (PSS of shared pages
is split between the zygote and its spare). The machine's load average is printed too: on a
shared 2-core machine it moves every number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from code_interpreter import sandbox, zygote_client
from code_interpreter.sandbox import Limits
from code_interpreter.sandbox.command import LANGUAGES, sandbox_env

KEEP_WARM = """
mkdir -p /mnt/data/.zygote
{command} > /tmp/zygote.log 2>&1 < /dev/null &
/opt/runtime/venv/bin/python3.11 /mnt/data/inner.py {runs} {chart_runs} > /mnt/data/inner.json
touch /mnt/data/.zygote/ready
while [ ! -e /mnt/data/.zygote/stop ]; do sleep 0.05; done
cat /tmp/zygote.log >&2
"""

INNER = r"""
import json, os, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, "/opt/runtime/zygote")
from code_interpreter.runtime import zygote_wire as wire
import socket

runs, chart_runs = int(sys.argv[1]), int(sys.argv[2])
SOCKET = "/mnt/data/.zygote/sock"

def status():
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(SOCKET)
        wire.send(sock, wire.Kind.STATUS)
        return json.loads(wire.receive(sock).payload)

deadline = time.monotonic() + 120
while True:
    try:
        first = status()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)

base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as bash has it
warm = {**base, wire.SOCKET_ENV: SOCKET}
CHART = ("import matplotlib.pyplot as plt; plt.plot([1, 2, 3], [3, 1, 2]); plt.title('bench');"
         " plt.savefig('/mnt/data/chart.png')")
PRINT = ["python3", "-c", "print(1)"]
BARE = ["/usr/bin/python3", "-I", "-S", "-c", "print(1)"]
REAL = ["/opt/runtime/venv/bin/python3.11", "-c", "print(1)"]
IMPORT = ["python3", "-c", "import matplotlib.pyplot"]
cases = [
    ("bare /usr/bin/python3 -I -S print(1)", BARE, base, runs),
    ("runtime python3.11 print(1), no client", REAL, base, runs),
    ("python3 print(1), cold", PRINT, base, runs),
    ("python3 print(1), zygote", PRINT, warm, runs),
    ("python3 -I print(1), sent back", ["python3", "-I", "-c", "print(1)"], warm, runs),
    ("import matplotlib.pyplot, cold", IMPORT, base, chart_runs),
    ("chart, cold", ["python3", "-c", CHART], base, chart_runs),
    ("chart, zygote", ["python3", "-c", CHART], warm, chart_runs),
]

def cpu_per_run(argv, env, count):
    # CPU seconds per run: the client's and, for the zygote, its forks and served children.
    before, zygote_before = os.times(), status()["cpu_s"]
    for _ in range(count):
        once(argv, env)
    after, zygote_after = os.times(), status()["cpu_s"]
    spent = (after.children_user + after.children_system) - (
        before.children_user + before.children_system)
    if env is warm:
        spent += sum(zygote_after.values()) - sum(zygote_before.values())
    return spent / count

def once(argv, env):
    # wait() without a timeout: with one, Popen polls with growing sleeps (0.5, 1, 2, 4 ms...),
    # which would round every figure up to 7.5 or 15.5 ms. A timer kills a stuck run instead.
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    watchdog = threading.Timer(60, stuck, (proc, argv))
    watchdog.start()
    returncode = proc.wait()
    elapsed = time.perf_counter() - started
    watchdog.cancel()
    if returncode != 0:
        raise SystemExit(f"{argv} failed: {returncode}")
    return elapsed

def stuck(proc, argv):
    print("stuck:", argv, status(), file=sys.stderr, flush=True)
    subprocess.run(["ps", "-eo", "pid,ppid,stat,wchan:24,args"], stdout=sys.stderr)
    proc.kill()

results = {}
for name, argv, env, count in cases:
    once(argv, env)  # page cache, and the zygote's first spare
    results[name] = [once(argv, env) for _ in range(count)]

def rate(env, total=runs * 2):
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: once(PRINT, env), range(total)))
    return total / (time.perf_counter() - started)

def memory(pid):
    fields = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss", "Pss_Anon", "Private_Dirty"):
            fields[key] = int(value.split()[0])
    return fields

end = status()
zygote_memory, spare_memory = memory(end["pid"]), memory(end["spares"][0])
cpu = {"cold": cpu_per_run(PRINT, base, runs), "zygote": cpu_per_run(PRINT, warm, runs)}
print(json.dumps({
    "samples": results,
    "status": first,
    "zygote_memory": zygote_memory,
    "spare_memory": spare_memory,
    "cpu": cpu,
    "rate_cold": rate(base),
    "rate_zygote": rate(warm),
}))
"""


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, round(len(ordered) * 0.9) - 1)] * 1000


def line(name: str, samples: list[float], baseline: float | None = None) -> str:
    p50, p90 = summary(samples)
    ratio = f"   x{p50 / baseline:4.2f} of bare" if baseline else ""
    return f"{name:42} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms{ratio}"


def chunks(socket_path: Path, runs: int) -> tuple[list[float], list[float], str]:
    """(first chunk of a state, later chunks, what x = 41 then print(x + 1) printed)."""
    env = sandbox_env(LANGUAGES["py"], memory_bytes=512 * 1024**2)
    read_end, write_end = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)

    def chunk(code: str, expect: str | None) -> tuple[float, str]:
        started = time.perf_counter()
        result = zygote_client.run_chunk(
            socket_path,
            code,
            stdin=null,
            stdout=write_end,
            stderr=null,
            expect_state=expect,
            env=env,
            timeout_s=30,
        )
        if result.exit_code != 0:
            raise SystemExit(f"chunk failed: {result}")
        return time.perf_counter() - started, result.state

    try:
        firsts, later = [], []
        for _ in range(max(3, runs // 5)):
            elapsed, state = chunk("x = 41", None)
            firsts.append(elapsed)
        for _ in range(runs):
            elapsed, state = chunk("print(x + 1)", state)
            later.append(elapsed)
        os.close(write_end)
        printed = os.read(read_end, 1 << 20).decode().splitlines()[0]
    finally:
        os.close(read_end)
        os.close(null)
    return firsts, later, printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--chart-runs", type=int, default=15)
    parser.add_argument("--preload", help="modules, by commas (default: the zygote's)")
    options = parser.parse_args()
    ready, message = sandbox.sandbox_status()
    if not ready:
        raise SystemExit(message)
    workdir = Path(tempfile.mkdtemp(prefix="bench-zygote-"))
    (workdir / "inner.py").write_text(INNER)
    preload = options.preload.split(",") if options.preload is not None else None
    command = " ".join(zygote_client.zygote_command("/mnt/data/.zygote/sock", preload=preload))
    code = KEEP_WARM.format(command=command, runs=options.runs, chart_runs=options.chart_runs)
    outcome: list[sandbox.ExecutionResult] = []
    limits = Limits(timeout_s=600, cpu_s=600, max_processes=128)
    runner = threading.Thread(
        target=lambda: outcome.append(
            sandbox.execute(lang="bash", code=code, workdir=workdir, limits=limits)
        )
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runner.start()
    while not (workdir / ".zygote" / "ready").exists():
        if not runner.is_alive():
            raise SystemExit(f"the sandbox ended early: {outcome[0].stderr[-2000:]}")
        time.sleep(0.1)
    try:
        try:
            inner: dict[str, Any] = json.loads((workdir / "inner.json").read_text())
        except ValueError:
            (workdir / ".zygote" / "stop").touch()
            runner.join(60)
            raise SystemExit(f"the timing script failed: {outcome[0].stderr[-3000:]}") from None
        firsts, later, printed = chunks(workdir / ".zygote" / "sock", options.runs)
    finally:
        (workdir / ".zygote" / "stop").touch()
        runner.join(60)
    samples = inner["samples"]
    bare = summary(samples["bare /usr/bin/python3 -I -S print(1)"])[0]
    status = inner["status"]
    print(f"zygote: preloaded {status['preloaded']} in {status['preload_s']:.2f} s")
    for name, values in samples.items():
        print(line(name, values, bare))
    print(line("stateful chunk, first of a state", firsts, bare))
    print(line("stateful chunk, next (print(x + 1))", later, bare) + f"   printed {printed}")
    cpu = inner["cpu"]
    print(
        f"CPU per python3 print(1): cold {cpu['cold'] * 1000:.1f} ms, zygote"
        f" {cpu['zygote'] * 1000:.1f} ms (client, fork, child and its teardown)"
    )
    print(
        f"trivial python3 at concurrency 4: cold {inner['rate_cold']:.1f}/s,"
        f" zygote {inner['rate_zygote']:.1f}/s"
    )
    memory, spare = inner["zygote_memory"], inner["spare_memory"]
    together = (memory["Pss"] + 2 * spare["Pss"]) / 1024
    print(
        f"zygote memory: PSS {memory['Pss'] / 1024:.1f} MiB (RSS {memory['Rss'] / 1024:.1f} MiB,"
        f" private dirty {memory['Private_Dirty'] / 1024:.1f} MiB); each idle spare adds PSS"
        f" {spare['Pss'] / 1024:.1f} MiB; with two: {together:.1f} MiB"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
