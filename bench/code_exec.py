"""The Code API over real HTTP: our app under uvicorn (one worker, as deployed) on loopback.

    .venv/bin/python bench/code_exec.py [--runs 40] [--chart-runs 12] [--requests 120]
                                        [--auth none|jwt] [--base PATH] [--settle-ms 20]
                                        [--rounds 3]

Columns, measured interleaved (one round of each column in turn, so load swings hit them all):

* ``cold``: a new session per execution (no ``session_id``): a fresh sandbox each time;
* ``warm``: one session, named in every request: its warm sandbox and preloaded ``python3``;
* ``before``: with ``--base`` (a checkout of an older commit, e.g. ``git worktree add
  /tmp/base 21a2c4b``), the same requests, one session, against that code run from this venv,
  with the sandbox runtime installed in that checkout (``<base>/var/sandbox-runtime``) when it
  has one (its warm agent and zygote are that commit's), else this checkout's.

Each sample of those rows starts ``--settle-ms`` (20 ms) after the previous one ended: a cold
execution's sandbox is still being torn down by the kernel when its response arrives, and the
column measured next would otherwise pay for it (an agent's executions are seconds apart).

``warm`` and ``before`` are measured once their session's sandbox has had ``WARM_UP_S`` to
preload its ``python3`` (as between a chat's turns): the zygote imports the data stack for about
a second after the sandbox starts, and until then ``python3`` is the real interpreter.

Rows: ``print(1)`` (``py``); a matplotlib chart saved to /mnt/data plus its ``/download``, as
a ``py`` execution and as bash ``python3 -c`` (how LibreChat's agents run code); trivial
executions per second at concurrency 1, 4 and 16 (``warm``: one caller and session per client,
up to the warm sandboxes a host keeps; the median of ``--rounds`` rounds, the columns measured in
turn in each). Bare-host baselines are one more column of the same
rounds (``bare host``): ``/usr/bin/python3 -I -S -c 'print(1)'`` in the ``print(1)`` row and the
runtime's real interpreter importing ``matplotlib.pyplot`` in the bash chart row. The ratios at
the end are issue 17's targets. The load
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.common import bench_env, free_port, start_app, wait_http  # noqa: E402

RUNTIME = ROOT / "var" / "sandbox-runtime"
PRINT = {"lang": "py", "code": "print(1)"}
CHART_PY = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3], [3, 1, 2]); plt.title('bench')\n"
    "plt.savefig('/mnt/data/chart.png')\nprint('saved')\n"
)
CHART = {"lang": "py", "code": CHART_PY}
CHART_BASH = {"lang": "bash", "code": f'python3 -c "{CHART_PY}"'}
HEADERS = {"User-Agent": "LibreChat/1.0"}
USER = "665f1c2e9b1e4a0012345678"
WARM_UP_S = 8.0


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(len(ordered) * 0.95) - 1)] * 1000


def jwt_setup() -> tuple[dict[str, str], Callable[[str], str]]:
    """An Ed25519 pair as LibreChat's CODEAPI_JWT_* uses; the app gets the public half."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def token(sub: str = USER) -> str:
        now = int(time.time())
        claims = {
            "iss": "librechat",
            "aud": "codeapi",
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "bench"})

    env = {"CODE_INTERPRETER_AUTH": "jwt", "CODE_INTERPRETER_JWT_PUBLIC_KEY": public_pem.decode()}
    return env, token


class Column:
    """One way of sending the requests: an app, and whether a session is kept."""

    def __init__(self, name: str, client: httpx.Client, *, keep_session: bool) -> None:
        self.name = name
        self.client = client
        self.keep_session = keep_session
        self.sessions: dict[str, str] = {}

    def once(self, row: str, body: dict[str, Any], *, download: bool = False) -> float:
        request = dict(body)
        if self.keep_session and row in self.sessions:
            request["session_id"] = self.sessions[row]
        started = time.perf_counter()
        response = self.client.post("/exec", json=request)
        result = response.json()
        if response.status_code != 200 or result["status"] != "ok":
            raise SystemExit(f"{self.name}: /exec failed: {response.status_code} {response.text}")
        if download:
            [chart] = [entry for entry in result["files"] if not entry.get("inherited")]
            png = self.client.get(f"/download/{chart['storage_session_id']}/{chart['id']}")
            if png.status_code != 200 or not png.content.startswith(b"\x89PNG"):
                raise SystemExit(f"{self.name}: /download failed: {png.status_code}")
        elapsed = time.perf_counter() - started
        self.sessions.setdefault(row, result["session_id"])
        return elapsed


class Bare:
    """A bare-host baseline measured as one more column, in the same rounds as the API's."""

    name = "bare host"
    keep_session = False

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv, self.env = argv, env

    def once(self, row: str, body: dict[str, Any], *, download: bool = False) -> float:
        started = time.perf_counter()
        subprocess.run(self.argv, check=True, stdout=subprocess.DEVNULL, env=self.env)
        return time.perf_counter() - started


