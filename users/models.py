from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from users.managers import UserManager, normalize_email


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

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

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
