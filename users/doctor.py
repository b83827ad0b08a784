"""The doctor's check of what users owns on LibreChat: its ADMIN is our operator's account. The
admin's log-in also reads LibreChat's USER role for the ``remote_agents`` check
(users/doctor_remote_agents.py), through the run's ``RoleRead``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import librechat
from core.doctor import Doctor, Finding, skipped
from librechat.doctor import prober
from users.crypto import DecryptionError
from users.librechat_admin import librechat_admin_get, librechat_admin_login

# The role whose REMOTE_AGENTS permission the agent API keys need (users/doctor_remote_agents.py).
USER_ROLE = "USER"


@dataclass
class RoleRead:
    """What the operator admin's log-in read of the USER role in this run, or why it did not."""

    document: dict[str, Any] | None = None
    error: str = "the admin did not log in"


def operator_admin_checks(doctor: Doctor) -> list[Finding]:
    return [check_operator_admin(doctor)]


def check_operator_admin(doctor: Doctor) -> Finding:
    """LibreChat makes its first account ADMIN: it must be the operator's, set up by
    `manage.py librechat_bootstrap`, whose stored credentials log in here and must come back
    with the role ADMIN (users/librechat_admin.py)."""
    check, title = "operator_admin", "LibreChat admin of our own"
    probe = prober(doctor)
    if not probe.reachable:
        return skipped(check, title, "LibreChat is unreachable.")
    admin = librechat_admin_get()
    if admin is None:
        return Finding(
            check,
            title,
            "FAIL",
            "No LibreChat admin of ours is set up: LibreChat makes its first registered "
            "account ADMIN, so the first user provisioned would hold LibreChat's admin rights "
            "(provisioning refuses to activate such a user).",
            "Run `manage.py librechat_bootstrap --email <operator address>` before "
            "provisioning anyone (docs/operations.md).",
        )
    try:
        login = librechat_admin_login(admin, client_ip=probe.probe_ip(), read_role=USER_ROLE)
    except DecryptionError:
        return Finding(
            check,
            title,
            "FAIL",
            f"The stored password of {admin.email} cannot be decrypted with any "
            "LIBRECHAT_ENCRYPTION_KEY key.",
            "Put the removed key back in LIBRECHAT_ENCRYPTION_KEY, or adopt the account again: "
            "`manage.py librechat_bootstrap --email ... --password-stdin`.",
        )
    except librechat.LibreChatError as exc:
        if not exc.permanent and exc.message != librechat.EMAIL_DOES_NOT_EXIST:
            return Finding(
                check, title, "WARN", f"{admin.email} could not log in now: {exc.message}"
            )
        return Finding(
            check,
            title,
            "FAIL",
            f"{admin.email} cannot log in to LibreChat: {exc.message}",
            "Run `manage.py librechat_bootstrap --repair` (it registers the account again "
            "after LibreChat's database was reset).",
        )
    read = doctor.shared(RoleRead, RoleRead)
    read.document, read.error = login.read_role, login.read_role_error
    if not login.is_admin:
        return Finding(
            check,
            title,
            "FAIL",
            f"{admin.email} logs in as {login.role or 'no role'}, not ADMIN: LibreChat's ADMIN "
            "is another account, perhaps an end user's.",
            "List LibreChat's admins (mongosh: db.users.find({role: 'ADMIN'})), demote or "
            f"delete any that is not ours, give {admin.email} the role ADMIN, then run "
            "`manage.py librechat_bootstrap --repair`.",
        )
    return Finding(check, title, "OK", f"{admin.email} logs in as LibreChat's ADMIN.")
