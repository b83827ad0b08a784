"""A fresh PostgreSQL without the app database: `migrate` creates it; everything else stops at
once naming the fix, instead of psycopg_pool's 30 s "couldn't get a connection"."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.helpers import child_env, manage, run_python

SERVER = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"


def postgres_available() -> bool:
    try:
        psycopg.connect(f"{SERVER} dbname=postgres").close()
    except psycopg.OperationalError:
        return False
    return True


# The SQLite-only set-up (`make test` on a laptop) has no server to create a database on.
needs_postgres = pytest.mark.skipif(
    not postgres_available(), reason="needs a PostgreSQL server at 127.0.0.1:5432 (as in CI)"
)


def exists(name: str) -> bool:
    with psycopg.connect(f"{SERVER} dbname=postgres") as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            is not None
        )


@pytest.fixture
def missing_database() -> Iterator[str]:
    """A throwaway name (this worktree's prefix) that does not exist, dropped afterwards."""
    name = f"hestami_wt13_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as conn:
        for database in (name, f"{name}_dbos"):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def env_for(name: str) -> dict[str, str]:
    return child_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}", DEBUG="false")


@needs_postgres
def test_migrate_creates_the_missing_database(missing_database: str) -> None:
    assert not exists(missing_database)
    started = time.monotonic()
    result = manage(env_for(missing_database), "migrate", "--noinput")
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started < 60
    assert exists(missing_database)
    assert "Created the database for 'default'." in result.stdout
    # The second time it is there: nothing to create.
    again = manage(env_for(missing_database), "migrate", "--noinput")
    assert again.returncode == 0
    assert "Created the database" not in again.stdout


@needs_postgres
def test_the_web_server_and_the_worker_stop_at_once_with_the_reason(
    missing_database: str,
) -> None:
    env = env_for(missing_database)
    started = time.monotonic()
    web = run_python(env, "-c", "import hestami_ai.asgi", timeout=60)
    worker = manage(env, "run_workflows", timeout=60)
    assert time.monotonic() - started < 20  # not psycopg_pool's 30 s each
    for result in (web, worker):
        assert result.returncode != 0
        assert f"The app database {missing_database} does not exist" in result.stderr
        assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {missing_database}" in result.stderr
        assert "couldn't get a connection" not in result.stderr
    assert not exists(missing_database)


def test_an_unreachable_server_is_named_at_once() -> None:
    name = "hestami_wt13_unreachable"
    env = child_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:9/{name}")
    started = time.monotonic()
    result = manage(env, "migrate", "--noinput", timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode != 0
    assert f"Cannot connect to the app database {name} at postgres@127.0.0.1:9" in result.stderr
