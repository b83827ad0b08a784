from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from code_interpreter.cleanup import session_count_expired, sessions_cleanup


class Command(BaseCommand):
    help = (
        "Remove expired code interpreter sessions: their records, stored files and /mnt/data "
        "directories, and directories no session owns. Safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=200)
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count the expired sessions."
        )

    def handle(self, *args: Any, batch_size: int, dry_run: bool, **options: Any) -> None:
        expired = session_count_expired()
        if dry_run:
            self.stdout.write(f"{expired} expired session(s) would be removed.")
            return
        with tqdm(
            total=expired,
            unit="session",
            desc="Removing",
            file=self.stderr,
            disable=options["verbosity"] < 1,
        ) as bar:
            report = sessions_cleanup(batch_size=batch_size, progress=bar.update)
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed {report.sessions} session(s) with {report.files} file(s) "
                f"({report.bytes} bytes) and {report.orphan_dirs} orphaned directory(ies)."
            )
        )
