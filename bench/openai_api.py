"""/api/v1's overhead, measured side by side with LibreChat's remote agents API (the double) called
directly with the same agent key.

    .venv/bin/python bench/openai_api.py [--runs 500] [--requests 1000]

Everything runs on loopback: the LibreChat double in its own process, our app under uvicorn (one
worker, as deployed) in another, the clients here. Runs alternate between us and the double, so
both see the same machine. It prints:
  1. time to first chunk of a streamed completion (the role chunk, LibreChat's first `data:`
     event): p50/p99 through /api/v1/chat/completions and directly, and what we add;
  2. the whole non-streamed completion and GET /models the same way;
  3. for reference, in the same run: what the chat proxy adds to GET /api/chat/convos (its
     target is 1 ms; docs/chat-proxy.md), since this machine's noise moves both alike.
The per-user rate limits stay on (set high), so their cost is in the figures; BENCH_RATE=
(empty) turns them off to see what they cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.common import (  # noqa: E402
    bench_env,
    free_port,
    librechat_account,
    percentile,
    start_app,
    wait_http,
)

BODY = {"messages": [{"role": "user", "content": "Hello there"}]}


def first_chunk_ms(client: httpx.Client, path: str, model: str) -> float:
    """Send a streamed completion; milliseconds until the first `data:` event, then drain it."""
    started = time.perf_counter()
    first = None
    body = {**BODY, "model": model, "stream": True}
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        tail = b""
        for chunk in response.iter_raw():
            if first is None and b"data: " in chunk:
                first = time.perf_counter()
            tail = (tail + chunk)[-32:]
    assert tail.rstrip().endswith(b"data: [DONE]"), tail
    assert first is not None
    return (first - started) * 1000


def whole_ms(client: httpx.Client, method: str, path: str, body: object = None) -> float:
    started = time.perf_counter()
    response = client.request(method, path, json=body)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


def report(name: str, ours: list[float], direct: list[float], via: str = "/api/v1") -> float:
    """Print the line; answer the added p50."""
    print(
        f"{name:<34} direct p50 {statistics.median(direct):.2f} ms p99 "
        f"{percentile(direct, 99):.2f} ms | {via} p50 {statistics.median(ours):.2f} ms p99 "
        f"{percentile(ours, 99):.2f} ms | added p50 "
        f"{statistics.median(ours) - statistics.median(direct):.2f} ms, p99 "
        f"{percentile(ours, 99) - percentile(direct, 99):.2f} ms",
        flush=True,
    )
    return statistics.median(ours) - statistics.median(direct)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=500, help="streamed completions, each way")
    parser.add_argument("--requests", type=int, default=1000, help="other requests, each way")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-openai-"))
    double_port, app_port = free_port(), free_port()
    env = {
        **os.environ,
        **bench_env(tmp, librechat_url=f"http://127.0.0.1:{double_port}"),
        "THROTTLE_OPENAI_COMPLETIONS": os.environ.get("BENCH_RATE", "1000000/min"),
        "THROTTLE_OPENAI_MODELS": os.environ.get("BENCH_RATE", "1000000/min"),
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from users.agent_keys import agent_key_get
    from users.crypto import encrypt_secret, generate_librechat_password
    from users.models import ProvisioningState, User

    call_command("migrate", verbosity=0)
    double = subprocess.Popen(
        [sys.executable, "-m", "tests.librechat_double", "--port", str(double_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app = start_app(app_port, env, quiet=True)
    try:
        double_url = f"http://127.0.0.1:{double_port}"
        wait_http(f"{double_url}/health", double)
        wait_http(f"http://127.0.0.1:{app_port}/api/schema/", app)
        call_command("librechat_bootstrap", "--email", "operator@example.com")
        lc_password = generate_librechat_password()
        user = User.objects.create_user(
            email="bench@example.com",
            password="a-Strong-passw0rd!",
            name="Bench",
            librechat_password_encrypted=encrypt_secret(lc_password),
            provisioning_state=ProvisioningState.ACTIVE,
        )
        setup = httpx.Client(base_url=double_url, timeout=30)
        login = librechat_account(setup, user.email, lc_password)
        User.objects.filter(pk=user.pk).update(librechat_user_id=login["user"]["id"])
        # LibreChat set up as docs/openai-api.md asks, and one agent of the user's.
        setup.post("/__double__/roles", json={"role": "USER", "permission": "USE"})
        model = setup.post("/__double__/agents", json={"author_email": user.email}).json()["id"]

        ours = httpx.Client(
            base_url=f"http://127.0.0.1:{app_port}/api/v1",
            headers={"Authorization": f"Bearer {AccessToken.for_user(user)}"},
            timeout=30,
        )
        assert whole_ms(ours, "GET", "/models") > 0  # creates the user's agent key
        key = agent_key_get(user_id=user.pk)
        assert key is not None
        direct = httpx.Client(
            base_url=f"{double_url}/api/agents/v1",
            headers={"Authorization": f"Bearer {key.key}", "Accept-Encoding": "identity"},
            timeout=30,
        )
        sides = {"ours": ours, "direct": direct}

        # 1. Time to first chunk, interleaved (after a warm-up).
        first: dict[str, list[float]] = {"ours": [], "direct": []}
        for n in range(args.runs + 50):
            for name, client in sides.items():
                elapsed = first_chunk_ms(client, "/chat/completions", model)
                if n >= 50:
                    first[name].append(elapsed)
        first_added = report(
            f"stream: first chunk, {args.runs} each", first["ours"], first["direct"]
        )

        # 2. Whole answers.
        for label, method, path, body in (
            ("completion (not streamed)", "POST", "/chat/completions", {**BODY, "model": model}),
            ("GET /models", "GET", "/models", None),
        ):
            times: dict[str, list[float]] = {"ours": [], "direct": []}
            for n in range(args.requests + 50):
                for name, client in sides.items():
                    elapsed = whole_ms(client, method, path, body)
                    if n >= 50:
                        times[name].append(elapsed)
            report(f"{label}, {args.requests} each", times["ours"], times["direct"])

        # 3. The chat proxy, as a yardstick measured on the same machine in the same minute.
        proxy = httpx.Client(
            base_url=f"http://127.0.0.1:{app_port}/api/chat", headers=ours.headers, timeout=30
        )
        convos = httpx.Client(
            base_url=double_url,
            headers={"Authorization": f"Bearer {login['token']}"},
            timeout=30,
        )
        reference: dict[str, list[float]] = {"ours": [], "direct": []}
        for n in range(args.requests + 50):
            for name, client in (("ours", proxy), ("direct", convos)):
                elapsed = whole_ms(client, "GET", "/convos")
                if n >= 50:
                    reference[name].append(elapsed)
        proxy_added = report(
            "(chat proxy, GET convos)", reference["ours"], reference["direct"], via="proxy"
        )
        print(
            f"first chunk added / chat proxy added (same run): {first_added / proxy_added:.2f}",
            flush=True,
        )
    finally:
        app.terminate()
        double.terminate()
        app.wait(10)
        double.wait(10)


if __name__ == "__main__":
    main()
