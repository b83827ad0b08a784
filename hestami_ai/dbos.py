"""DBOS, launched only in the processes that run workflows: the ASGI web server and
``manage.py run_workflows``. Management commands, Celery tasks and tests never launch it; they
hand workflows to the launched processes through the system database (``DBOSClient``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig
from django.conf import settings

logger = logging.getLogger(__name__)

PROVISIONING_QUEUE = "librechat-provisioning"
# Step failures that still raise are our own database's (a lock, a dropped connection; LibreChat
# failures come back as results): a few quick retries, then the workflow handles the error.
DATABASE_RETRIES: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 5,
    "interval_seconds": 0.5,
    "backoff_rate": 2.0,
}
_launched = False
_lock = threading.Lock()
_client: DBOSClient | None = None
_client_url = ""


def executor_id(role: str) -> str:
    """Stable across restarts of the same process role on the same host, unique otherwise."""
    return settings.DBOS_EXECUTOR_ID or f"{socket.gethostname()}-{role}"


def dbos_config(role: str) -> DBOSConfig:
    return {
        "name": "hestami-ai",
        "system_database_url": settings.DBOS_SYSTEM_DATABASE_URL,
        "executor_id": executor_id(role),
        "application_version": settings.DBOS_APPLICATION_VERSION,
        "log_level": settings.LOG_LEVEL,
        "max_executor_threads": settings.DBOS_MAX_THREADS,
    }


def is_launched() -> bool:
    return _launched


def launch(role: str) -> None:
    """Register the workflows, launch DBOS (recovering this executor's pending work), listen."""
    global _launched
    with _lock:
        if _launched:
            return
        from users import workflows  # noqa: F401  (registers the workflows before launch)

        DBOS(config=dbos_config(role))
        DBOS.launch()
        # Listened to for work queued by processes that did not launch DBOS.
        DBOS.register_queue(
            PROVISIONING_QUEUE,
            worker_concurrency=settings.PROVISIONING_CONCURRENCY,
            polling_interval_sec=settings.DBOS_QUEUE_POLLING_S,
        )
        _launched = True
        logger.info(
            "DBOS launched role=%s executor_id=%s pid=%s", role, executor_id(role), os.getpid()
        )


def shutdown() -> None:
    global _launched, _client
    with _lock:
        if _launched:
            DBOS.destroy(destroy_registry=False)
            _launched = False
        if _client is not None:
            _client.destroy()
            _client = None


def client() -> DBOSClient:
    """A client for processes that did not launch DBOS (management commands, Celery tasks)."""
    global _client, _client_url
    with _lock:
        url = settings.DBOS_SYSTEM_DATABASE_URL
        if _client is not None and _client_url != url:
            _client.destroy()  # the setting changed (tests): never enqueue into the old store
            _client = None
        if _client is None:
            _client = DBOSClient(system_database_url=url)
            _client_url = url
        return _client


def enqueue(workflow_name: str, workflow_id: str, *args: Any) -> None:
    """Run a workflow under a fixed id; a second call with the same id is a no-op.

    In a process that launched DBOS it starts at once on DBOS's thread pool (at most
    DBOS_MAX_THREADS at a time; the rest wait there, already recorded as pending). Elsewhere it
    goes on the queue, which every launched process polls.
    """
    if _launched:
        from dbos import SetWorkflowID

        from users import workflows

        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(workflows.BY_NAME[workflow_name], *args)
        return
    client().enqueue(
        {
            "workflow_name": workflow_name,
            "queue_name": PROVISIONING_QUEUE,
            "workflow_id": workflow_id,
            "app_version": settings.DBOS_APPLICATION_VERSION,
        },
        *args,
    )


def workflow_status(workflow_id: str) -> str | None:
    """PENDING, ENQUEUED, SUCCESS, ERROR, CANCELLED, ... or None for an unknown id."""
    if _launched:
        status = DBOS.get_workflow_status(workflow_id)
        return status.status if status else None
    found = client().list_workflows(workflow_ids=[workflow_id], load_input=False, load_output=False)
    return found[0].status if found else None


def cancel(workflow_id: str) -> None:
    if _launched:
        DBOS.cancel_workflow(workflow_id)
    else:
        client().cancel_workflow(workflow_id)
