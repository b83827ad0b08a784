"""What the project itself keeps in the app database."""

from __future__ import annotations

from django.db import models


class WorkflowExecutor(models.Model):
    """A process that runs DBOS workflows, and when it last said it was alive (core/dbos.py).

    DBOS recovers a process's pending workflows only when a process with the same executor id
    starts again. Executor ids follow the host name, unique per replica, so a container that is
    re-created (with a new host name) never comes back under its old id: its pending workflows
    are handed to the living executors once its heartbeat is old (``recover_orphaned_workflows``).
    """

    executor_id = models.CharField(max_length=200, primary_key=True)
    role = models.CharField(max_length=40)
    pid = models.PositiveIntegerField()
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.executor_id
