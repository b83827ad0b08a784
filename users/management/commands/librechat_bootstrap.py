"""``manage.py librechat_bootstrap``: the operator's own LibreChat admin, before any user."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.crypto import DecryptionError, EncryptionKeyError
from users.librechat_admin import BootstrapError, librechat_admin_bootstrap


class Command(BaseCommand):
    help = (
        "Create the operator's own LibreChat admin account. LibreChat makes its first registered "
        "account ADMIN, so run this before any user is provisioned: then no end user can become "
        "LibreChat's admin. Registers the account with a generated password (kept encrypted like "
        "a user's), logs in and checks that LibreChat reports the role ADMIN. Idempotent: once "
        "that is done, running it again does nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", help="The admin's e-mail address (needed the first time).")
        parser.add_argument(
            "--name", default="Operator", help="Display name in LibreChat (3 to 80 characters)."
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Adopt an account that already exists in LibreChat (made with its `npm run "
            "create-user` and holding ADMIN): read its password from standard input instead of "
            "registering a new account.",
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Register and verify again with the stored credentials, e.g. after LibreChat's "
            "database was reset or the doctor reports the admin cannot log in.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("--password-stdin: no password on standard input.")
        try:
            admin, done = librechat_admin_bootstrap(
                email=options["email"],
                name=options["name"],
                password=password,
                repair=options["repair"],
            )
        except BootstrapError as exc:
            raise CommandError(exc.message) from None
        except (DecryptionError, EncryptionKeyError) as exc:
            raise CommandError(f"The stored admin credentials cannot be used: {exc}") from None
        if not done:
            verified = f"{admin.verified_at:%Y-%m-%d %H:%M %Z}" if admin.verified_at else "?"
            self.stdout.write(
                f"The LibreChat admin {admin.email} is already set up (ADMIN, verified "
                f"{verified}); nothing to do. `manage.py librechat_doctor` checks it again."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"LibreChat admin {admin.email} is set up: LibreChat reports the role ADMIN. "
                "Users can be provisioned now."
            )
        )
