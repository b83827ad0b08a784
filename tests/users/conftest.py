from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from core import dbos
from tests.conftest import dbos_test_url
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.helpers import ROOT, child_env, wait_for
from tests.librechat_double.server import LibreChatDouble
from users.models import User


@pytest.fixture
def owner(db: None) -> User:
    return make_user(email="owner@example.com", name="Owner")


@pytest.fixture
def outsider(db: None) -> User:
    return make_user(email="outsider@example.com", name="Outsider")


def register(client: APIClient, email: str, ip: str = "198.51.100.7") -> Any:
    """Sign up through the API (provisioning starts after commit)."""
    response = client.post(
        "/api/auth/register/",
        {"email": email, "password": DEFAULT_PASSWORD, "name": "Some Person"},
        format="json",
        REMOTE_ADDR=ip,
    )
    assert response.status_code == 201, response.content
    return response


def jwt_client(client: APIClient, user: User) -> APIClient:
    from rest_framework_simplejwt.tokens import RefreshToken

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


RATES: dict[str, str | None] = {
    "login_ip": "3/min",
    "login_account": "2/min",
    "register_ip": "2/min",
    "register_account": "5/min",
    "librechat_password": "3/min",
}


@pytest.fixture
def low_rates():
    """Small throttle rates, so a test reaches the limits in a few requests."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = RATES
    yield
    SimpleRateThrottle.THROTTLE_RATES = original
    api_settings.reload()


# -- a `manage.py run_workflows` worker in a subprocess (crash tests) ----------------------------


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
    env = child_env(
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


def sigkill(worker: subprocess.Popen[bytes]) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)


def restart_until(env: dict[str, str], log: Path, done: Callable[[], object], message: str) -> None:
    """Start a worker again (it recovers its executor's pending workflows), wait until the
    recovered work is done, stop it."""
    worker = start_worker(env, log)
    try:
        wait_for(done, timeout=30, message=message)
    finally:
        worker.terminate()
        worker.wait(10)
