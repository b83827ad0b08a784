"""The operator's LibreChat admin: created before any user is provisioned, so that no end user
becomes LibreChat's ADMIN.

LibreChat gives the ADMIN role to its first registered account (contract A1,
`api/server/services/AuthService.js registerUser`: no users yet means ADMIN), and an ADMIN reaches
LibreChat's admin and role routes. So the operator's own account must be that first one:
`manage.py librechat_bootstrap` registers it (or adopts one made with LibreChat's
`npm run create-user`), logs in to read the role LibreChat gives it, and keeps its password like
a user's, encrypted with LIBRECHAT_ENCRYPTION_KEY. `manage.py librechat_doctor` logs in with it
again to see that LibreChat's ADMIN is still ours, and provisioning refuses to activate an end
user whom LibreChat reports as ADMIN (users/workflows.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

import librechat
from users.crypto import (
    decrypt_secret,
    encrypt_secret,
    generate_librechat_password,
    is_encrypted_with_primary_key,
    rotate_secret,
)
from users.managers import normalize_email
from users.models import LibreChatAdmin

logger = logging.getLogger(__name__)

ADMIN_ROLE = "ADMIN"


class BootstrapError(Exception):
    """The admin could not be set up; ``message`` says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class AdminLogin:
    """What LibreChat answered when the stored admin logged in."""

    email: str
    role: str
    librechat_user_id: str
    # The role document asked for with `read_role` (GET /api/roles/:name), or why it is missing.
    read_role: dict[str, Any] | None = None
    read_role_error: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


def librechat_admin_get() -> LibreChatAdmin | None:
    return LibreChatAdmin.objects.filter(pk=1).first()


def librechat_admin_login(
    admin: LibreChatAdmin, *, client_ip: str | None = None, read_role: str | None = None
) -> AdminLogin:
    """Log in as the stored admin, read the role (and, with ``read_role``, that role's document),
    log out again (no session is left behind).

    Raises ``LibreChatError`` and ``users.crypto.DecryptionError``."""
    session = librechat.login(
        email=admin.email, password=decrypt_secret(admin.password_encrypted), client_ip=client_ip
    )
    document: dict[str, Any] | None = None
    error = ""
    if read_role:
        try:
            document = librechat.get_role(
                access_token=session.access_token, role=read_role, client_ip=client_ip
            )
        except librechat.LibreChatError as exc:
            error = exc.message
    try:
        librechat.logout(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            client_ip=client_ip,
        )
    except librechat.LibreChatError as exc:  # the session expires by itself
        logger.warning("librechat admin logout failed: %s", exc.message)
    return AdminLogin(
        admin.email, str(session.user.get("role") or ""), session.user_id, document, error
    )


def librechat_admin_bootstrap(
    *, email: str | None, name: str, password: str | None = None, repair: bool = False
) -> tuple[LibreChatAdmin, bool]:
    """Make sure the operator's LibreChat admin exists and holds ADMIN. Idempotent.

    Returns the admin and whether anything was done: once it is set up and verified, a call does
    nothing (no request to LibreChat, no write) unless ``repair`` (after LibreChat's database
    was reset: register and verify again with the stored credentials). ``password``: adopt an
    account that already exists in LibreChat instead of registering one. Raises
    ``BootstrapError``.
    """
    admin = librechat_admin_get()
    if admin is not None and email and normalize_email(email) != admin.email:
        raise BootstrapError(
            f"The LibreChat admin is already set up as {admin.email}. There is one; to replace "
            "it, delete it in the Django admin first."
        )
    if admin is not None and admin.verified_at and not repair and password is None:
        return admin, False
    if admin is None:
        if not email:
            raise BootstrapError("Give the admin's e-mail address (--email) the first time.")
        # Stored before LibreChat is asked, so a crash in between loses no password.
        admin = LibreChatAdmin.objects.create(
            email=normalize_email(email),
            name=name,
            password_encrypted=encrypt_secret(password or generate_librechat_password()),
        )
    elif password is not None:
        admin.password_encrypted = encrypt_secret(password)
        admin.save(update_fields=["password_encrypted"])
    if password is None:
        _register(admin)
    try:
        login = librechat_admin_login(admin)
    except librechat.LibreChatError as exc:
        raise BootstrapError(_login_failure(admin, exc)) from None
    _record(admin, login)
    if not login.is_admin:
        raise BootstrapError(
            f"LibreChat made {admin.email} a {login.role or 'user without a role'}, not ADMIN: "
            "LibreChat already had accounts, and its first one holds ADMIN. If that is an end "
            "user's, delete that account in LibreChat (`npm run delete-user <email>` in "
            "LibreChat; there is no API for it) and this one too, then run this again with "
            "--repair; or give this account the ADMIN role in LibreChat's database (mongosh: "
            "db.users.updateOne({email: ...}, {$set: {role: 'ADMIN'}})) and run this again with "
            "--repair. The credentials are stored."
        )
    logger.info("librechat admin verified email=%s", admin.email)
    return admin, True


def _register(admin: LibreChatAdmin) -> None:
    try:
        librechat.register(
            email=admin.email, password=decrypt_secret(admin.password_encrypted), name=admin.name
        )
    except librechat.LibreChatError as exc:
        raise BootstrapError(
            f"LibreChat refused to register {admin.email} ({exc.status}): {exc.message}. "
            "`manage.py librechat_doctor` shows whether LibreChat accepts registrations."
        ) from None


def _login_failure(admin: LibreChatAdmin, exc: librechat.LibreChatError) -> str:
    if exc.message == librechat.INCORRECT_PASSWORD:
        return (
            f"LibreChat already has an account {admin.email} with another password. Give its "
            "password (--password-stdin) to adopt it, or pick another --email after deleting "
            "the stored admin in the Django admin."
        )
    return f"LibreChat refused the log-in of {admin.email} ({exc.status}): {exc.message}"


def _record(admin: LibreChatAdmin, login: AdminLogin) -> None:
    admin.librechat_user_id = login.librechat_user_id
    admin.role = login.role
    admin.verified_at = timezone.now() if login.is_admin else None
    admin.save(update_fields=["librechat_user_id", "role", "verified_at"])


def librechat_admin_rotate() -> bool:
    """Re-encrypt the admin's password under the first key; whether there was one to rotate."""
    admin = librechat_admin_get()
    if admin is None or is_encrypted_with_primary_key(admin.password_encrypted):
        return False
    admin.password_encrypted = rotate_secret(admin.password_encrypted)
    admin.save(update_fields=["password_encrypted"])
    return True
