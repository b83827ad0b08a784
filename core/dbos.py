"""DBOS, launched only in the processes that run workflows: the ASGI web server and
``manage.py run_workflows``. Management commands, Celery tasks and tests never launch it; they
hand workflows to the launched processes through the system database (``DBOSClient``).

Executor ids: ``<hostname>-<role>`` unless DBOS_EXECUTOR_ID says otherwise. Compose gives each
replica its own host name, so replicas never share an id (they would all recover the same
workflows), and a replica restarted in place keeps its id and recovers its own pending work. Two
processes of one role on one host would share an id: the second one refuses to start. A replica
that never comes back under its id (a re-created container gets a new host name) leaves pending
workflows behind; every launched process says it is alive in the app database
(``WorkflowExecutor``) and reconciliation hands the workflows of executors silent for
``EXECUTOR_DEAD_AFTER_S`` to the living ones.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import IO, Any

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID
from dbos import error as dbos_errors
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.utils import timezone

from core.models import WorkflowExecutor

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
# A launched process writes its heartbeat this often; one silent for EXECUTOR_DEAD_AFTER_S has
# its pending workflows handed over (generous: a wrong guess runs a workflow twice, whose steps
# are idempotent, while the right one only waits a little longer).
HEARTBEAT_S = 15.0
EXECUTOR_DEAD_AFTER_S = 120.0
_launched = False
_lock = threading.Lock()
_id_lock: IO[str] | None = None
_heartbeat_stop = threading.Event()
_client: DBOSClient | None = None
_client_url = ""
# The workflows the apps own, by name (each app registers its own from AppConfig.ready(), which
# also imports them, so DBOS knows them before launch).
_workflows: dict[str, Callable[..., Any]] = {}


def register_workflows(by_name: Mapping[str, Callable[..., Any]]) -> None:
    """Make workflows startable by name with ``enqueue``; called from an app's ``ready()``."""
    _workflows.update(by_name)


def executor_id(role: str) -> str:
    """Stable across restarts of the same process role on the same host, unique otherwise."""
    return settings.DBOS_EXECUTOR_ID or f"{socket.gethostname()}-{role}"


def _claim(executor: str) -> IO[str]:
    """Hold a lock file for the executor id as long as this process lives: a second process of
    the same role on this host (same id) stops instead of recovering the first one's workflows."""
    path = settings.VAR_DIR / f"dbos-executor-{executor}.lock"
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ImproperlyConfigured(
            f"Another process on this host runs DBOS workflows as executor {executor!r}. Give "
            "this one its own DBOS_EXECUTOR_ID (or run it on another host)."
        ) from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _heartbeat(executor: str, role: str) -> None:
    while True:
        try:
            WorkflowExecutor.objects.update_or_create(
                executor_id=executor,
                defaults={"role": role, "pid": os.getpid(), "last_seen": timezone.now()},
            )
        except Exception:  # the database is down for a moment: the next beat tries again
            logger.warning("executor heartbeat failed executor_id=%s", executor, exc_info=True)
        finally:
            close_old_connections()
        if _heartbeat_stop.wait(HEARTBEAT_S):
            return


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
    global _launched, _id_lock
    with _lock:
        if _launched:
            return
        executor = executor_id(role)
        _id_lock = _claim(executor)
        DBOS(config=dbos_config(role))
        DBOS.launch()
        # Listened to for work queued by processes that did not launch DBOS.
        DBOS.register_queue(
            PROVISIONING_QUEUE,
            worker_concurrency=settings.PROVISIONING_CONCURRENCY,
            polling_interval_sec=settings.DBOS_QUEUE_POLLING_S,
        )
        _launched = True
        _heartbeat_stop.clear()
        threading.Thread(
            target=_heartbeat, args=(executor, role), name="dbos-heartbeat", daemon=True
        ).start()
        logger.info("DBOS launched role=%s executor_id=%s pid=%s", role, executor, os.getpid())


def shutdown() -> None:
    global _launched, _client, _id_lock
    with _lock:
        if _launched:
            _heartbeat_stop.set()
            DBOS.destroy(destroy_registry=False)
            _launched = False
        if _id_lock is not None:
            _id_lock.close()  # releases the executor id's lock file
            _id_lock = None
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
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(_workflows[workflow_name], *args)
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


def recover_orphaned_workflows(*, dead_after_s: float = EXECUTOR_DEAD_AFTER_S) -> list[str]:
    """Hand the pending workflows of executors silent for ``dead_after_s`` (or never seen, for
    workflows not touched that long) to the living ones: DBOS queues them again, and whichever
    launched process is free resumes each from its last recorded step. Returns their ids."""
    cutoff = timezone.now() - timedelta(seconds=dead_after_s)
    alive = set(
        WorkflowExecutor.objects.filter(last_seen__gte=cutoff).values_list("executor_id", flat=True)
    )
    stale_ms = (time.time() - dead_after_s) * 1000
    if _launched:
        pending = DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
    else:
        pending = client().list_workflows(status="PENDING", load_input=False, load_output=False)
    orphans = [
        w.workflow_id
        for w in pending
        if w.executor_id not in alive and (w.updated_at or 0) < stale_ms
    ]
    for workflow_id in orphans:
        if _launched:
            DBOS.resume_workflow(workflow_id)
        else:
            client().resume_workflow(workflow_id)
        logger.warning("orphaned workflow handed over workflow_id=%s", workflow_id)
    return orphans


def step_failure(exc: Exception) -> str:
    """What a step that kept raising raised: DBOS wraps the step's errors after its retries."""
    cause: Exception = exc
    if isinstance(exc, dbos_errors.DBOSMaxStepRetriesExceeded) and exc.errors:
        cause = exc.errors[-1]
    return f"{type(cause).__name__}: {cause}"[:500]
