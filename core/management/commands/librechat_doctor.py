"""``manage.py librechat_doctor``: is LibreChat set up the way this BFF needs it?"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.doctor import SEVERITY, Doctor, Finding, summary

_LABELS = {"OK": " OK ", "WARN": "WARN", "FAIL": "FAIL", "SKIP": "SKIP"}


class Command(BaseCommand):
    help = (
        "Check LibreChat from here: reachable, registration open, per-IP limits and TRUST_PROXY "
        "suited to a BFF, LibreChat's ADMIN being our own admin account, our User-Agent "
        "accepted, the Code API reachable and our JWT settings fitting LibreChat's defaults, "
        "clock skew. Exits 1 when a check FAILs (--strict: also on WARN)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user",
            metavar="EMAIL",
            help="An active (provisioned) account to ask LibreChat itself whether it accepts our "
            "User-Agent; best one kept for checks.",
        )
        parser.add_argument(
            "--code-api-url",
            metavar="URL",
            help="The Code API URL LibreChat uses (default: LIBRECHAT_CODE_BASEURL).",
        )
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds per request.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--strict", action="store_true", help="Fail on warnings too.")

    def handle(self, *args: Any, **options: Any) -> None:
        doctor = Doctor(
            user_email=options["user"],
            code_api_url=options["code_api_url"],
            timeout_s=options["timeout"],
        )
        findings = doctor.run()
        counts = summary(findings)
        worst = max((SEVERITY[f.status] for f in findings), default=0)
        failed = worst >= (SEVERITY["WARN"] if options["strict"] else SEVERITY["FAIL"])
        if options["json"]:
            report = {
                "librechat": doctor.base_url,
                "ok": not failed,
                "summary": counts,
                "findings": [f.as_dict() for f in findings],
            }
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(self._text(findings, counts, failed))
        if failed:
            raise CommandError(
                f"{counts['FAIL']} problem(s), {counts['WARN']} warning(s).", returncode=1
            )

    def _text(self, findings: list[Finding], counts: dict[str, int], failed: bool) -> str:
        width = max(len(f.title) for f in findings)
        lines = [f"LibreChat doctor: {settings.LIBRECHAT_API_URL or '(LIBRECHAT_API_URL unset)'}"]
        for finding in findings:
            label = _LABELS[finding.status]
            styled = {
                "FAIL": self.style.ERROR,
                "WARN": self.style.WARNING,
                "OK": self.style.SUCCESS,
            }.get(finding.status, str)(f"[{label}]")
            lines.append(f"{styled} {finding.title.ljust(width)}  {finding.finding}")
            if finding.fix and finding.status in ("WARN", "FAIL"):
                lines.append(f"{' ' * 7}{' ' * width}  fix: {finding.fix}")
        verdict = "problems found" if failed else "no problems found"
        lines.append(
            f"Summary: {counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL, "
            f"{counts['SKIP']} SKIP: {verdict}."
        )
        return "\n".join(lines)
