"""The doctor's checks of what the chat proxy needs from LibreChat: our User-Agent passes its
uaParser, and it lets users delete their accounts. Our User-Agent is only ever sent to a route
that LibreChat's ``uaParser`` guards after it has passed a local check, and only with ``--user``
(an account of ours): a non-browser agent there would ban that user and the address for two
hours.
"""

from __future__ import annotations

import json
import re

import httpx
from asgiref.sync import async_to_sync
from django.conf import settings

from chat import sessions
from core.doctor import Doctor, Finding, skipped
from librechat.doctor import prober
from users.models import ProvisioningState, User

# A browser name ua-parser-js certainly finds (a subset of what it accepts, on purpose: a wrong
# "yes" here would cost a two-hour ban, a wrong "no" only a FAIL to look at).
_BROWSER_TOKEN = re.compile(
    r"\b(?:Chrome|CriOS|Firefox|FxiOS|Edg|EdgA|EdgiOS|OPR|SamsungBrowser|AppleWebKit)/\d"
    r"|\bVersion/[\d.]+ .*Safari/",
    re.IGNORECASE,
)


def chat_checks(doctor: Doctor) -> list[Finding]:
    return [check_user_agent(doctor), check_account_deletion(doctor)]


def check_user_agent(doctor: Doctor) -> Finding:
    check, title = "user_agent", "Our User-Agent passes uaParser"
    agent = str(settings.LIBRECHAT_USER_AGENT)
    if not _BROWSER_TOKEN.search(agent):
        return Finding(
            check,
            title,
            "FAIL",
            f"LIBRECHAT_USER_AGENT {agent[:60]!r} names no browser: LibreChat answers every "
            "chat and file request with 'Illegal request' and, with BAN_VIOLATIONS on, bans "
            "the user and our address for 2 h (not sent to LibreChat to find out).",
            "Unset LIBRECHAT_USER_AGENT (the default is a desktop Chrome string) or set a "
            "current desktop browser's User-Agent.",
        )
    if not doctor.user_email:
        return Finding(
            check,
            title,
            "OK",
            "It names a browser (checked here; --user EMAIL also asks LibreChat).",
        )
    if not prober(doctor).reachable:
        return skipped(check, title, "LibreChat is unreachable.")
    return _user_agent_on_librechat(doctor, check, title)


def _active_user(doctor: Doctor) -> User | None:
    """The --user account, if it is active (provisioned) here."""
    user = User.objects.filter(email__iexact=doctor.user_email).first()
    return user if user and user.provisioning_state == ProvisioningState.ACTIVE else None


def _user_agent_on_librechat(doctor: Doctor, check: str, title: str) -> Finding:
    user = _active_user(doctor)
    if user is None:
        return Finding(
            check,
            title,
            "WARN",
            f"It names a browser, but {doctor.user_email} is not an active (provisioned) user "
            "here, so LibreChat could not be asked.",
            "Pass --user with the e-mail of an active account, ideally one kept for checks.",
        )
    probe = prober(doctor)
    ip = probe.probe_ip()
    try:
        token = async_to_sync(sessions.access_token)(user, client_ip=ip)
        answer = probe.call(
            "GET",
            f"{probe.base_url}/api/files/config",
            probe_ip=ip,
            headers={"Authorization": f"Bearer {token}"},
        )
    except sessions.SessionUnavailable as exc:
        return Finding(
            check,
            title,
            "WARN",
            f"It names a browser, but no LibreChat session could be opened for "
            f"{doctor.user_email}: {exc.message}",
            "Check that user's provisioning (admin, Users) and retry.",
        )
    except httpx.HTTPError as exc:
        return skipped(check, title, f"The probe failed ({type(exc).__name__}).")
    if answer.status == 200 and "Illegal request" in answer.text:
        return Finding(
            check,
            title,
            "FAIL",
            "LibreChat refused our User-Agent as a non-browser on /api/files/config (this "
            f"probe counted a violation against {doctor.user_email}).",
            "Set LIBRECHAT_USER_AGENT to a current desktop browser's User-Agent, then lift "
            "the ban on that user if LibreChat imposed one.",
        )
    if answer.status == 403:
        return Finding(
            check,
            title,
            "FAIL",
            f"LibreChat answered 403 (banned) for {doctor.user_email}.",
            "Lift the ban in LibreChat (or wait BAN_DURATION) and look for its cause.",
        )
    return Finding(
        check,
        title,
        "OK",
        f"LibreChat let it through its uaParser check (GET /api/files/config: {answer.status}).",
    )


