"""Django's migrate, creating a missing PostgreSQL app database first (core/database.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate

from core.database import DatabaseUnavailable, ensure_app_database


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if ensure_app_database(create=True, alias=options["database"]):
                self.stdout.write(f"Created the database for {options['database']!r}.")
        except DatabaseUnavailable as exc:
            raise CommandError(str(exc)) from None
        super().handle(*args, **options)
