from __future__ import annotations

from collections.abc import Callable
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
        quiet = options["verbosity"] < 1
        rotated, current = self._rotate(
            librechat_passwords_rotate, librechat_passwords_count(), "user", batch_size, quiet
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {rotated} password(s); {current} already used the first key."
            )
        )
        if librechat_admin_rotate():
            self.stdout.write("Re-encrypted the LibreChat admin's password too.")
        keys_rotated, keys_current = self._rotate(
            agent_keys_rotate, agent_keys_count(), "agent key", batch_size, quiet
        )
        self.stdout.write(
            f"Re-encrypted {keys_rotated} LibreChat agent API key(s); {keys_current} already "
            "used the first key."
        )

    def _rotate(
        self,
        rotate: Callable[..., tuple[int, int]],
        total: int,
        unit: str,
        batch_size: int,
        quiet: bool,
    ) -> tuple[int, int]:
        """Run one re-encryption with a progress bar on stderr."""
        with tqdm(
            total=total, unit=unit, desc=f"Re-encrypting {unit}s", file=self.stderr, disable=quiet
        ) as bar:
            return rotate(batch_size=batch_size, progress=bar.update)
