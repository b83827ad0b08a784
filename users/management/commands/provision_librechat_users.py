from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from tqdm import tqdm

from users.managers import normalize_email
from users.models import ProvisioningState, User
from users.provisioning import provisioning_candidates, provisioning_start


class Command(BaseCommand):
    help = (
        "Start LibreChat provisioning for existing users: by default those pending or failed "
        "(with runs left); --all for everyone not active; --failed for failed only; --email for "
        "one user (any state but active, including permanent failures and conflicts)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="Every user not yet active.")
        which.add_argument("--failed", action="store_true", help="Failed users with runs left.")
        which.add_argument("--email", action="append", default=[], help="This user (repeatable).")
        parser.add_argument("--dry-run", action="store_true", help="List, start nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        users = User.objects.exclude(provisioning_state=ProvisioningState.ACTIVE)
        if options["email"]:
            emails = [normalize_email(e) for e in options["email"]]
            users = users.filter(email__in=emails)
            known = User.objects.filter(email__in=emails).values_list("email", flat=True)
            missing = set(emails) - set(known)
            if missing:
                raise CommandError(f"No user with e-mail: {', '.join(sorted(missing))}")
        elif options["failed"]:
            users = users.filter(provisioning_candidates(failed_only=True))
        elif not options["all"]:
            users = users.filter(
                Q(provisioning_state=ProvisioningState.PENDING)
                | provisioning_candidates(failed_only=True)
            )
        selected = list(users.order_by("pk").values_list("pk", "email", "provisioning_state"))
        if options["dry_run"]:
            for _, email, state in selected:
                self.stdout.write(f"would provision {email} ({state})")
            self.stdout.write(f"{len(selected)} user(s) would be provisioned.")
            return
        started: Counter[str] = Counter()
        for pk, _, state in tqdm(
            selected,
            unit="user",
            desc="Starting",
            file=self.stderr,
            disable=options["verbosity"] < 1,
        ):
            wid = provisioning_start(user_id=pk, new_run=True)
            started["started" if wid else "skipped"] += 1
            started[state] += 1
        self.stdout.write(
            self.style.SUCCESS(
                f"Started provisioning for {started['started']} user(s) "
                f"({started['pending']} pending, {started['failed']} failed, "
                f"{started['conflict']} conflict); {started['skipped']} skipped. "
                "Workflows run in the web and `run_workflows` processes."
            )
        )
