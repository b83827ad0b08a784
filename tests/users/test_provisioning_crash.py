"""Crash recovery: the process running the workflow dies with SIGKILL between register and login."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.users.conftest import register, restart_until, sigkill, start_worker
from users.models import ProvisioningState, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_sigkill_between_register_and_login_resumes_after_restart(
    api_client: APIClient, librechat: LibreChatDouble, worker_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env, log)
    librechat.set_mode("error500", path_prefix="/api/auth/login")
    register(api_client, "crash@example.com")
    # The register step is done and the login step is failing: kill the worker right there.
    wait_for(
        lambda: len(librechat.state.requests_to("/api/auth/login")) >= 2,
        timeout=30,
        message="login attempts",
    )
    assert librechat.state.accounts_created == 1
    sigkill(worker)
    librechat.set_mode("ok")
    assert User.objects.get().provisioning_state == ProvisioningState.PENDING

    restart_until(
        worker_env,
        log,
        lambda: User.objects.get().provisioning_state == ProvisioningState.ACTIVE,
        "the recovered workflow to finish",
    )
    assert librechat.state.accounts_created == 1
    assert len(librechat.state.requests_to("/api/auth/register")) == 1  # not repeated on recovery
    assert User.objects.get().provisioning_attempts == 1
