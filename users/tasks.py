"""Celery tasks: thin wrappers that call services (see hestami_ai/celery.py for the schedule)."""

from __future__ import annotations

from celery import shared_task

from core import dbos
from users.lifecycle import deletions_reconcile
from users.provisioning import provisioning_reconcile


@shared_task(name="users.reconcile_provisioning", ignore_result=True)
def reconcile_provisioning() -> dict[str, int]:
    """Every PROVISIONING_RECONCILE_EVERY_S: workflows of executors gone for good are handed
    over, then provisioning runs and deletions that should be going are (re)started."""
    orphans = dbos.recover_orphaned_workflows()
    report = provisioning_reconcile()
    return {
        "stuck_pending": report.stuck_pending,
        "failed_retried": report.failed_retried,
        "given_up": report.given_up,
        "orphans_resumed": len(orphans),
        "deletions": deletions_reconcile(),
    }
