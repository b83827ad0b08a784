"""Provisioning services: start runs of the LibreChat workflow, write their outcome, reconcile.

A user's runs have ids ``librechat-provision-user-<pk>-run-<n>``; starting the current run again
is a no-op (DBOS keeps one workflow per id), so double submits, reconciliation and admin actions
racing each other still give one run at a time, and LibreChat one account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hestami_ai import dbos
from users.models import ProvisioningState, User

logger = logging.getLogger(__name__)

WORKFLOW_NAME = "users.provision_librechat_account"
TERMINAL_STATUSES = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


def workflow_id(user_id: int, run: int) -> str:
    return f"librechat-provision-user-{user_id}-run-{run}"


def current_workflow_id(user: User) -> str | None:
    return workflow_id(user.pk, user.provisioning_attempts) if user.provisioning_attempts else None


def _enqueue(user_id: int, wid: str) -> None:
    try:
        dbos.enqueue(WORKFLOW_NAME, wid, user_id)
    except Exception:
        # Registration must succeed whatever happens here; reconciliation starts it later.
        logger.exception("could not enqueue provisioning workflow_id=%s", wid)


def _run_is_over(user: User, run: int) -> bool:
    # A failure or conflict is recorded by the run's last step: that run has nothing left to do,
    # even if DBOS has not marked it finished yet. Otherwise DBOS knows (ERROR, CANCELLED, ...).
    if user.provisioning_state in (ProvisioningState.FAILED, ProvisioningState.CONFLICT):
        return True
    return dbos.workflow_status(workflow_id(user.pk, run)) in TERMINAL_STATUSES


def provisioning_start(*, user_id: int, new_run: bool = False) -> str | None:
    """Make sure a provisioning run is under way for the user; return its workflow id.

    ``new_run`` starts another run once the current one has finished (admin action,
    reconciliation); while a run is still going, every call joins it instead.
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if user.provisioning_state == ProvisioningState.ACTIVE:
            return None
        run = user.provisioning_attempts
        if run and new_run and _run_is_over(user, run):
            run += 1
        run = max(run, 1)
        if run != user.provisioning_attempts:
            user.provisioning_attempts = run
            user.provisioning_state = ProvisioningState.PENDING
            user.provisioning_permanent = False
            user.provisioning_updated_at = timezone.now()
            user.save(
                update_fields=[
                    "provisioning_attempts",
                    "provisioning_state",
                    "provisioning_permanent",
                    "provisioning_updated_at",
                ]
            )
        wid = workflow_id(user_id, run)
        transaction.on_commit(lambda: _enqueue(user_id, wid), robust=True)
    return wid


def provisioning_record(
    *,
    user_id: int,
    state: ProvisioningState,
    message: str = "",
    permanent: bool = False,
    librechat_user_id: str = "",
) -> None:
    """Write a run's outcome (or, for ``pending``, the error it is retrying after)."""
    fields: dict[str, object] = {
        "provisioning_state": state,
        "provisioning_error": message,
        "provisioning_permanent": permanent,
        "provisioning_updated_at": timezone.now(),
    }
    if state == ProvisioningState.ACTIVE:
        fields.update(librechat_user_id=librechat_user_id, librechat_synced_at=timezone.now())
    User.objects.filter(pk=user_id).update(**fields)
    log = (
        logger.warning
        if state in (ProvisioningState.FAILED, ProvisioningState.CONFLICT)
        else logger.info
    )
    log("provisioning user_id=%s state=%s %s", user_id, state, message)


@dataclass(frozen=True)
class ReconcileReport:
    stuck_pending: int
    failed_retried: int


def provisioning_candidates(*, failed_only: bool = False) -> Q:
    retryable_failed = Q(
        provisioning_state=ProvisioningState.FAILED,
        provisioning_permanent=False,
        provisioning_attempts__lt=settings.PROVISIONING_MAX_RUNS,
    )
    if failed_only:
        return retryable_failed
    cutoff = timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_AFTER_S)
    stuck = Q(provisioning_state=ProvisioningState.PENDING, provisioning_updated_at__lt=cutoff)
    return stuck | retryable_failed


def provisioning_reconcile() -> ReconcileReport:
    """Re-start runs for users stuck in pending or failed with runs left. Idempotent."""
    stuck = failed = 0
    for user_id, state in User.objects.filter(provisioning_candidates()).values_list(
        "pk", "provisioning_state"
    ):
        provisioning_start(user_id=user_id, new_run=True)
        if state == ProvisioningState.PENDING:
            stuck += 1
        else:
            failed += 1
    if stuck or failed:
        logger.info("provisioning reconciled stuck_pending=%s failed_retried=%s", stuck, failed)
    return ReconcileReport(stuck_pending=stuck, failed_retried=failed)
