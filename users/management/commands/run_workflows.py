from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core import dbos
from core.database import DatabaseUnavailable, ensure_app_database


class Command(BaseCommand):
    help = (
        "Run DBOS workflows (LibreChat provisioning) until SIGTERM/SIGINT. Recovers the pending "
        "workflows of this executor id at start; run more of these to scale out."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            ensure_app_database(create=False)
        except DatabaseUnavailable as exc:
            raise CommandError(str(exc)) from None
        dbos.launch("worker")
        self.stdout.write(f"Running workflows as executor {dbos.executor_id('worker')}.")
        stop.wait()
        self.stdout.write("Stopping: in-flight workflows resume at the next start.")
        dbos.shutdown()
