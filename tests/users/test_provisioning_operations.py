"""Operating provisioning: the periodic reconciliation task, the backfill command, the admin."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from tests.factories import make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from users.models import ProvisioningState, User
from users.tasks import reconcile_provisioning

pytestmark = pytest.mark.django_db(transaction=True)


def all_active(count: int) -> bool:
    return User.objects.filter(provisioning_state=ProvisioningState.ACTIVE).count() == count


def long_ago(settings: Any) -> Any:
    return timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_AFTER_S + 1)


def test_reconciliation_task_restarts_stuck_and_retryable_users(
    librechat: LibreChatDouble, workflows: str, settings: Any
) -> None:
    # Written by a data migration: never started, and no LibreChat password yet.
    migrated = make_legacy_user(email="migrated@example.com", librechat_password=False)
    # Its run was lost (never reached DBOS), long ago.
    stuck = make_legacy_user(
        email="stuck@example.com",
        provisioning_attempts=1,
        provisioning_updated_at=long_ago(settings),
    )
    failed = make_legacy_user(
        email="failed@example.com",
        provisioning_state=ProvisioningState.FAILED,
        provisioning_attempts=1,
    )
    exhausted = make_legacy_user(
        email="exhausted@example.com",
        provisioning_state=ProvisioningState.FAILED,
        provisioning_attempts=settings.PROVISIONING_MAX_RUNS,
    )
    permanent = make_legacy_user(
        email="permanent@example.com",
        provisioning_state=ProvisioningState.FAILED,
        provisioning_attempts=1,
        provisioning_permanent=True,
    )

    assert reconcile_provisioning.apply().get() == {
        "stuck_pending": 2,
        "failed_retried": 1,
        "given_up": 0,
        "orphans_resumed": 0,
        "deletions": 0,
    }
    wait_for(lambda: all_active(3), message="three active")
    states = dict(User.objects.values_list("email", "provisioning_state"))
    assert states[migrated.email] == states[stuck.email] == ProvisioningState.ACTIVE
    assert states[failed.email] == ProvisioningState.ACTIVE
    assert states[exhausted.email] == states[permanent.email] == ProvisioningState.FAILED
    assert User.objects.get(pk=migrated.pk).librechat_password_encrypted  # made by the workflow
    # Idempotent: nothing left to do.
    assert reconcile_provisioning.apply().get() == {
        "stuck_pending": 0,
        "failed_retried": 0,
        "given_up": 0,
        "orphans_resumed": 0,
        "deletions": 0,
    }
    assert librechat.state.accounts_created == 3


def test_a_pending_user_without_runs_left_ends_failed_instead_of_looping(
    librechat: LibreChatDouble, workflows: str, settings: Any
) -> None:
    """The old loop: a run ends in ERROR, the user stays pending, reconciliation starts another
    run every PROVISIONING_STUCK_AFTER_S for ever. Now pending users have PROVISIONING_MAX_RUNS
    too, and then an outcome an admin sees."""
    settings.PROVISIONING_MAX_RUNS = 2
    user = make_legacy_user(
        email="looping@example.com",
        provisioning_attempts=2,
        provisioning_updated_at=long_ago(settings),
        provisioning_error="Retrying: LibreChat is unreachable: ConnectError",
    )
    report = reconcile_provisioning.apply().get()
    assert (report["stuck_pending"], report["failed_retried"], report["given_up"]) == (0, 0, 1)
    user.refresh_from_db()
    assert user.provisioning_state == ProvisioningState.FAILED
    assert user.provisioning_permanent
    assert "ran 2 times without an outcome" in user.provisioning_error
    assert "Fix the cause, then re-provision." in user.provisioning_error
    assert librechat.state.register_calls == 0
    assert reconcile_provisioning.apply().get()["given_up"] == 0  # an outcome, not a loop


def test_backfill_command_dry_run_and_summary(librechat: LibreChatDouble, workflows: str) -> None:
    for n in range(3):
        make_legacy_user(email=f"old{n}@example.com")
    make_legacy_user(email="done@example.com", provisioning_state=ProvisioningState.ACTIVE)

    out = StringIO()
    call_command("provision_librechat_users", "--dry-run", stdout=out)
    assert "3 user(s) would be provisioned." in out.getvalue()
    assert librechat.state.register_calls == 0

    out, err = StringIO(), StringIO()
    call_command("provision_librechat_users", stdout=out, stderr=err)
    assert "Started provisioning for 3 user(s) (3 pending" in out.getvalue()
    assert "3/3" in err.getvalue()
    wait_for(lambda: all_active(4), message="backfilled users active")
    assert librechat.state.accounts_created == 3


def test_backfill_by_email_and_unknown_email(librechat: LibreChatDouble, workflows: str) -> None:
    conflict = make_legacy_user(
        email="conflict@example.com",
        provisioning_state=ProvisioningState.CONFLICT,
        provisioning_attempts=1,
        provisioning_permanent=True,
    )
    make_legacy_user(email="other@example.com")
    call_command("provision_librechat_users", "--email", "CONFLICT@example.com", stdout=StringIO())
    wait_for(
        lambda: User.objects.get(pk=conflict.pk).provisioning_state == ProvisioningState.ACTIVE,
        message="conflict resolved",
    )
    assert User.objects.get(email="other@example.com").provisioning_attempts == 0
    with pytest.raises(CommandError, match=r"nobody@example\.com"):
        call_command("provision_librechat_users", "--email", "nobody@example.com")


def test_admin_reprovision_action_and_workflow_status(
    client: Client, librechat: LibreChatDouble, workflows: str
) -> None:
    admin = User.objects.create_superuser(email="root@example.com", password="x", name="Root")
    librechat.state.add_user("clash@example.com", "not-ours-1234")
    user = make_legacy_user(email="clash@example.com")
    from users.provisioning import provisioning_start

    provisioning_start(user_id=user.pk)
    wait_for(
        lambda: User.objects.get(pk=user.pk).provisioning_state == ProvisioningState.CONFLICT,
        message="conflict",
    )
    client.force_login(admin)
    page = client.get(f"/admin/users/user/{user.pk}/change/")
    assert f"librechat-provision-{user.uuid}-run-1: SUCCESS".encode() in page.content
    listing = client.get("/admin/users/user/?provisioning_state__exact=conflict")
    assert b"clash@example.com" in listing.content

    # The admin fixes LibreChat (removes the stray account), then re-provisions.
    librechat.state.delete_user("clash@example.com")
    response = client.post(
        "/admin/users/user/",
        {"action": "reprovision", "_selected_action": [user.pk, admin.pk]},
        follow=True,
    )
    assert b"Provisioning started for" in response.content
    wait_for(
        lambda: User.objects.get(pk=user.pk).provisioning_state == ProvisioningState.ACTIVE,
        message="re-provisioned",
    )
    assert User.objects.get(pk=user.pk).provisioning_attempts == 2
