"""Workflow ids cannot collide across app databases: run the stack twice, with two fresh app
databases and one DBOS system database. Each run's first user is user 1; before workflow ids
carried the user's uuid, the second run's user 1 found run 1 of the first run's user 1 already
finished in DBOS, LibreChat was never called, and the user stayed `pending` for ever."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.helpers import child_env, manage, wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.users.conftest import start_worker

pytestmark = pytest.mark.django_db(transaction=True)


def stack_env(app_db: Path, dbos_url: str, librechat: LibreChatDouble) -> dict[str, str]:
    return child_env(
        DATABASE_URL=f"sqlite:///{app_db}",
        DBOS_SYSTEM_DATABASE_URL=dbos_url,
        DBOS_EXECUTOR_ID=f"identity-test-{app_db.stem}",
        DBOS_QUEUE_POLLING_S="0.05",
        LIBRECHAT_API_URL=librechat.url,
        DEBUG="false",
    )


def managed(env: dict[str, str], *args: str) -> str:
    done = manage(env, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def first_user(app_db: Path) -> tuple[int, str, str]:
    with sqlite3.connect(app_db) as db:
        row = db.execute(
            "SELECT id, provisioning_state, librechat_user_id FROM users_user ORDER BY id"
        ).fetchone()
    return (int(row[0]), str(row[1]), str(row[2])) if row else (0, "", "")


def run_stack(
    app_db: Path, dbos_url: str, librechat: LibreChatDouble, email: str, log: Path
) -> tuple[int, str, str]:
    """migrate a fresh app database, start a workflow executor, register one user."""
    env = stack_env(app_db, dbos_url, librechat)
    managed(env, "migrate", "--noinput", "-v", "0")
    worker = start_worker(env, log)
    try:
        managed(
            env,
            "shell",
            "-c",
            "from users.services import user_create; "
            f"user_create(email='{email}', password='{DEFAULT_PASSWORD}', name='First User')",
        )
        wait_for(lambda: first_user(app_db)[1] == "active", timeout=30, message=f"{email} active")
        return first_user(app_db)
    finally:
        worker.terminate()
        worker.wait(10)


def test_a_second_app_database_does_not_meet_the_first_ones_workflows(
    librechat: LibreChatDouble, tmp_path: Path
) -> None:
    dbos_url = f"sqlite:///{tmp_path / 'kept-dbos.sqlite3'}"  # kept across both runs
    first = run_stack(
        tmp_path / "app-1.sqlite3", dbos_url, librechat, "first@example.com", tmp_path / "1.log"
    )
    second = run_stack(
        tmp_path / "app-2.sqlite3", dbos_url, librechat, "second@example.com", tmp_path / "2.log"
    )
    assert first[0] == second[0] == 1  # the same primary key in both databases
    assert second[1] == "active"
    assert second[2]
    assert second[2] != first[2]  # a new LibreChat account, not the first's
    account = librechat.state.get_user("second@example.com")
    assert account is not None
    assert account.id == second[2]
    assert librechat.state.accounts_created == 2


def test_the_default_dbos_database_sits_next_to_the_app_database(tmp_path: Path) -> None:
    """The settings' comment and behaviour agree: a SQLite app database gets a DBOS file beside
    it, named after it, so a second app database never shares the first one's workflows."""
    code = "from django.conf import settings; print(settings.DBOS_SYSTEM_DATABASE_URL)"
    env = {k: v for k, v in child_env().items() if not k.startswith("DBOS_")}
    urls = {}
    for url in (f"sqlite:///{tmp_path / 'one.sqlite3'}", "postgres://u:p@db.internal:5432/app"):
        env["DATABASE_URL"] = url
        urls[url] = managed(env, "shell", "-c", code).strip().splitlines()[-1]
    assert urls[f"sqlite:///{tmp_path / 'one.sqlite3'}"] == (
        f"sqlite:///{tmp_path / 'one.dbos.sqlite3'}"
    )
    assert (
        urls["postgres://u:p@db.internal:5432/app"] == "postgresql://u:p@db.internal:5432/app_dbos"
    )
