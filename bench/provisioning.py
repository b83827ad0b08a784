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
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure(tmp: Path) -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")
    os.environ.update(
        DEBUG="false",
        SECRET_KEY="bench-secret-key-0123456789-0123456789-0123456789",
        JWT_SIGNING_KEY="bench-jwt-key-0123456789-0123456789-0123456789",
        LIBRECHAT_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        VAR_DIR=str(tmp),
        LOG_LEVEL="WARNING",
        DBOS_QUEUE_POLLING_S=os.environ.get("DBOS_QUEUE_POLLING_S", "0.25"),
    )
    # Separate variables, so the bench never wipes a database meant for something else.
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}"
    )
    os.environ["DBOS_SYSTEM_DATABASE_URL"] = os.environ.get(
        "BENCH_DBOS_SYSTEM_DATABASE_URL", f"sqlite:///{tmp / 'dbos.sqlite3'}"
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    run = tmp.name.rsplit("-", 1)[-1]  # unique e-mails when DATABASE_URL is a kept database
    configure(tmp)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from hestami_ai import dbos
    from tests.librechat_double.config import DoubleConfig
    from tests.librechat_double.server import LibreChatDouble
    from users.models import ProvisioningState, User
    from users.services import user_create

    print(
        f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
        f"DBOS: {settings.DBOS_SYSTEM_DATABASE_URL.split(':', 1)[0]}, "
        f"queue polling {settings.DBOS_QUEUE_POLLING_S}s, workflow concurrency "
        f"{settings.PROVISIONING_CONCURRENCY}",
        flush=True,
    )
    call_command("migrate", verbosity=0)
    from dbos import DBOS

    DBOS.reset_system_database(system_database_url=settings.DBOS_SYSTEM_DATABASE_URL)
    double = LibreChatDouble(DoubleConfig()).start()
    settings.LIBRECHAT_API_URL = double.url
    dbos.launch("bench")

    def register(n: int, label: str) -> tuple[int, float]:
        user = user_create(
            email=f"{label}{n}-{run}@example.com",
            password="a-Strong-passw0rd!",
            name=f"Bench {n}",
            client_ip=f"10.{n // 250}.{n % 250}.{1 if label == 'seq' else 2}",
        )
        return user.pk, time.time()

    def wait_active(pks: list[int], timeout: float = 600) -> None:
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
            f"{name:<28} p50 {statistics.median(values) * 1000:7.0f} ms   "
            f"p95 {percentile(values, 95) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms   "
            f"throughput {len(values) / elapsed:6.1f} users/s",
            flush=True,
        )

    print(f"{args.users} sequential registrations...", flush=True)
    sequential: dict[int, float] = {}
    started = time.monotonic()
    for n in range(args.users):
        pk, at = register(n, "seq")
        sequential[pk] = at
        wait_active([pk])
    report("sequential", latencies(sequential), time.monotonic() - started)

    print(f"{args.users} concurrent registrations ({args.concurrency} at a time)...", flush=True)
    started = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        concurrent = dict(pool.map(lambda n: register(n, "con"), range(args.users)))
    wait_active(list(concurrent))
    report("concurrent", latencies(concurrent), time.monotonic() - started)

    created = double.state.accounts_created
    ids = set(
        User.objects.filter(pk__in=[*sequential, *concurrent]).values_list(
            "librechat_user_id", flat=True
        )
    )
    print(
        f"LibreChat accounts created: {created} for {2 * args.users} users; register calls "
        f"{double.state.register_calls}; distinct LibreChat ids {len(ids)}; "
        f"exactly once: {created == len(ids) == 2 * args.users}"
    )
    dbos.shutdown()
    double.stop()


if __name__ == "__main__":
    main()
