"""The doctor's release checks (librechat/doctor_releases.py) against the double answering like
each LibreChat release: the version line, ALLOW_EMAIL_LOGIN, the JWT secrets."""

from __future__ import annotations

from typing import Any

import pytest

from core.doctor import Doctor, Finding
from librechat.doctor import librechat_checks
from librechat.doctor_releases import release_checks
from tests.librechat_double.server import LibreChatDouble

PROBE_NETWORKS = ("192.0.2.", "198.51.100.", "203.0.113.")


def run() -> dict[str, Finding]:
    doctor = Doctor()
    with doctor._resources:
        return {finding.check: finding for finding in release_checks(doctor)}


def test_the_version_line_says_what_and_from_where(
    librechat: LibreChatDouble, librechat_version: str
) -> None:
    found = run()["librechat_version"]
    assert found.status == "OK"
    assert found.finding == (
        f"LibreChat: version {librechat_version} (from /api/config buildInfo)."
    )


def test_a_silent_librechat_is_assumed_oldest_with_a_warning(librechat: LibreChatDouble) -> None:
    librechat.config.update(build_branch="")
    found = run()["librechat_version"]
    assert found.status == "WARN"
    assert found.finding.startswith(
        "LibreChat: version 0.8.7 (assumed: not reported by /api/config)."
    )
    assert "LIBRECHAT_VERSION" in found.fix


def test_a_pinned_release_that_librechat_contradicts(
    librechat: LibreChatDouble, librechat_version: str, settings: Any
) -> None:
    other = "0.8.7" if librechat_version == "0.8.8" else "0.8.8"
    settings.LIBRECHAT_VERSION = other
    found = run()["librechat_version"]
    assert found.status == "WARN"
    assert found.finding == (
        f"LibreChat: version {other} (from setting LIBRECHAT_VERSION); but LibreChat reports "
        f"{librechat_version} in /api/config."
    )


def test_a_newer_release_is_named_and_treated_as_the_newest(librechat: LibreChatDouble) -> None:
    librechat.config.update(build_branch="v0.9.0")
    found = run()["librechat_version"]
    assert found.status == "WARN"
    assert found.finding.startswith("LibreChat: version 0.9.0 (from /api/config buildInfo)")
    assert "treated as 0.8.8" in found.finding


def test_email_login_allowed(librechat: LibreChatDouble) -> None:
    assert run()["email_login"].status == "OK"


@pytest.mark.parametrize("override", [False, True])
def test_email_login_switched_off(
    librechat: LibreChatDouble, librechat_version: str, override: bool
) -> None:
    librechat.config.update(allow_email_login=False, allow_email_login_override=override)
    seen = len(librechat.state.requests)
    found = run()["email_login"]
    probes = [r for r in librechat.state.requests[seen:] if r.path == "/api/auth/login"]
    if librechat_version == "0.8.7":
        # Only LibreChat's form is hidden; nothing to probe, a hint for the upgrade.
        assert (found.status, probes) == ("OK", [])
        assert "ALLOW_EMAIL_LOGIN_OVERRIDE=true" in found.fix
        return
    assert len(probes) == 1
    assert probes[0].client_ip is not None
    assert probes[0].client_ip.startswith(PROBE_NETWORKS)
    assert librechat.state.counter("login_successes") == 0
    if override:
        assert found.status == "OK"
        assert "ALLOW_EMAIL_LOGIN_OVERRIDE lets our password log-ins through" in found.finding
    else:
        assert found.status == "FAIL"
        assert "ALLOW_EMAIL_LOGIN_OVERRIDE=true" in found.fix


def test_jwt_secrets(librechat: LibreChatDouble, librechat_version: str) -> None:
    found = run()["jwt_secrets"]
    if librechat_version == "0.8.7":
        assert found.status == "OK"
    else:
        assert found.status == "SKIP"
        assert "the same on every replica" in found.fix


def test_unreachable_librechat_skips_them_all(librechat: LibreChatDouble) -> None:
    librechat.set_mode("down")
    doctor = Doctor()
    with doctor._resources:
        librechat_checks(doctor)
        found = release_checks(doctor)
    assert [f.status for f in found] == ["SKIP", "SKIP", "SKIP"]
