from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from users.librechat_admin import librechat_admin_rotate
from users.services import librechat_passwords_count, librechat_passwords_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored LibreChat password (the users' and the LibreChat admin's) with "
        "the first key of LIBRECHAT_ENCRYPTION_KEY. Idempotent; safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        total = librechat_passwords_count()
        with tqdm(
            total=total,
            unit="user",
            desc="Re-encrypting",
            file=self.stderr,
            disable=options["verbosity"] < 1,
        ) as bar:
            rotated, current = librechat_passwords_rotate(
                batch_size=batch_size, progress=bar.update
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {rotated} password(s); {current} already used the first key."
            )
        )
        if librechat_admin_rotate():
            self.stdout.write("Re-encrypted the LibreChat admin's password too.")
        if rotated or current:
            self.stdout.write(
                "Every password now decrypts with the first key alone; older keys can be removed "
                "from LIBRECHAT_ENCRYPTION_KEY."
            )
