from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar
from uuid import uuid4

from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac

from users.crypto import new_encrypted_librechat_password
from users.managers import UserManager, normalize_email

# LibreChat keys its accounts on the e-mail and has no API to change another user's; ours is the
# log-in there too, so it cannot change here either (docs/provisioning.md).
EMAIL_CHANGE_REFUSED = (
    "The e-mail address cannot be changed: it is also the log-in of this user's LibreChat "
    "account, which LibreChat cannot rename. Delete the account and sign up again instead."
)


# Written by the workflows and lifecycle services with queryset updates or explicit
# update_fields, while a form or a shell may hold an older copy of the row: a plain save() of
# that copy must not put their old values back (a user shown `pending` again, a revocation
# undone). See User.save().
SERVICE_OWNED_FIELDS = frozenset(
    {
        "librechat_user_id",
        "librechat_synced_at",
        "librechat_password_encrypted",
        "provisioning_state",
        "provisioning_error",
        "provisioning_attempts",
        "provisioning_permanent",
        "provisioning_updated_at",
        "credentials_revoked_at",
        "deletion_requested_at",
        "deletion_error",
    }
)


class ProvisioningState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    CONFLICT = "conflict", "Conflict"


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with their e-mail; Django owns the identity, LibreChat mirrors it."""

    email = models.EmailField("e-mail address", max_length=254, unique=True)
    name = models.CharField("display name", max_length=80)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    # This row's identity outside this database, never reused: workflow ids and inputs carry it,
    # so a fresh app database (whose ids start at 1 again) never meets an old database's runs in
    # a DBOS system database that was kept.
    uuid = models.UUIDField("identity", default=uuid4, unique=True, editable=False)

    # The LibreChat account this user is mirrored to (see docs/architecture.md).
    librechat_user_id = models.CharField(max_length=64, blank=True, default="")
    librechat_synced_at = models.DateTimeField(null=True, blank=True)
    # Fernet ciphertext (MultiFernet, see users/crypto.py); never shown, never looked up.
    librechat_password_encrypted = models.TextField(blank=True, default="", editable=False)
    provisioning_state = models.CharField(
        max_length=16,
        choices=ProvisioningState.choices,
        default=ProvisioningState.PENDING,
        db_index=True,
    )
    provisioning_error = models.TextField(blank=True, default="")
    # Runs of the provisioning workflow started so far; the current run's id derives from it.
    provisioning_attempts = models.PositiveIntegerField(default=0)
    # The last failure cannot be cured by retrying (LibreChat refused the input or registration).
    provisioning_permanent = models.BooleanField(default=False)
    provisioning_updated_at = models.DateTimeField(default=timezone.now)
    # Sent to LibreChat as X-Forwarded-For, which keys its per-IP limits on it (contract A5).
    registration_ip = models.GenericIPAddressField(null=True, blank=True)

    # Access and refresh JWTs issued, and web sessions opened, before this moment are refused:
    # set when the account is deactivated (users/lifecycle.py).
    credentials_revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The account is being deleted: the row goes once its LibreChat account is gone.
    deletion_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Why the deletion waits (LibreChat down, or refusing), for the admin.
    deletion_error = models.TextField(blank=True, default="", editable=False)

    objects: ClassVar[UserManager] = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> User:
        instance = super().from_db(db, field_names, values, **kwargs)
        # What the database holds, to tell a change of e-mail or of is_active on save.
        instance._stored = dict(zip(field_names, values, strict=True))
        return instance

    def stored_value(self, field: str) -> Any:
        """The field's value when this instance was read (None for a new or partial instance)."""
        return getattr(self, "_stored", {}).get(field)

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)
        stored = self.stored_value("email")
        if stored is not None and stored != self.email:
            raise ValidationError({"email": EMAIL_CHANGE_REFUSED})
        if self.deletion_requested_at and self.is_active:
            raise ValidationError({"is_active": "This account is being deleted."})

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding:
            if not self.librechat_password_encrypted:
                # Every way of creating a user (sign-up, admin, createsuperuser, create_user)
                # gets its LibreChat password here; rows that bypass save() (fixtures, data
                # migrations) get one from the workflow (services.librechat_password_ensure).
                self.librechat_password_encrypted = new_encrypted_librechat_password()
        elif self.stored_value("email") not in (None, self.email):
            raise ValueError(EMAIL_CHANGE_REFUSED)  # forms show it first, via clean()
        elif kwargs.get("update_fields") is None and not args and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in SERVICE_OWNED_FIELDS
            ]
        super().save(*args, **kwargs)
        self._stored = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        """Django's hash of the password, plus the revocation time once there is one: deactivating
        the account ends every web session it had, as a password change does, and reactivating
        it does not bring them back. (Django's SECRET_KEY_FALLBACKS still apply.)"""
        if self.credentials_revoked_at is None:
            return str(super()._get_session_auth_hash(secret=secret))  # type: ignore[misc]
        return salted_hmac(
            "users.User.get_session_auth_hash",
            f"{self.password}|{self.credentials_revoked_at.isoformat()}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name


class LibreChatAdmin(models.Model):
    """The operator's own LibreChat account, holding LibreChat's ADMIN role (docs/operations.md).

    LibreChat makes its first registered account ADMIN (contract A1), so `manage.py
    librechat_bootstrap` creates this one before any user is provisioned, and `manage.py
    librechat_doctor` logs in with it to see that LibreChat's ADMIN is ours. One row at most;
    its password is kept like a user's (Fernet ciphertext, users/crypto.py, rotated with them).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    email = models.EmailField("e-mail address", max_length=254)
    name = models.CharField(max_length=80)
    password_encrypted = models.TextField(editable=False)
    librechat_user_id = models.CharField(max_length=64, blank=True, default="")
    # The role LibreChat reported at the last log-in, and when that was ADMIN.
    role = models.CharField(max_length=32, blank=True, default="")
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "LibreChat operator admin"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="users_librechatadmin_one_row")
        ]

    def __str__(self) -> str:
        return self.email


class LibreChatAgentKey(models.Model):
    """The user's LibreChat agent API key, for LibreChat's remote agents API (docs/openai-api.md).

    Created on the server, as the user, through LibreChat's ``POST /api/api-keys`` the first time
    the user calls ``/api/v1``; never shown to anyone. The key is Fernet ciphertext like the
    LibreChat password (users/crypto.py, rotated with it); ``librechat_key_id`` is LibreChat's id
    of it, with which it is deleted when the account is deactivated.
    """

    user = models.OneToOneField(
        User, on_delete=models.CASCADE, primary_key=True, related_name="librechat_agent_key"
    )
    librechat_key_id = models.CharField(max_length=64, editable=False)
    key_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "LibreChat agent API key"

    def __str__(self) -> str:
        return f"LibreChat agent API key of user {self.user_id}"
