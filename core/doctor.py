"""The frame of ``manage.py librechat_doctor`` (docs/observability.md): findings, and the
registry through which each app adds the checks it owns, the way Django's system checks are
registered. The checks live with what they check: LibreChat itself (librechat/doctor.py,
registered by users), the operator's LibreChat admin (users/doctor.py) and the USER role's
REMOTE_AGENTS permission (users/doctor_remote_agents.py), the chat proxy's User-Agent and
account deletion (chat/doctor.py), the Code API (code_interpreter/doctor.py).

Each check looks from outside, the way we use LibreChat, and says OK, WARN, FAIL or SKIP with a
one-line finding and a concrete fix.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

Status = Literal["OK", "WARN", "FAIL", "SKIP"]
SEVERITY: dict[str, int] = {"OK": 0, "SKIP": 0, "WARN": 1, "FAIL": 2}

_T = TypeVar("_T")


@dataclass
class Finding:
    check: str
    title: str
    status: Status
    finding: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def skipped(check: str, title: str, why: str) -> Finding:
    return Finding(check, title, "SKIP", why)


@dataclass
class Doctor:
    """One run: the operator's options, the findings in report order, and what the checks of
    one run share (``shared``: LibreChat's probe client, say), closed when the run ends."""

    user_email: str | None = None
    code_api_url: str | None = None
    timeout_s: float = 5.0
    findings: list[Finding] = field(default_factory=list)
    _shared: dict[type, Any] = field(default_factory=dict)
    _resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def base_url(self) -> str:
        return str(settings.LIBRECHAT_API_URL)

    def shared(self, kind: type[_T], factory: Callable[[], _T]) -> _T:
        """The one ``kind`` of this run, made by ``factory`` on first use; its ``close()``, if
        it has one, runs when the run ends."""
        found = self._shared.get(kind)
        if found is None:
            found = self._shared[kind] = factory()
            close = getattr(found, "close", None)
            if close is not None:
                self._resources.callback(close)
        return found

    def run(self) -> list[Finding]:
        with self._resources:
            for _, path in sorted(_CHECKS):
                check: Check = import_string(path)
                self.findings.extend(check(self))
        self._shared.clear()
        return self.findings


Check = Callable[[Doctor], list[Finding]]
_CHECKS: list[tuple[int, str]] = []


def register(path: str, *, order: int) -> None:
    """Add a group of checks, a function ``Doctor -> list[Finding]`` named by its dotted path:
    imported only when the doctor runs, so no web process loads the checks. ``order`` places
    its findings in the report (10: LibreChat reachable and its configuration, 40: our admin,
    45: its USER role, 50: the chat proxy, 70: the clock, 80: the Code API). Registering a path
    again changes nothing."""
    if all(known != path for _, known in _CHECKS):
        _CHECKS.append((order, path))


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {"OK": 0, "WARN": 0, "FAIL": 0, "SKIP": 0}
    for finding in findings:
        counts[finding.status] += 1
    return counts


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()
    return url


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