def check_account_deletion(doctor: Doctor) -> Finding:
    """Deleting an account here deletes its LibreChat account as that user, which LibreChat's
    canDeleteAccount allows only with ALLOW_ACCOUNT_DELETION unset or true (or for its
    ADMIN). From outside that shows in two places: deletions of ours waiting on LibreChat's
    403, and, to a signed-in user, ``allowAccountDeletion`` in GET /api/config
    (api/server/routes/config.js; LibreChat-AI/LibreChat v0.8.8)."""
    check, title = "account_deletion", "LibreChat allows account deletion"
    refused = User.objects.exclude(deletion_requested_at=None).filter(
        deletion_error__contains="ALLOW_ACCOUNT_DELETION"
    )
    if refused.exists():
        return Finding(
            check,
            title,
            "FAIL",
            f"{refused.count()} account deletion(s) wait because LibreChat refuses to delete "
            "accounts (403 'You do not have permission to delete this account').",
            "Set ALLOW_ACCOUNT_DELETION=true (or remove it) in LibreChat's .env and restart "
            "it; the waiting deletions then finish by themselves.",
        )
    if not doctor.user_email:
        return Finding(
            check,
            title,
            "OK",
            "No deletion waits on LibreChat (--user EMAIL also asks LibreChat whether it "
            "allows deleting accounts: only a signed-in user can see that).",
        )
    if not prober(doctor).reachable:
        return skipped(check, title, "LibreChat is unreachable.")
    return _account_deletion_on_librechat(doctor, check, title)


def _account_deletion_on_librechat(doctor: Doctor, check: str, title: str) -> Finding:
    user = _active_user(doctor)
    if user is None:
        return skipped(check, title, f"{doctor.user_email} is not an active user here.")
    probe = prober(doctor)
    ip = probe.probe_ip()
    try:
        token = async_to_sync(sessions.access_token)(user, client_ip=ip)
        bearer = {"Authorization": f"Bearer {token}"}
        config = json.loads(
            probe.call("GET", f"{probe.base_url}/api/config", probe_ip=ip, headers=bearer).text
        )
        role = json.loads(
            probe.call("GET", f"{probe.base_url}/api/user", probe_ip=ip, headers=bearer).text
        ).get("role")
    except sessions.AdminAccountRefused:  # the proxy refuses it; LibreChat would answer
        role, config = "ADMIN", {}
    except (sessions.SessionUnavailable, httpx.HTTPError, ValueError, AttributeError) as exc:
        return skipped(check, title, f"LibreChat could not be asked ({type(exc).__name__}).")
    if role == "ADMIN":
        return Finding(
            check,
            title,
            "WARN",
            f"{doctor.user_email} is LibreChat's ADMIN, who may always delete itself, so "
            "LibreChat's answer says nothing about other users.",
            "Pass --user with a regular (non-admin) account.",
        )
    allowed = config.get("allowAccountDeletion") if isinstance(config, dict) else None
    if allowed is None:
        return Finding(
            check,
            title,
            "WARN",
            "This LibreChat does not say whether it allows deleting accounts (no "
            "allowAccountDeletion in /api/config): deletions here wait for ever if it does "
            "not.",
            "Make sure LibreChat's ALLOW_ACCOUNT_DELETION is unset or true.",
        )
    if not allowed:
        return Finding(
            check,
            title,
            "FAIL",
            "LibreChat refuses account deletion (ALLOW_ACCOUNT_DELETION=false): deleting a "
            "user here would wait for ever for its LibreChat account to go.",
            "Set ALLOW_ACCOUNT_DELETION=true (or remove it) in LibreChat's .env and restart it.",
        )
    return Finding(check, title, "OK", "LibreChat allows its users to delete their account.")
