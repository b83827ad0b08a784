"""Provisioning services: start runs of the LibreChat workflow, write their outcome, reconcile.

A user's runs have ids ``librechat-provision-<user uuid>-run-<n>``; starting the current run
again is a no-op (DBOS keeps one workflow per id), so double submits, reconciliation and admin
actions racing each other still give one run at a time, and LibreChat one account. The uuid, not
the primary key, names the user in workflow ids and inputs: a fresh app database starts its ids
at 1 again, and must not find the runs of another database's user 1 in a DBOS database that was
kept (docs/provisioning.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import dbos
from users.models import ProvisioningState, User

logger = logging.getLogger(__name__)

WORKFLOW_NAME = "users.provision_librechat_account"
TERMINAL_STATUSES = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


def workflow_id(user_uuid: UUID | str, run: int) -> str:
    return f"librechat-provision-{user_uuid}-run-{run}"


def current_workflow_id(user: User) -> str | None:
    return (
        workflow_id(user.uuid, user.provisioning_attempts) if user.provisioning_attempts else None
    )


def _enqueue(user_key: str, wid: str) -> None:
    try:
        dbos.enqueue(WORKFLOW_NAME, wid, user_key)
    except Exception:
        # Registration must succeed whatever happens here; reconciliation starts it later.
        logger.exception("could not enqueue provisioning workflow_id=%s", wid)


def _run_is_over(user: User, run: int) -> bool:
    # A failure or conflict is recorded by the run's last step: that run has nothing left to do,
    # even if DBOS has not marked it finished yet. Otherwise DBOS knows (ERROR, CANCELLED, ...).
    if user.provisioning_state in (ProvisioningState.FAILED, ProvisioningState.CONFLICT):
        return True
    return dbos.workflow_status(workflow_id(user.uuid, run)) in TERMINAL_STATUSES


def provisioning_start(*, user_id: int, new_run: bool = False) -> str | None:
    """Make sure a provisioning run is under way for the user; return its workflow id.

    ``new_run`` starts another run once the current one has finished (admin action,
    reconciliation); while a run is still going, every call joins it instead. Nothing starts for
    an active user or one being deleted.
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if user.provisioning_state == ProvisioningState.ACTIVE or user.deletion_requested_at:
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
        wid = workflow_id(user.uuid, run)
        key = str(user.uuid)
        transaction.on_commit(lambda: _enqueue(key, wid), robust=True)
    return wid


def provisioning_start_on_commit(*, user_id: int) -> None:
    """Start provisioning once the current transaction commits (a new user's row is visible)."""
    transaction.on_commit(lambda: provisioning_start(user_id=user_id), robust=True)


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
    # Pending users whose last allowed run ended without an outcome: now `failed`, for an admin.
    given_up: int = 0


def _runs_left() -> Q:
    return Q(provisioning_attempts__lt=settings.PROVISIONING_MAX_RUNS)


def provisioning_candidates(*, failed_only: bool = False) -> Q:
    """Users reconciliation (re)starts: never started, stuck in pending, or failed for a reason a
    retry can cure; each only while it has runs left (PROVISIONING_MAX_RUNS), whatever its state.
    Users being deleted are left alone."""
    retryable_failed = (
        Q(provisioning_state=ProvisioningState.FAILED, provisioning_permanent=False) & _runs_left()
    )
    if failed_only:
        return retryable_failed & Q(deletion_requested_at=None)
    cutoff = timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_AFTER_S)
    never_started = Q(provisioning_state=ProvisioningState.PENDING, provisioning_attempts=0)
    stuck = (
        Q(provisioning_state=ProvisioningState.PENDING, provisioning_updated_at__lt=cutoff)
        & _runs_left()
    )
    return (never_started | stuck | retryable_failed) & Q(deletion_requested_at=None)


def _give_up_on_exhausted() -> int:
    """Pending users whose runs are all used up and whose last run is over: mark them `failed`
    (permanent) with what is known, so nothing loops and an admin sees them."""
    cutoff = timezone.now() - timedelta(seconds=settings.PROVISIONING_STUCK_AFTER_S)
    exhausted = User.objects.filter(
        provisioning_state=ProvisioningState.PENDING,
        provisioning_updated_at__lt=cutoff,
        provisioning_attempts__gte=settings.PROVISIONING_MAX_RUNS,
        deletion_requested_at=None,
    )
    given_up = 0
    for user in exhausted:
        status = dbos.workflow_status(workflow_id(user.uuid, user.provisioning_attempts))
        if status is not None and status not in TERMINAL_STATUSES:
            continue  # the last run is still going (waiting out LibreChat): let it finish
        ended = f"ended {status}" if status else "is unknown to DBOS"
        last = f" Last error: {user.provisioning_error}" if user.provisioning_error else ""
        provisioning_record(
            user_id=user.pk,
            state=ProvisioningState.FAILED,
            message=f"Provisioning ran {user.provisioning_attempts} times without an outcome "
            f"(the last run {ended}).{last} Fix the cause, then re-provision.",
            permanent=True,
        )
        given_up += 1
    return given_up


def provisioning_reconcile() -> ReconcileReport:
    """Re-start runs for users never started, stuck in pending or failed with runs left; give up
    on those with none left. Idempotent."""
    stuck = failed = 0
    for user_id, state in User.objects.filter(provisioning_candidates()).values_list(
        "pk", "provisioning_state"
    ):
        provisioning_start(user_id=user_id, new_run=True)
        if state == ProvisioningState.PENDING:
            stuck += 1
        else:
            failed += 1
    given_up = _give_up_on_exhausted()
    if stuck or failed or given_up:
        logger.info(
            "provisioning reconciled stuck_pending=%s failed_retried=%s given_up=%s",
            stuck,
            failed,
            given_up,
        )
    return ReconcileReport(stuck_pending=stuck, failed_retried=failed, given_up=given_up)
