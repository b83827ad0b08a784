"""Crash recovery: the process running the workflow dies with SIGKILL between register and login."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from hestami_ai import dbos
from tests.conftest import dbos_test_url
from tests.factories import DEFAULT_PASSWORD
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from users.models import ProvisioningState, User

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    host, port = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432
    return f"postgres://{params.get('USER') or 'postgres'}@{host}:{port}/{params['NAME']}"


@pytest.fixture
def worker_env(
    librechat: LibreChatDouble, tmp_path: Path, settings: Any
) -> Iterator[dict[str, str]]:
    from dbos import DBOS

    url = dbos_test_url(tmp_path)
    DBOS.reset_system_database(system_database_url=url)
    settings.DBOS_SYSTEM_DATABASE_URL = url  # our side enqueues through DBOSClient
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESTAMI_")}
    env.update(
        DATABASE_URL=database_url(),
        DBOS_SYSTEM_DATABASE_URL=url,
        DBOS_EXECUTOR_ID="crash-test-worker",
        DBOS_QUEUE_POLLING_S="0.05",
        LIBRECHAT_API_URL=librechat.url,
        PROVISIONING_BACKOFF_BASE_S="0.3",
        PROVISIONING_BACKOFF_MAX_S="0.6",
        PROVISIONING_TRANSIENT_RETRIES="1000",
        DEBUG="false",
    )
    yield env
    dbos.shutdown()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_workflows"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for(
        lambda: b"Running workflows" in log.read_bytes(), timeout=30, message="the worker to start"
    )
    return process


def test_sigkill_between_register_and_login_resumes_after_restart(
    api_client: APIClient, librechat: LibreChatDouble, worker_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env, log)
    try:
        librechat.set_mode("error500", path_prefix="/api/auth/login")
        response = api_client.post(
            "/api/auth/register/",
            {"email": "crash@example.com", "password": DEFAULT_PASSWORD, "name": "Crash Test"},
            format="json",
        )
        assert response.status_code == 201
        # The register step is done and the login step is failing: kill the worker right there.
        wait_for(
            lambda: len(librechat.state.requests_to("/api/auth/login")) >= 2,
            timeout=30,
            message="login attempts",
        )
        assert librechat.state.accounts_created == 1
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        librechat.set_mode("ok")
        assert User.objects.get().provisioning_state == ProvisioningState.PENDING

        worker = start_worker(worker_env, log)
        wait_for(
            lambda: User.objects.get().provisioning_state == ProvisioningState.ACTIVE,
            timeout=30,
            message="the recovered workflow to finish",
        )
    finally:
        worker.terminate()
        worker.wait(10)
    assert librechat.state.accounts_created == 1
    assert len(librechat.state.requests_to("/api/auth/register")) == 1  # not repeated on recovery
    assert User.objects.get().provisioning_attempts == 1
