"""Executor ids are unique per replica and stable across its restarts; the pending work of an
executor that never comes back (a re-created container: a new host name) is handed over."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core import dbos
from core.models import WorkflowExecutor
from tests.helpers import manage, wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.users.conftest import register, restart_until, sigkill, start_worker
from users.models import ProvisioningState, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_default_executor_id_is_the_host_and_the_role(settings: Any) -> None:
    settings.DBOS_EXECUTOR_ID = ""
    assert dbos.executor_id("web") == f"{socket.gethostname()}-web"
    assert dbos.executor_id("worker") == f"{socket.gethostname()}-worker"


def test_a_second_process_with_the_same_id_on_one_host_refuses_to_start(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    first = start_worker(worker_env, tmp_path / "first.log")
    try:
        second = manage(worker_env, "run_workflows", timeout=60)
        assert second.returncode != 0
        assert "Another process on this host runs DBOS workflows as executor" in second.stderr
        assert "'crash-test-worker'" in second.stderr
        assert first.poll() is None  # the first one is unaffected
        assert WorkflowExecutor.objects.filter(executor_id="crash-test-worker").exists()
    finally:
        first.terminate()
        first.wait(10)


def test_the_work_of_an_executor_that_never_returns_is_handed_over(
    api_client: APIClient, librechat: LibreChatDouble, worker_env: dict[str, str], tmp_path: Path
) -> None:
    gone = {**worker_env, "DBOS_EXECUTOR_ID": "replica-recreated-away"}
    log = tmp_path / "worker.log"
    worker = start_worker(gone, log)
    librechat.set_mode("error500", path_prefix="/api/auth/login")
    register(api_client, "orphan@example.com")
    wait_for(lambda: len(librechat.state.requests_to("/api/auth/login")) >= 2, timeout=30)
    sigkill(worker)  # and it never comes back under that id
    librechat.set_mode("ok")
    assert dbos.recover_orphaned_workflows(dead_after_s=60) == []  # not silent long enough yet

    time.sleep(1.5)
    [orphan] = dbos.recover_orphaned_workflows(dead_after_s=1)
    assert orphan.startswith("librechat-provision-")
    # Another replica, under its own id, picks it up from the queue and finishes it.
    restart_until(
        {**worker_env, "DBOS_EXECUTOR_ID": "replica-alive"},
        log,
        lambda: User.objects.get().provisioning_state == ProvisioningState.ACTIVE,
        "the handed-over workflow to finish",
    )
    assert librechat.state.accounts_created == 1
    assert len(librechat.state.requests_to("/api/auth/register")) == 1  # resumed, not restarted
