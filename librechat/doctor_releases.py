"""The doctor's checks of what depends on the LibreChat release (docs/librechat-versions.md):
which release it found and where from, then each release's traps, asked of its profile
(librechat/versions.py), never of a version string:

* ``email_login``: from 0.8.8, ALLOW_EMAIL_LOGIN=false refuses the password log-ins that
  provisioning and the proxy depend on, unless ALLOW_EMAIL_LOGIN_OVERRIDE=true. /api/config
  shows the first (``emailLoginEnabled``), not the second, so a credential-less log-in probe
  from a documentation address settles it: LibreChat's validateEmailLogin answers 403 before
  any password is checked; past it, passport answers "Missing credentials".
* ``jwt_secrets``: from 0.8.8, blank JWT secrets are generated per instance; nothing outside
  LibreChat shows them, so this is a SKIP (not checked) that says the trap and its fix.

Registered by users (users/apps.py) right after LibreChat's own checks.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from django.conf import settings

from core.doctor import Doctor, Finding, skipped
from librechat import versions
from librechat.auth import EMAIL_LOGIN_NOT_ALLOWED
from librechat.doctor import prober
from librechat.probe import Prober

TITLES = {
    "librechat_version": "LibreChat release",
    "email_login": "Password log-in (ALLOW_EMAIL_LOGIN)",
    "jwt_secrets": "LibreChat JWT secrets",
}


def release_checks(doctor: Doctor) -> list[Finding]:
    probe = prober(doctor)
    if not probe.reachable:
        why = "LibreChat is unreachable."
        return [skipped(name, title, why) for name, title in TITLES.items()]
    config = _startup_config(probe)
    detected, finding = check_release(config)
    return [finding, check_email_login(probe, detected, config), check_jwt_secrets(detected)]


def _startup_config(probe: Prober) -> Any:
    try:
        answer = probe.call("GET", f"{probe.base_url}/api/config")
        return json.loads(answer.text) if answer.status == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def check_release(config: Any) -> tuple[versions.Detected, Finding]:
    """The release in use, as the proxy will see it, and the doctor's line about it."""
    check, title = "librechat_version", TITLES["librechat_version"]
    reported = versions.from_startup_config(config)
    setting = str(settings.LIBRECHAT_VERSION)
    detected = reported if setting == versions.AUTO else versions.from_setting(setting)
    line = f"LibreChat: version {detected.reported or detected.version}"
    if detected.reported is None:
        line += f" (assumed: {detected.source})"
    else:
        line += f" (from {detected.source})"
    if detected.reported and detected.profile.version != detected.reported:
        line += f", treated as {detected.profile.version}"
    if (
        reported.reported
        and detected.source.startswith("setting")
        and (versions.profile_for(reported.reported)[0] is not detected.profile)
    ):
        return detected, Finding(
            check,
            title,
            "WARN",
            f"{line}; but LibreChat reports {reported.reported} in /api/config.",
            f"Set LIBRECHAT_VERSION={reported.reported} (or auto) for the release that runs.",
        )
    if detected.note:
        fix = (
            "Set LIBRECHAT_VERSION to the release you run (0.8.7 or 0.8.8)."
            if detected.reported is None
            else "Run a release of docs/librechat-versions.md's support matrix."
        )
        return detected, Finding(check, title, "WARN", f"{line}. {detected.note}", fix)
    return detected, Finding(check, title, "OK", f"{line}.")


def check_email_login(probe: Prober, detected: versions.Detected, config: Any) -> Finding:
    check, title = "email_login", TITLES["email_login"]
    enabled = not isinstance(config, dict) or config.get("emailLoginEnabled") is not False
    if enabled:
        return Finding(check, title, "OK", "LibreChat allows password log-ins.")
    if not detected.profile.email_login_gates_password_login:
        return Finding(
            check,
            title,
            "OK",
            f"ALLOW_EMAIL_LOGIN=false only hides LibreChat's own log-in form on "
            f"{detected.version}; our password log-ins still pass. From 0.8.8 on they would not.",
            "Before upgrading LibreChat, set ALLOW_EMAIL_LOGIN_OVERRIDE=true in its .env.",
        )
    try:
        answer = probe.call(
            "POST", f"{probe.base_url}/api/auth/login", probe_ip=probe.probe_ip(), json={}
        )
    except httpx.HTTPError as exc:
        return skipped(check, title, f"The log-in probe failed ({type(exc).__name__}).")
    if answer.status == 403 and EMAIL_LOGIN_NOT_ALLOWED in answer.text:
        return Finding(
            check,
            title,
            "FAIL",
            "LibreChat refuses password log-ins (ALLOW_EMAIL_LOGIN=false): provisioning and "
            "the chat proxy cannot open LibreChat sessions, every user's chat fails.",
            "Set ALLOW_EMAIL_LOGIN_OVERRIDE=true (keeps LibreChat's own form hidden) or "
            "ALLOW_EMAIL_LOGIN=true in LibreChat's .env and restart it.",
        )
    return Finding(
        check,
        title,
        "OK",
        "ALLOW_EMAIL_LOGIN=false hides LibreChat's log-in form, and ALLOW_EMAIL_LOGIN_OVERRIDE "
        "lets our password log-ins through.",
    )


def check_jwt_secrets(detected: versions.Detected) -> Finding:
    check, title = "jwt_secrets", TITLES["jwt_secrets"]
    if not detected.profile.generates_blank_jwt_secrets:
        return Finding(
            check,
            title,
            "OK",
            f"LibreChat {detected.version} never makes them up: it uses "
            "JWT_SECRET and JWT_REFRESH_SECRET as set.",
        )
    return Finding(
        check,
        title,
        "SKIP",
        f"LibreChat {detected.version} makes up JWT_SECRET and JWT_REFRESH_SECRET when they are "
        "blank, per instance and per start: with more than one replica, or after a restart, "
        "its sessions stop working (our proxy then logs every user in again). Not visible "
        "from here.",
        "Set JWT_SECRET and JWT_REFRESH_SECRET in LibreChat's .env, the same on every replica "
        "(compose.librechat.yaml requires them: LIBRECHAT_JWT_* from scripts/compose-env.py).",
    )