def interleaved(
    columns: list[Column | Bare],
    row: str,
    body: dict[str, Any],
    runs: int,
    *,
    download: bool = False,
    settle_s: float = 0.0,
) -> dict[str, list[float]]:
    for column in columns:  # open the session (and warm it), unmeasured
        for _ in range(3):
            column.once(row, body, download=download)
    if any(column.keep_session for column in columns):
        time.sleep(WARM_UP_S)  # the sessions' zygotes preloaded
    samples: dict[str, list[float]] = {column.name: [] for column in columns}
    for _ in range(runs):
        for column in columns:
            time.sleep(settle_s)  # what the previous sample left running (a cold teardown) ends
            samples[column.name].append(column.once(row, body, download=download))
    return samples


def bare(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    command = Bare(argv, env)
    return [command.once("", {}) for _ in range(runs + 2)][2:]


async def throughput(
    base_url: str,
    headers: dict[str, str],
    concurrency: int,
    total: int,
    *,
    warm: bool,
    token: Callable[[str], str] | None,
) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    failures: dict[int, int] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120, limits=limits
    ) as client:
        queue = iter(range(total))

        async def worker(index: int) -> int:
            body: dict[str, Any] = dict(PRINT)
            mine = dict(headers)
            if warm:  # a caller and session of its own: one warm sandbox per client
                user = f"{index + 1:024x}"
                body["user_id"] = user
                if token is not None:
                    mine["Authorization"] = f"Bearer {token(user)}"
                opened = await client.post("/exec", json=body, headers=mine)
                body["session_id"] = opened.json()["session_id"]
                for _ in range(3):
                    await client.post("/exec", json=body, headers=mine)
            await ready.wait()
            done = 0
            for _ in queue:
                response = await client.post("/exec", json=body, headers=mine)
                if response.status_code == 200:
                    done += 1
                else:
                    failures[response.status_code] = failures.get(response.status_code, 0) + 1
            return done

        ready = asyncio.Event()
        tasks = [asyncio.create_task(worker(index)) for index in range(concurrency)]
        await asyncio.sleep(WARM_UP_S if warm else 0.5)  # sessions opened, zygotes preloaded
        ready.set()
        started = time.perf_counter()
        done = sum(await asyncio.gather(*tasks))
        elapsed = time.perf_counter() - started
    if failures:
        print(f"   (concurrency {concurrency}: other statuses {failures})")
    return done / elapsed


def app_env(tmp: Path, env: dict[str, str], runtime: Path = RUNTIME) -> dict[str, str]:
    return {
        **os.environ,
        **bench_env(tmp),
        # The runtime `make sandbox` installed, not one under the bench's own VAR_DIR.
        "CODE_INTERPRETER_RUNTIME_DIR": str(runtime),
        "CODE_INTERPRETER_AUTH": "none",
        "CODE_INTERPRETER_SESSIONS_DIR": str(tmp / "sessions"),
        "CODE_INTERPRETER_STORAGE_OPTIONS": f'{{"location": "{tmp / "stored"}"}}',
        "CODE_INTERPRETER_QUEUE_WAIT_S": "60",
        **env,
    }


