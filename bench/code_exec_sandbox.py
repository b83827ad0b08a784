"""Micro-benchmark of the sandbox alone (no HTTP): latency per language and trivial throughput.

    .venv/bin/python bench/code_exec_sandbox.py [--runs 30] [--threads 4]

The machine's load average is printed too: on a shared 2-core machine it moves every number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from code_interpreter import sandbox

CASES = [
    ("py print(1)", "py", "print(1)"),
    ("bash python3 -c print(1)", "bash", "python3 -c 'print(1)'"),
    ("js console.log(1)", "js", "console.log(1)"),
    (
        "py matplotlib chart",
        "py",
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2]); plt.title('bench')\n"
        "plt.savefig('chart.png')\n",
    ),
]


def timed(lang: str, code: str, workdir: Path) -> float:
    started = time.perf_counter()
    result = sandbox.execute(lang=lang, code=code, workdir=workdir)
    if result.status != "ok":
        raise SystemExit(f"{lang} failed: {result.status} {result.stderr[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=4)
    options = parser.parse_args()
    ready, message = sandbox.sandbox_status()
    if not ready:
        raise SystemExit(message)
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for name, lang, code in CASES:
        timed(lang, code, workdir)  # warm the page cache
        runs = sorted(timed(lang, code, workdir) for _ in range(options.runs))
        p50, p90 = statistics.median(runs), runs[int(len(runs) * 0.9) - 1]
        print(f"{name:28} p50 {p50 * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms")
    total = options.runs * 3
    started = time.perf_counter()
    with ThreadPoolExecutor(options.threads) as pool:
        list(pool.map(lambda _: timed("py", "print(1)", workdir), range(total)))
    rate = total / (time.perf_counter() - started)
    print(f"py print(1) throughput, {options.threads} threads: {rate:.1f} executions/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
