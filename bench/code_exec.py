"""The Code API over real HTTP: our app under uvicorn (one worker, as deployed) on loopback.

    .venv/bin/python bench/code_exec.py [--runs 50] [--chart-runs 15] [--requests 160]
                                        [--auth none|jwt]

It prints p50/p95 of a `print(1)` round trip (POST /exec), of a matplotlib chart round trip
(POST /exec that saves a PNG, then GET /download of it, as LibreChat does), and the throughput of
trivial executions at concurrency 1, 4 and 16. Goals on the 2-core machine: print(1) p50 <= 30 ms,
chart <= 600 ms, >= 30 executions/s. The sandbox's own share is printed beside each (the
`wall_time` the API reports), so API overhead and sandbox time can be told apart. The load
average is printed too: on a shared 2-core machine it moves every number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.common import bench_env, free_port, start_app, wait_http  # noqa: E402

PRINT = {"lang": "py", "code": "print(1)"}
CHART = {
    "lang": "py",
    "code": (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2]); plt.title('bench')\n"
        "plt.savefig('/mnt/data/chart.png')\nprint('saved')\n"
    ),
}
HEADERS = {"User-Agent": "LibreChat/1.0"}


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(len(ordered) * 0.95) - 1)]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def jwt_setup() -> tuple[dict[str, str], Any]:
    """An Ed25519 pair as LibreChat's CODEAPI_JWT_* uses; the app gets the public half."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def token() -> str:
        now = int(time.time())
        claims = {
            "iss": "librechat",
            "aud": "codeapi",
            "sub": "665f1c2e9b1e4a0012345678",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "bench"})

    env = {"CODE_INTERPRETER_AUTH": "jwt", "CODE_INTERPRETER_JWT_PUBLIC_KEY": public_pem.decode()}
    return env, token


def round_trips(
    client: httpx.Client, body: dict[str, Any], runs: int, *, download: bool = False
) -> tuple[list[float], list[float]]:
    totals, sandbox_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post("/exec", json=body)
        result = response.json()
        if response.status_code != 200 or result["status"] != "ok":
            raise SystemExit(f"/exec failed: {response.status_code} {response.text[:500]}")
        if download:
            [chart] = result["files"]
            png = client.get(f"/download/{chart['storage_session_id']}/{chart['id']}")
            if png.status_code != 200 or not png.content.startswith(b"\x89PNG"):
                raise SystemExit(f"/download failed: {png.status_code}")
        totals.append(time.perf_counter() - started)
        sandbox_times.append(result["wall_time"] / 1000)
    return totals, sandbox_times


async def throughput(base_url: str, headers: dict[str, str], concurrency: int, total: int) -> str:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120, limits=limits
    ) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                response = await client.post("/exec", json=PRINT)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ok = statuses.get(200, 0)
    others = {code: n for code, n in statuses.items() if code != 200}
    note = f"   (other statuses: {others})" if others else ""
    return f"concurrency {concurrency:2}: {ok / elapsed:6.1f} executions/s{note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--chart-runs", type=int, default=15)
    parser.add_argument("--requests", type=int, default=160, help="per concurrency level")
    parser.add_argument("--auth", choices=("none", "jwt"), default="none")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-code-exec-"))
    port = free_port()
    env = {
        **os.environ,
        **bench_env(tmp),
        # The runtime `make sandbox` installed, not one under the bench's own VAR_DIR.
        "CODE_INTERPRETER_RUNTIME_DIR": str(ROOT / "var" / "sandbox-runtime"),
        "CODE_INTERPRETER_AUTH": "none",
        "CODE_INTERPRETER_SESSIONS_DIR": str(tmp / "sessions"),
        "CODE_INTERPRETER_STORAGE_OPTIONS": f'{{"location": "{tmp / "stored"}"}}',
        "CODE_INTERPRETER_QUEUE_WAIT_S": "60",
    }
    headers = dict(HEADERS)
    token = None
    if args.auth == "jwt":
        jwt_env, token = jwt_setup()
        env.update(jwt_env)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    app = start_app(port, env)
    base_url = f"http://127.0.0.1:{port}/api/code/v1"
    try:
        wait_http(f"{base_url}/health", app)
        if token:
            headers["Authorization"] = f"Bearer {token()}"  # valid 300 s: enough for one run
        print(f"auth: {args.auth}; load average before: {os.getloadavg()[0]:.2f}")
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            round_trips(client, PRINT, 5)
            round_trips(client, CHART, 2, download=True)  # warm caches
            totals, inside = round_trips(client, PRINT, args.runs)
            print(
                f"print(1) round trip      {percentiles(totals)}   (sandbox {percentiles(inside)})"
            )
            totals, inside = round_trips(client, CHART, args.chart_runs, download=True)
            print(
                f"chart + download         {percentiles(totals)}   (sandbox {percentiles(inside)})"
            )
        for concurrency in (1, 4, 16):
            print(asyncio.run(throughput(base_url, headers, concurrency, args.requests)))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        app.terminate()
        app.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
