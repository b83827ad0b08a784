"""The provisioning workflow end to end: our API -> DBOS -> the LibreChat double over real HTTP."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD
from tests.helpers import find_in_database, wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.users.conftest import register
from users.models import ProvisioningState, User
from users.provisioning import provisioning_reconcile, provisioning_start
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db(transaction=True)


def state_of(email: str) -> str:
    return User.objects.get(email=email).provisioning_state


def wait_until_settled(email: str, timeout: float = 15.0) -> User:
    wait_for(
        lambda: state_of(email) != ProvisioningState.PENDING,
        timeout=timeout,
        message=f"{email} settled",
    )
    return User.objects.get(email=email)


def test_registration_provisions_an_active_librechat_account(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    started = time.monotonic()
    register(api_client, "alice@example.com")
    user = wait_until_settled("alice@example.com")
    assert time.monotonic() - started < 5
    assert user.provisioning_state == ProvisioningState.ACTIVE
    account = librechat.state.get_user("alice@example.com")
    assert account is not None
    assert user.librechat_user_id == account.id
    assert user.librechat_synced_at is not None
    assert account.password == librechat_password_decrypt(user)
    # The end user's IP went to LibreChat, with a browser User-Agent.
    [call] = librechat.state.requests_to("/api/auth/register")
    assert call.header("x-forwarded-for") == "198.51.100.7"
    assert "Chrome/" in (call.header("user-agent") or "")


def test_registration_returns_at_once_while_librechat_is_down(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.set_mode("down")
    started = time.monotonic()
    register(api_client, "early@example.com")
    assert time.monotonic() - started < 1.0
    assert state_of("early@example.com") == ProvisioningState.PENDING
    time.sleep(1.0)
    user = User.objects.get(email="early@example.com")
    assert user.provisioning_state == ProvisioningState.PENDING
    assert "unreachable" in user.provisioning_error
    librechat.set_mode("ok")
    assert wait_until_settled("early@example.com").provisioning_state == ProvisioningState.ACTIVE


def test_librechat_down_for_30_seconds_then_back(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, settings: Any
) -> None:
    settings.PROVISIONING_BACKOFF_MAX_S = 8.0
    librechat.set_mode("down", duration_s=30)
    register(api_client, "patient@example.com")
    user = wait_until_settled("patient@example.com", timeout=60)
    assert user.provisioning_state == ProvisioningState.ACTIVE
    assert librechat.state.accounts_created == 1


def test_existing_librechat_account_with_another_password_is_a_conflict(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.state.add_user("taken@example.com", "somebody-elses-password")
    register(api_client, "taken@example.com")
    user = wait_until_settled("taken@example.com")
    assert user.provisioning_state == ProvisioningState.CONFLICT
    assert "Remove that account in LibreChat" in user.provisioning_error
    assert user.provisioning_permanent
    assert librechat.state.accounts_created == 0  # seeded directly, not through registration
    # Reconciliation leaves conflicts to an admin.
    assert provisioning_reconcile().failed_retried == 0


def test_an_end_user_librechat_makes_its_admin_is_not_activated(
    api_client: APIClient, fresh_librechat: LibreChatDouble, workflows: str
) -> None:
    """No operator admin yet: LibreChat makes the first account it registers ADMIN."""
    register(api_client, "first@example.com")
    user = wait_until_settled("first@example.com")
    account = fresh_librechat.state.get_user("first@example.com")
    assert account is not None
    assert account.role == "ADMIN"
    assert user.provisioning_state == ProvisioningState.CONFLICT
    assert user.provisioning_permanent
    assert user.librechat_synced_at is None
    # Why, and what to do: the operator admin first, the user's admin page, the doctor.
    for said in ("LibreChat made this account its ADMIN", "librechat_bootstrap", "Re-provision"):
        assert said in user.provisioning_error
    assert "librechat_doctor" in user.provisioning_error
    assert provisioning_reconcile().failed_retried == 0


def test_invalid_input_fails_permanently_with_librechats_message(
    librechat: LibreChatDouble, workflows: str
) -> None:
    # Django accepts addresses at `localhost`; LibreChat's zod e-mail check does not.
    admin = User.objects.create_superuser(email="admin@localhost", password="x", name="Admin")
    provisioning_start(user_id=admin.pk)
    user = wait_until_settled("admin@localhost")
    assert user.provisioning_state == ProvisioningState.FAILED
    assert user.provisioning_permanent
    assert "(404): email: Invalid email" in user.provisioning_error


def test_registration_disabled_fails_with_the_403_message(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.config.update(allow_registration=False)
    register(api_client, "closed@example.com")
    user = wait_until_settled("closed@example.com")
    assert user.provisioning_state == ProvisioningState.FAILED
    assert "(403): Registration is not allowed." in user.provisioning_error


def test_email_login_switched_off_fails_on_0_8_8_with_the_fix(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, librechat_version: str
) -> None:
    librechat.config.update(allow_email_login=False)
    register(api_client, "nologin@example.com")
    user = wait_until_settled("nologin@example.com")
    if librechat_version == "0.8.7":  # only LibreChat's own form is hidden
        assert user.provisioning_state == ProvisioningState.ACTIVE
        return
    assert user.provisioning_state == ProvisioningState.FAILED
    assert "(403): Email login is not allowed." in user.provisioning_error
    assert "ALLOW_EMAIL_LOGIN_OVERRIDE=true" in user.provisioning_error


def test_429_retry_after_is_honoured(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.set_mode("ratelimit429", path_prefix="/api/auth/register", retry_after_s=2)
    register(api_client, "limited@example.com")
    wait_for(lambda: "Retrying" in User.objects.get().provisioning_error, message="a 429 seen")
    limited_at = time.monotonic()
    time.sleep(0.5)
    librechat.set_mode("ok")
    user = wait_until_settled("limited@example.com")
    assert user.provisioning_state == ProvisioningState.ACTIVE
    assert time.monotonic() - limited_at >= 1.5  # waited for Retry-After, not the 0.2 s back-off


def test_500s_are_retried_with_growing_backoff(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.set_mode("error500", path_prefix="/api/auth/login")
    register(api_client, "flaky@example.com")
    wait_for(
        lambda: len(librechat.state.requests_to("/api/auth/login")) >= 4, message="4 login tries"
    )
    librechat.set_mode("ok")
    assert wait_until_settled("flaky@example.com").provisioning_state == ProvisioningState.ACTIVE
    times = [r.at for r in librechat.state.requests_to("/api/auth/login")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[1] > gaps[0] * 1.5  # exponential, not a fixed interval
    assert len(librechat.state.requests_to("/api/auth/register")) == 1  # register was not redone


def test_transient_failures_give_up_then_reconciliation_restarts(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, settings: Any
) -> None:
    settings.PROVISIONING_TRANSIENT_RETRIES = 2
    librechat.set_mode("error500")
    register(api_client, "unlucky@example.com")
    user = wait_until_settled("unlucky@example.com")
    assert user.provisioning_state == ProvisioningState.FAILED
    assert not user.provisioning_permanent
    assert "still failing after 3 attempts" in user.provisioning_error
    librechat.set_mode("ok")
    report = provisioning_reconcile()
    assert report.failed_retried == 1
    wait_for(lambda: state_of("unlucky@example.com") == ProvisioningState.ACTIVE, message="active")
    assert User.objects.get().provisioning_attempts == 2


def test_concurrent_starts_make_one_account(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.set_mode("slow", seconds=0.3)
    register(api_client, "twice@example.com")
    user_id = User.objects.get().pk
    threads = [
        threading.Thread(target=provisioning_start, kwargs={"user_id": user_id, "new_run": new_run})
        for new_run in (False, True, False, True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provisioning_reconcile()
    assert wait_until_settled("twice@example.com").provisioning_state == ProvisioningState.ACTIVE
    librechat.set_mode("ok")
    assert librechat.state.accounts_created == 1
    assert len(librechat.state.requests_to("/api/auth/register")) == 1
    assert User.objects.get().provisioning_attempts == 1


def test_burst_from_50_ips_is_never_rate_limited(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    for n in range(50):
        register(api_client, f"burst{n}@example.com", ip=f"203.0.113.{n + 1}")
    wait_for(
        lambda: User.objects.filter(provisioning_state=ProvisioningState.ACTIVE).count() == 50,
        timeout=30,
        message="50 active users",
    )
    assert librechat.state.accounts_created == 50
    statuses = {r.status for r in librechat.state.requests}
    assert 429 not in statuses


def test_ten_from_one_ip_wait_out_librechats_window(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    librechat.config.update(register_window_s=4, login_max=100)
    for n in range(10):
        register(api_client, f"office{n}@example.com", ip="192.0.2.10")
    time.sleep(1.5)
    first = User.objects.filter(provisioning_state=ProvisioningState.ACTIVE).count()
    assert first == 5  # LibreChat's REGISTER_MAX per IP
    wait_for(
        lambda: User.objects.filter(provisioning_state=ProvisioningState.ACTIVE).count() == 10,
        timeout=30,
        message="all 10 active",
    )
    assert librechat.state.accounts_created == 10


def test_no_password_in_logs_or_the_dbos_database(
    api_client: APIClient,
    librechat: LibreChatDouble,
    workflows: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    librechat.state.add_user("clash@example.com", "other-password-123")
    librechat.set_mode("error500", path_prefix="/api/auth/login")
    for email in ("one@example.com", "two@example.com", "clash@example.com"):
        register(api_client, email)
    time.sleep(1.0)
    librechat.set_mode("ok")
    for email in ("one@example.com", "two@example.com", "clash@example.com"):
        wait_until_settled(email)
    secrets = [librechat_password_decrypt(u) for u in User.objects.all()] + [DEFAULT_PASSWORD]
    assert len(secrets) == 4
    assert all(secret not in caplog.text for secret in secrets)
    assert find_in_database(workflows, secrets) == []
    # Control: the scan does see what DBOS really stores.
    assert find_in_database(workflows, ["users.provision_librechat_account"]) != []


def test_a_password_no_key_can_decrypt_fails_permanently(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, settings: Any
) -> None:
    from cryptography.fernet import Fernet

    register(api_client, "early@example.com")
    wait_until_settled("early@example.com")
    # The key that encrypted this password was dropped from LIBRECHAT_ENCRYPTION_KEY too early.
    settings.LIBRECHAT_ENCRYPTION_KEY = Fernet.generate_key().decode()
    user = User.objects.get()
    User.objects.filter(pk=user.pk).update(provisioning_state=ProvisioningState.FAILED)
    provisioning_start(user_id=user.pk, new_run=True)
    user = wait_until_settled("early@example.com")
    assert user.provisioning_state == ProvisioningState.FAILED
    assert user.provisioning_permanent
    assert "cannot be decrypted" in user.provisioning_error


def test_a_step_that_keeps_failing_ends_the_run_failed_with_a_message(
    api_client: APIClient,
    librechat: LibreChatDouble,
    workflows: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our own database failing inside a step, past the step's retries: the run still ends
    with an outcome on the user (before, it ended in ERROR and the user stayed `pending`)."""
    from django.db import OperationalError

    from users import workflows as provisioning_workflows

    def locked(**_: object) -> bool:
        raise OperationalError("database is locked")

    monkeypatch.setattr(provisioning_workflows, "librechat_password_ensure", locked)
    register(api_client, "unlucky@example.com")
    user = wait_until_settled("unlucky@example.com", timeout=30)
    assert user.provisioning_state == ProvisioningState.FAILED
    assert not user.provisioning_permanent  # reconciliation may try again
    assert user.provisioning_error.startswith("Provisioning step failed:")
    assert "database is locked" in user.provisioning_error
    assert librechat.state.register_calls == 0
