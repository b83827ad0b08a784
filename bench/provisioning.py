"""Registration -> `active` latency and throughput against the LibreChat double.

    .venv/bin/python bench/provisioning.py [--users 200] [--concurrency 32]

Runs everything real in one process tree: Django (SQLite in a temp dir, or BENCH_DATABASE_URL),
DBOS launched here (its own SQLite, or BENCH_DBOS_SYSTEM_DATABASE_URL, which is wiped), and the
LibreChat double over HTTP on loopback with LibreChat's default limits. Each user registers from
its own IP, as real users do. Latency is measured from the moment registration returns (the
workflow is queued after commit) to the `librechat_synced_at` the workflow writes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root holds bench/

from bench.common import bench_env, free_port, percentile  # noqa: E402


def configure(tmp: Path) -> None:
    os.environ.update(bench_env(tmp))
    os.environ["DBOS_QUEUE_POLLING_S"] = os.environ.get("DBOS_QUEUE_POLLING_S", "0.25")
    os.environ["DBOS_SYSTEM_DATABASE_URL"] = os.environ.get(
        "BENCH_DBOS_SYSTEM_DATABASE_URL", f"sqlite:///{tmp / 'dbos.sqlite3'}"
    )


def start_double(port: int) -> subprocess.Popen[bytes]:
    """LibreChat's double in its own process, as LibreChat would be, with its default limits."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.librechat_double", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the LibreChat double did not start")


def _double_counters(base_url: str) -> dict[str, int]:
    state = httpx.get(f"{base_url}/__double__/state", timeout=10).json()
    return dict(state["counters"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--scenarios", default="ABC", help="which of A, B, C to run")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    run = tmp.name.rsplit("-", 1)[-1]  # unique e-mails when BENCH_DATABASE_URL is a kept database
    configure(tmp)
    import django

    django.setup()
    from dbos import DBOS
    from django.conf import settings
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import close_old_connections

    from core import dbos
    from users.crypto import new_encrypted_librechat_password
    from users.models import ProvisioningState, User
    from users.provisioning import provisioning_start
    from users.services import user_create

    call_command("migrate", verbosity=0)
    DBOS.reset_system_database(system_database_url=settings.DBOS_SYSTEM_DATABASE_URL)
    port = free_port()
    double = start_double(port)
    settings.LIBRECHAT_API_URL = f"http://127.0.0.1:{port}"
    # As in production: the operator's LibreChat admin first, so every user provisioned is a USER.
    # (--repair: a kept BENCH_DATABASE_URL already has it, but this double is new.)
    call_command("librechat_bootstrap", "--email", "operator@example.com", "--repair")
    # The operator's account is not a user's: only what provisioning creates is counted below.
    before_users = _double_counters(settings.LIBRECHAT_API_URL)
    dbos.launch("bench")
    print(
        f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, DBOS "
        f"{settings.DBOS_SYSTEM_DATABASE_URL.split(':', 1)[0]}, queue polling "
        f"{settings.DBOS_QUEUE_POLLING_S}s, workflows at once {settings.PROVISIONING_CONCURRENCY}, "
        f"LibreChat double in its own process; {os.cpu_count()} cores",
        flush=True,
    )

    def ip(n: int, scenario: int) -> str:
        return f"10.{scenario}.{n // 250}.{n % 250 + 1}"

    register_seconds: list[float] = []

    def register(n: int, scenario: int) -> tuple[int, float]:
        started = time.time()
        user = user_create(
            email=f"s{scenario}-{n}-{run}@example.com",
            password="a-Strong-passw0rd!",
            name=f"Bench {n}",
            client_ip=ip(n, scenario),
        )
        returned = time.time()
        close_old_connections()
        register_seconds.append(returned - started)
        return user.pk, returned

    def start(pk: int) -> float:
        provisioning_start(user_id=pk)
        close_old_connections()  # a bench thread is no request: hand the connection back
        return time.time()

    def wait_active(pks: list[int], timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while User.objects.filter(
            pk__in=pks, provisioning_state=ProvisioningState.ACTIVE
        ).count() < len(pks):
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for users to become active")
            time.sleep(0.005)

    def latencies(returned: dict[int, float]) -> list[float]:
        synced: dict[int, datetime | None] = dict(
            User.objects.filter(pk__in=returned).values_list("pk", "librechat_synced_at")
        )
        return [synced[pk].timestamp() - at for pk, at in returned.items()]  # type: ignore[union-attr]

    def report(name: str, values: list[float], elapsed: float) -> None:
        print(
            f"{name:<44} p50 {statistics.median(values) * 1000:6.0f} ms  "
            f"p95 {percentile(values, 95) * 1000:6.0f} ms  max {max(values) * 1000:6.0f} ms  "
            f"{len(values) / elapsed:5.1f} users/s",
            flush=True,
        )

    everyone: list[int] = []
    if "A" in args.scenarios:  # one registration at a time, each waited for
        sequential: dict[int, float] = {}
        started = time.monotonic()
        for n in range(args.users):
            pk, at = register(n, 1)
            sequential[pk] = at
            wait_active([pk])
        report(
            f"A {args.users} sequential registrations",
            latencies(sequential),
            time.monotonic() - started,
        )
        print(
            f"  (the registration call itself, password hashing included: p50 "
            f"{statistics.median(register_seconds) * 1000:.0f} ms)",
            flush=True,
        )
        everyone += sequential

    if "B" in args.scenarios:  # many clients at once; their password hashing takes CPU too
        register_seconds.clear()
        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            concurrent = dict(pool.map(lambda n: register(n, 2), range(args.users)))
        wait_active(list(concurrent))
        report(
            f"B {args.users} concurrent registrations ({args.concurrency} clients)",
            latencies(concurrent),
            time.monotonic() - started,
        )
        print(
            f"  (registration calls under that load: p50 "
            f"{statistics.median(register_seconds) * 1000:.0f} ms; {args.users} PBKDF2 hashes "
            f"on {os.cpu_count()} cores bound the rate)",
            flush=True,
        )
        everyone += concurrent

    if "C" in args.scenarios:
        # The workflows alone: users registered earlier (say, while LibreChat was down), all
        # started at once.
        hashed = make_password("a-Strong-passw0rd!")
        burst_users = User.objects.bulk_create(
            User(
                email=f"s3-{n}-{run}@example.com",
                name=f"Bench {n}",
                password=hashed,
                registration_ip=ip(n, 3),
                librechat_password_encrypted=new_encrypted_librechat_password(),
            )
            for n in range(args.users)
        )
        pks = [
            u.pk
            for u in User.objects.filter(
                email__startswith="s3-", email__endswith=f"-{run}@example.com"
            )
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            burst = dict(pool.map(lambda pk: (pk, start(pk)), pks))
        wait_active(pks)
        report(
            f"C {len(burst_users)} provisioning runs started at once",
            latencies(burst),
            time.monotonic() - started,
        )
        everyone += pks

    counters = _double_counters(settings.LIBRECHAT_API_URL)
    ids = set(User.objects.filter(pk__in=everyone).values_list("librechat_user_id", flat=True))
    created = counters.get("accounts_created", 0) - before_users.get("accounts_created", 0)
    register_calls = counters.get("register_calls", 0) - before_users.get("register_calls", 0)
    print(
        f"LibreChat accounts created {created} for {len(everyone)} users, register calls "
        f"{register_calls}, distinct LibreChat ids {len(ids)}: exactly once "
        f"{'yes' if created == len(ids) == len(everyone) else 'NO'}"
    )
    dbos.shutdown()
    double.terminate()
    double.wait(10)


if __name__ == "__main__":
    main()
