"""The Celery app: periodic work (provisioning reconciliation, expired code sessions).

Broker: Redis when REDIS_URL is set. Without it, the embedded default uses Kombu's filesystem
transport under var/, so `make run` still runs the worker and its embedded beat with no services.
"""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")

app = Celery("hestami_ai")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _filesystem_broker_options() -> dict[str, str]:
    folder = settings.VAR_DIR / "celery-broker"
    for sub in ("processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": "false",
    }


if settings.CELERY_BROKER_URL.startswith("filesystem://"):
    app.conf.broker_transport_options = _filesystem_broker_options()

app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "reconcile-provisioning": {
            "task": "users.reconcile_provisioning",
            "schedule": float(settings.PROVISIONING_RECONCILE_EVERY_S),
        },
        "code-sessions-cleanup": {
            "task": "code_interpreter.code_sessions_cleanup",
            "schedule": 3600.0,
        },
    },
    beat_schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule"),
)
app.autodiscover_tasks()
