"""Celery tasks: thin wrappers that call services (see hestami_ai/celery.py for the schedule)."""

from __future__ import annotations

from celery import shared_task

from users.provisioning import provisioning_reconcile


@shared_task(name="users.reconcile_provisioning", ignore_result=True)
def reconcile_provisioning() -> dict[str, int]:
    report = provisioning_reconcile()
    return {
        "stuck_pending": report.stuck_pending,
        "failed_retried": report.failed_retried,
        "given_up": report.given_up,
    }