def launch(code_dir: Path, tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    own_runtime = code_dir / "var" / "sandbox-runtime"
    full = app_env(tmp, env, own_runtime if (own_runtime / ".installed").exists() else RUNTIME)
    manage = [sys.executable, str(code_dir / "manage.py"), "migrate", "-v", "0"]
    subprocess.run(manage, cwd=code_dir, env=full, check=True)
    app = start_app(port, full, app_dir=code_dir)
    base_url = f"http://127.0.0.1:{port}/api/code/v1"
    wait_http(f"{base_url}/health", app)
    return app, base_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--chart-runs", type=int, default=12)
    parser.add_argument("--requests", type=int, default=120, help="per concurrency level")
    parser.add_argument("--auth", choices=("none", "jwt"), default="none")
    parser.add_argument("--base", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument(
        "--rounds", type=int, default=3, help="throughput rounds per column (default: 3)"
    )
    parser.add_argument(
        "--settle-ms",
        type=float,
        default=20.0,
        help="pause before each sample of the interleaved rows (default: 20; 0 for none)",
    )
    args = parser.parse_args()

    extra: dict[str, str] = {}
    headers = dict(HEADERS)
    token = None
    if args.auth == "jwt":
        extra, token = jwt_setup()
    apps: list[subprocess.Popen[bytes]] = []
    temps: list[Path] = []
    try:
        urls = {}
        for name, code_dir in (("after", ROOT), ("before", args.base)):
            if code_dir is None:
                continue
            temps.append(Path(tempfile.mkdtemp(prefix=f"bench-code-exec-{name}-")))
            app, urls[name] = launch(code_dir.resolve(), temps[-1], extra)
            apps.append(app)
        if token:
            headers["Authorization"] = f"Bearer {token(USER)}"  # valid 300 s, renewed below
        run(args, urls, headers, token)
    finally:
        for app in apps:
            app.terminate()
            app.wait(10)
        for tmp in temps:
            shutil.rmtree(tmp, ignore_errors=True)


def run(
    args: argparse.Namespace,
    urls: dict[str, str],
    headers: dict[str, str],
    token: Callable[[str], str] | None,
) -> None:
    load = os.getloadavg()[0]
    print(f"auth: {args.auth}; settle: {args.settle_ms:g} ms; load average before: {load:.2f}")
    clients = {
        name: httpx.Client(base_url=url, headers=headers, timeout=120) for name, url in urls.items()
    }
    columns = [
        Column("cold", clients["after"], keep_session=False),
        Column("warm", clients["after"], keep_session=True),
    ]
    if "before" in clients:
        columns.insert(0, Column("before", clients["before"], keep_session=True))
    names = [column.name for column in columns]
    bare_print = Bare(["/usr/bin/python3", "-I", "-S", "-c", "print(1)"])
    # Sandboxed code runs at nice 10: under others' load it gets less CPU than a bare process.
    nice_print = bare(
        ["nice", "-n", "10", "/usr/bin/python3", "-I", "-S", "-c", "print(1)"], args.runs
    )
    mpl_env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(RUNTIME / "mplconfig")}
    python = str(RUNTIME / "venv" / "bin" / "python3")  # no zygote named: the real interpreter
    bare_import = Bare([python, "-c", "import matplotlib.pyplot"], mpl_env)
    print(f"{'p50 / p95, ms':34}" + "".join(f"{name:>20}" for name in [*names, Bare.name]))
    rows = {}
    row_specs: tuple[tuple[str, dict[str, Any], int, bool, Bare | None], ...] = (
        ("print(1) py", PRINT, args.runs, False, bare_print),
        ("chart + download, py", CHART, args.chart_runs, True, None),
        ("chart + download, bash python3 -c", CHART_BASH, args.chart_runs, True, bare_import),
    )
    for row, body, runs, download, baseline in row_specs:
        row_columns: list[Column | Bare] = [*columns, *([baseline] if baseline else [])]
        rows[row] = samples = interleaved(
            row_columns, row, body, runs, download=download, settle_s=args.settle_ms / 1000
        )
        cells = "".join(
            f"{median_ms(samples[c.name]):12.1f} /{p95_ms(samples[c.name]):6.0f}"
            for c in row_columns
        )
        print(f"{row:34}{cells}")
    print("bare host: /usr/bin/python3 -I -S -c 'print(1)' in the print(1) row, the runtime's")
    print(
        "interpreter importing matplotlib.pyplot in the bash chart row; measured in the same rounds"
    )
    print(f"{'bare print(1) at nice 10 (for scale)':34}{median_ms(nice_print):12.1f}")
    rounds: dict[tuple[str, int], list[float]] = {}
    for concurrency in (1, 4, 16):
        for _ in range(args.rounds):  # the columns in turn, round after round: the median
            if token is not None:
                headers["Authorization"] = f"Bearer {token(USER)}"
            for name, url, warm in (
                ("before", urls.get("before"), False),
                ("cold", urls["after"], False),
                ("warm", urls["after"], True),
            ):
                if url is None or (warm and concurrency > 4):
                    continue
                rate = asyncio.run(
                    throughput(url, headers, concurrency, args.requests, warm=warm, token=token)
                )
                rounds.setdefault((name, concurrency), []).append(rate)
    rates = {key: statistics.median(values) for key, values in rounds.items()}
    for concurrency in (1, 4, 16):
        cells = "".join(
            f"{rates[(name, concurrency)]:20.1f}" if (name, concurrency) in rates else f"{'-':>20}"
            for name in names
        )
        print(f"{f'executions/s at concurrency {concurrency}':34}{cells}")
    warm_print = median_ms(rows["print(1) py"]["warm"])
    bare_print_ms = median_ms(rows["print(1) py"][Bare.name])
    warm_chart = median_ms(rows["chart + download, bash python3 -c"]["warm"])
    bare_import_ms = median_ms(rows["chart + download, bash python3 -c"][Bare.name])
    print("targets (issue 17):")
    print(f"  warm print(1) / bare python3 -I -S: {warm_print / bare_print_ms:.2f} (<= 1.5)")
    if "before" in rows["print(1) py"]:
        before_print = median_ms(rows["print(1) py"]["before"])
        print(f"  (before print(1) / bare python3 -I -S: {before_print / bare_print_ms:.2f})")
    print(
        f"  warm bash chart + download: {warm_chart:.1f} ms (<= 150; bare import matplotlib "
        f"{bare_import_ms:.1f} ms: {warm_chart / bare_import_ms:.2f}, < 1)"
    )
    if ("before", 4) in rates:
        ratio = rates[("warm", 4)] / rates[("before", 4)]
        print(f"  executions/s at concurrency 4, warm / before: {ratio:.2f} (>= 2)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for client in clients.values():
        client.close()


if __name__ == "__main__":
    main()
