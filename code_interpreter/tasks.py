"""Celery tasks: thin wrappers that call services (the schedule is in hestami_ai/celery.py)."""

from __future__ import annotations

from celery import shared_task

from code_interpreter.cleanup import sessions_cleanup


@shared_task(name="code_interpreter.code_sessions_cleanup", ignore_result=True)
def code_sessions_cleanup() -> dict[str, int]:
    """Remove expired code sessions: their records, stored files and directories."""
    return sessions_cleanup().as_dict()
