"""Crash recovery of a deletion: the process running it dies with SIGKILL midway, and the
restarted one finishes it, deleting the LibreChat account exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from core import dbos
from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.users.conftest import jwt_client, restart_until, sigkill, start_worker
from users.lifecycle import deletion_workflow_id
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def gone(user: User) -> bool:
    return not User.objects.filter(pk=user.pk).exists()


def librechat_step_recorded(user: User) -> bool:
    """DBOS has the LibreChat step's outcome: a recovery will not run it again."""
    steps = dbos.client().list_workflow_steps(deletion_workflow_id(user))
    return any(
        step["function_name"] == "users.deletion.librechat" and step["output"] for step in steps
    )


def request_deletion(api_client: APIClient, user: User) -> None:
    response = jwt_client(api_client, user).delete(
        "/api/users/me/", {"password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 202


def test_sigkill_while_librechat_fails_then_the_restart_finishes(
    api_client: APIClient, librechat: LibreChatDouble, worker_env: dict[str, str], tmp_path: Path
) -> None:
    ada = activate(make_legacy_user(email="ada@example.com", name="Ada"), librechat)
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env, log)
    librechat.set_mode("error500", path_prefix="/api/user/delete")
    request_deletion(api_client, ada)
    wait_for(
        lambda: len(librechat.state.requests_to("/api/user/delete")) >= 2,
        timeout=30,
        message="deletion attempts",
    )
    sigkill(worker)
    librechat.set_mode("ok")
    assert "500" in User.objects.get(pk=ada.pk).deletion_error

    restart_until(worker_env, log, lambda: gone(ada), "the recovered deletion to finish")
    assert librechat.state.get_user(ada.email) is None
    assert librechat.state.accounts_deleted == 1


def test_sigkill_after_librechat_deleted_the_account_does_not_delete_twice(
    api_client: APIClient, librechat: LibreChatDouble, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """Killed while our row's deletion waits for a lock we hold: the LibreChat step is recorded
    as done, so the restarted run goes straight on to our row."""
    ada = activate(make_legacy_user(email="ada@example.com", name="Ada"), librechat)
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env, log)
    request_deletion(api_client, ada)
    with transaction.atomic():
        # Holds the row (PostgreSQL) or the database's write lock (SQLite).
        User.objects.select_for_update().get(pk=ada.pk).save(update_fields=["name"])
        wait_for(
            lambda: librechat_step_recorded(ada), timeout=30, message="LibreChat's account deleted"
        )
        sigkill(worker)
    assert not gone(ada)  # our half had not happened

    restart_until(worker_env, log, lambda: gone(ada), "the recovered deletion to finish")
    assert librechat.state.accounts_deleted == 1
    assert len(librechat.state.requests_to("/api/user/delete")) == 1
    assert len(librechat.state.requests_to("/api/auth/login")) == 1  # not logged in again
