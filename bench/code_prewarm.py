"""LibreChat v0.8.8's prewarm, measured: the first real call of a stateful runtime session, with
and without the ``bash true`` prewarm LibreChat sends when a turn starts.

    .venv/bin/python bench/code_prewarm.py [--rounds 12] [--gap 3]

Our app under uvicorn (one worker, as deployed) on loopback, at ``/api/code/stateful/v1``. Each
round takes two new ``runtime_session_hint`` values and measures, in turn (interleaved, so load
swings hit both): ``cold`` the first call of one hint; ``prewarmed`` the first call of the other,
``--gap`` seconds after its prewarm answered (LibreChat fires the prewarm when the turn starts,
so the model's first tokens are the gap; the warm sandbox's zygote preloads meanwhile). The
call is what an agent's first step often is, bash running ``python3`` with pandas. Printed:
every pair, the medians, and the prewarm's own time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.code_exec import HEADERS, launch  # noqa: E402

FIRST_CALL = "python3 -c 'import pandas; print(len(pandas.DataFrame({\"a\": [1, 2]})))'"
PROFILE = {"X-CodeAPI-Expected-Profile": "stateful"}


def run(client: httpx.Client, url: str, hint: str, code: str) -> float:
    """One ``/exec`` as LibreChat's bash_tool and prewarm send it: without a JWT, no user."""
    body = {"lang": "bash", "code": code, "runtime_session_hint": hint}
    started = time.perf_counter()
    response = client.post(f"{url}/exec", json=body, headers={**HEADERS, **PROFILE})
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.json()["status"] != "ok":
        raise SystemExit(f"{response.status_code}: {response.text[:300]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds from prewarm to call")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-prewarm-"))
    app, base = launch(ROOT, tmp, {})
    url = base.replace("/api/code/v1", "/api/code/stateful/v1")
    cold: list[float] = []
    warmed: list[float] = []
    prewarms: list[float] = []
    try:
        with httpx.Client(timeout=120) as client:
            run(client, url, "bench:warm-up", FIRST_CALL)
            for index in range(args.rounds):
                first, second = (f"v2:user:{secrets.token_hex(16)}" for _ in range(2))
                time.sleep(args.gap)  # the same pause on both sides
                cold.append(run(client, url, first, FIRST_CALL))
                prewarms.append(run(client, url, second, "true"))
                time.sleep(args.gap)
                warmed.append(run(client, url, second, FIRST_CALL))
                print(
                    f"round {index + 1:2}: cold {cold[-1] * 1000:7.0f} ms   prewarmed "
                    f"{warmed[-1] * 1000:7.0f} ms   (prewarm {prewarms[-1] * 1000:.0f} ms)"
                )
    finally:
        app.terminate()
        app.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nmedian first call: cold {statistics.median(cold) * 1000:.0f} ms, prewarmed "
        f"{statistics.median(warmed) * 1000:.0f} ms; median prewarm "
        f"{statistics.median(prewarms) * 1000:.0f} ms; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
