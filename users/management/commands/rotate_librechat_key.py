from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from users.agent_keys import agent_keys_count, agent_keys_rotate
from users.librechat_admin import librechat_admin_rotate
from users.services import librechat_passwords_count, librechat_passwords_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored LibreChat password (the users' and the LibreChat admin's) and "
        "every LibreChat agent API key with the first key of LIBRECHAT_ENCRYPTION_KEY. "
        "Idempotent; safe to interrupt and run again."
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
        with tqdm(
            total=agent_keys_count(),
            unit="key",
            desc="Re-encrypting agent keys",
            file=self.stderr,
            disable=options["verbosity"] < 1,
        ) as bar:
            keys_rotated, keys_current = agent_keys_rotate(
                batch_size=batch_size, progress=bar.update
            )
        self.stdout.write(
            f"Re-encrypted {keys_rotated} LibreChat agent API key(s); {keys_current} already "
            "used the first key."
        )
        if rotated or current or keys_rotated or keys_current:
            self.stdout.write(
                "Every password and key now decrypts with the first key alone; older keys can be "
                "removed from LIBRECHAT_ENCRYPTION_KEY."
            )
