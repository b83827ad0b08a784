"""The chat proxy's overhead, measured side by side with LibreChat (the double) called directly.

    .venv/bin/python bench/proxy.py [--requests 2000] [--events-runs 30] [--streams 1000]
                                    [--debug] [--fresh-connections]

Everything runs on loopback: the LibreChat double in its own process, our app under uvicorn (one
worker, as deployed) in another, and the clients here. It prints:
  1. p50/p99 of GET /api/chat/convos through the proxy and of GET /api/convos on the double;
  2. time to first SSE event and per-event delay added by the proxy, from one subscriber through
     the proxy and one directly on the same generation;
  3. resident memory of the uvicorn worker holding N concurrent streams.

--debug also starts the app as `make run` does (DEBUG on), on the same database and LibreChat,
and measures it in step 1 interleaved with the others: what development adds per request.
--fresh-connections opens a new connection per request in step 1 (as curl would).
--events-runs 0 / --streams 0 skip steps 2 and 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.common import (  # noqa: E402
    bench_env,
    cpu_seconds,
    free_port,
    librechat_account,
    percentile,
    rss_mb,
    start_app,
    wait_http,
)

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)


def chat_body(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "sender": "User",
        "isCreatedByUser": True,
        "parentMessageId": "00000000-0000-0000-0000-000000000000",
        "conversationId": None,
        "messageId": "5c0b1bd2-3a39-4b5e-9a43-0f7c8b2f4a11",
        "endpoint": "Fake",
        "endpointType": "custom",
        "model": "fake-model",
        "isTemporary": False,
        "isRegenerate": False,
        "isContinued": False,
        "ephemeralAgent": {"mcp": [], "execute_code": False, "file_search": False},
    }


def read_arrivals(client: httpx.Client, url: str, out: list[float], ready: threading.Event) -> None:
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=60) as response:
        ready.set()
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                if not frame.startswith(b":"):
                    out.append(time.perf_counter())


async def hold_streams(
    port: int, paths: list[str], token: str, hold: float, pid: int
) -> tuple[int, float]:
    """Open one stream per path through the proxy, keep them all open, measure the worker."""
    writers = []
    opened = 0

    async def open_one(path: str) -> None:
        nonlocal opened
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " in status:
            opened += 1
        writers.append(writer)

    for start in range(0, len(paths), 100):
        await asyncio.gather(*(open_one(p) for p in paths[start : start + 100]))
    await asyncio.sleep(hold)
    memory = rss_mb(pid)
    for writer in writers:
        writer.close()
    return opened, memory


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--events-runs", type=int, default=30)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--debug", action="store_true", help="also measure the app in DEBUG")
    parser.add_argument(
        "--fresh-connections", action="store_true", help="a new connection per request"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    double_port, app_port = free_port(), free_port()
    env = {**os.environ, **bench_env(tmp, librechat_url=f"http://127.0.0.1:{double_port}")}
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    from users.crypto import encrypt_secret, generate_librechat_password
    from users.models import ProvisioningState, User

    call_command("migrate", verbosity=0)
    double = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.librechat_double",
            "--port",
            str(double_port),
            "--set",
            "limit_message_ip=false",
            "--set",
            "limit_concurrent_messages=false",
            "--set",
            "fake_start_delay_s=0.3",
            "--set",
            "fake_token_delay_s=0.05",
            "--set",
            "fake_slow_token_delay_s=5",
            "--set",
            "fake_slow_token_count=100",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app = start_app(
        app_port, env, prefix=os.environ.get("BENCH_APP_PREFIX", "").split(), quiet=True
    )
    debug_port = free_port()
    debug_app = start_app(debug_port, {**env, "DEBUG": "true"}, quiet=True) if args.debug else None
    try:
        wait_http(f"http://127.0.0.1:{double_port}/health", double)
        wait_http(f"http://127.0.0.1:{app_port}/api/schema/", app)
        # The operator's LibreChat admin first, as deployed: the bench user is then a USER.
        call_command("librechat_bootstrap", "--email", "operator@example.com")
        if debug_app is not None:
            wait_http(f"http://127.0.0.1:{debug_port}/api/schema/", debug_app)
        lc_password = generate_librechat_password()
        user = User.objects.create_user(
            email="bench@example.com",
            password="a-Strong-passw0rd!",
            name="Bench",
            librechat_password_encrypted=encrypt_secret(lc_password),
            # Registered below by hand: no provisioning run (nothing runs workflows here).
            provisioning_state=ProvisioningState.ACTIVE,
        )
        direct = httpx.Client(
            base_url=f"http://127.0.0.1:{double_port}",
            headers={"User-Agent": BROWSER_UA},
            timeout=30,
        )
        login = librechat_account(direct, user.email, lc_password)
        direct.headers["Authorization"] = f"Bearer {login['token']}"
        User.objects.filter(pk=user.pk).update(
            provisioning_state=ProvisioningState.ACTIVE,
            librechat_user_id=login["user"]["id"],
        )
        token = str(RefreshToken.for_user(user).access_token)
        proxied = httpx.Client(
            base_url=f"http://127.0.0.1:{app_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        # Step 1's clients: keep-alive, or a new connection per request.
        limits = httpx.Limits(max_keepalive_connections=0 if args.fresh_connections else 20)
        step1 = {
            name: httpx.Client(base_url=base, headers=headers, timeout=30, limits=limits)
            for name, base, headers in (
                ("proxy", f"http://127.0.0.1:{app_port}", dict(proxied.headers)),
                ("debug", f"http://127.0.0.1:{debug_port}", dict(proxied.headers)),
                ("direct", f"http://127.0.0.1:{double_port}", dict(direct.headers)),
            )
            if name != "debug" or debug_app is not None
        }
        for _ in range(3):  # some conversations to list
            direct.post("/api/agents/chat/Fake", json=chat_body("Hello"))
        time.sleep(1)

        # 1. Request latency, interleaved so all see the same machine.
        via_proxy: list[float] = []
        via_direct: list[float] = []
        via_debug: list[float] = []
        measured = {"proxy": via_proxy, "debug": via_debug, "direct": via_direct}
        step1_paths = {
            "proxy": "/api/chat/convos",
            "debug": "/api/chat/convos",
            "direct": "/api/convos",
        }
        app_cpu = debug_cpu = 0.0
        for n in range(args.requests + 200):
            if n == 200:
                app_cpu = cpu_seconds(app.pid)
                debug_cpu = cpu_seconds(debug_app.pid) if debug_app else 0.0
            for name, client in step1.items():
                started = time.perf_counter()
                response = client.get(step1_paths[name])
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text
                if n >= 200:
                    measured[name].append(elapsed * 1000)
        app_cpu = cpu_seconds(app.pid) - app_cpu
        if debug_app is not None:
            debug_cpu = cpu_seconds(debug_app.pid) - debug_cpu
        if os.environ.get("BENCH_THREADS"):
            for task in sorted(Path(f"/proc/{app.pid}/task").iterdir()):
                stat = (task / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                f = stat.rsplit(")", 1)[1].split()
                print("   thread", task.name, name, int(f[11]) + int(f[12]))
        print(
            f"GET convos, {args.requests} each   direct p50 {statistics.median(via_direct):.2f} ms "
            f"p99 {percentile(via_direct, 99):.2f} ms | proxy p50 "
            f"{statistics.median(via_proxy):.2f} ms "
            f"p99 {percentile(via_proxy, 99):.2f} ms | added p50 "
            f"{statistics.median(via_proxy) - statistics.median(via_direct):.2f} ms, p99 "
            f"{percentile(via_proxy, 99) - percentile(via_direct, 99):.2f} ms",
            flush=True,
        )
        # CPU time is steadier than latency on a busy machine: what one proxied request costs us.
        print(
            f"  our worker's CPU per proxied request: {app_cpu / args.requests * 1e6:.0f} us",
            flush=True,
        )
        if debug_app is not None:
            print(
                f"  DEBUG on (make run): proxy p50 {statistics.median(via_debug):.2f} ms "
                f"p99 {percentile(via_debug, 99):.2f} ms, CPU per request "
                f"{debug_cpu / args.requests * 1e6:.0f} us | DEBUG adds p50 "
                f"{statistics.median(via_debug) - statistics.median(via_proxy):.2f} ms "
                f"({statistics.median(via_debug) / statistics.median(via_proxy):.2f}x)",
                flush=True,
            )
        if not args.events_runs and not args.streams:
            return

        # 2. Event timing: one subscriber through the proxy, one direct, same generation.
        first_added: list[float] = []
        per_event_added: list[float] = []
        for _ in range(args.events_runs):
            stream_id = direct.post("/api/agents/chat/Fake", json=chat_body("Hello")).json()[
                "streamId"
            ]
            arrivals: dict[str, list[float]] = {"proxy": [], "direct": []}
            readers = []
            for name, client, path in (
                ("proxy", proxied, f"/api/chat/agents/chat/stream/{stream_id}"),
                ("direct", direct, f"/api/agents/chat/stream/{stream_id}"),
            ):
                ready = threading.Event()
                thread = threading.Thread(
                    target=read_arrivals, args=(client, path, arrivals[name], ready)
                )
                thread.start()
                ready.wait(10)
                readers.append(thread)
            for thread in readers:
                thread.join(60)
            pairs = list(zip(arrivals["proxy"], arrivals["direct"], strict=False))
            if len(arrivals["proxy"]) != len(arrivals["direct"]) or not pairs:
                raise SystemExit(
                    f"event counts differ: {len(arrivals['proxy'])} vs {len(arrivals['direct'])}"
                )
            first_added.append((pairs[0][0] - pairs[0][1]) * 1000)
            per_event_added += [(p - d) * 1000 for p, d in pairs[1:]]
        print(
            f"SSE, {args.events_runs} generations   first event added p50 "
            f"{statistics.median(first_added):.2f} ms p95 {percentile(first_added, 95):.2f} ms | "
            f"per event added p50 {statistics.median(per_event_added):.2f} ms "
            f"p95 {percentile(per_event_added, 95):.2f} ms "
            f"({len(per_event_added)} events)",
            flush=True,
        )

        # 3. Memory of one worker holding many open streams.
        baseline = rss_mb(app.pid)
        stream_ids = [
            direct.post("/api/agents/chat/Fake", json=chat_body("SLOW stream")).json()["streamId"]
            for _ in range(args.streams)
        ]
        paths = [f"/api/chat/agents/chat/stream/{sid}" for sid in stream_ids]
        opened, held = asyncio.run(hold_streams(app_port, paths, token, 5.0, app.pid))
        print(
            f"{opened} concurrent streams open through one uvicorn worker: RSS {held:.0f} MB "
            f"(idle after the runs above: {baseline:.0f} MB)",
            flush=True,
        )
    finally:
        app.send_signal(signal.SIGINT)  # lets a profiler given in BENCH_APP_PREFIX write its file
        double.terminate()
        if debug_app is not None:
            debug_app.terminate()
            debug_app.wait(10)
        app.wait(10)
        double.wait(10)


if __name__ == "__main__":
    main()
