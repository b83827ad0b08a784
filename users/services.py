"""Writes on users: registration, LibreChat password access, key rotation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from core.errors import ApplicationError, ErrorCode
from users.crypto import (
    decrypt_secret,
    is_encrypted_with_primary_key,
    new_encrypted_librechat_password,
    rotate_secret,
)
from users.managers import normalize_email
from users.models import User

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("hestami_ai.audit")


class EmailAlreadyRegistered(ApplicationError):
    status = 409
    code = ErrorCode.EMAIL_TAKEN

    def __init__(self, *, being_deleted: bool = False) -> None:
        message = (
            "The account with this e-mail is being deleted; try again in a few minutes."
            if being_deleted
            else "An account with this e-mail already exists."
        )
        super().__init__(message, fields={"email": [message]})


def user_by_key(key: str | int) -> User | None:
    """The user a workflow names: by uuid (or, for runs started before uuids, by primary key)."""
    lookup = {"pk": key} if isinstance(key, int) else {"uuid": key}
    return User.objects.filter(**lookup).first()


def user_create(*, email: str, password: str, name: str, client_ip: str | None = None) -> User:
    """Register a user (``User.save()`` gives them an encrypted LibreChat password).

    Raises ``ApplicationError`` for a weak password (400) and ``EmailAlreadyRegistered`` (409).
    Once the transaction commits, the LibreChat provisioning workflow starts in the background
    (users/signals.py); this returns at once, whatever LibreChat's state.
    """
    email = normalize_email(email)
    candidate = User(email=email, name=name)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ApplicationError(
            "The password is too weak.",
            code=ErrorCode.INVALID,
            fields={"password": list(exc.messages)},
        ) from None
    existing = User.objects.filter(email=email).values_list("deletion_requested_at").first()
    if existing is not None:
        raise EmailAlreadyRegistered(being_deleted=existing[0] is not None)
    user = User(email=email, name=name, registration_ip=client_ip)
    user.set_password(password)  # slow by design: hash before taking the database's write lock
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # a concurrent registration won the race
        raise EmailAlreadyRegistered from None
    logger.info("user registered user_id=%s", user.pk)
    return user


def librechat_password_ensure(*, user_id: int) -> bool:
    """Give a user without a LibreChat password one (rows written without ``User.save()``:
    fixtures, data migrations). Atomic: of two concurrent calls one writes. True if it did."""
    written = User.objects.filter(pk=user_id, librechat_password_encrypted="").update(
        librechat_password_encrypted=new_encrypted_librechat_password()
    )
    if written:
        logger.info("librechat password generated user_id=%s", user_id)
    return bool(written)


def librechat_password_decrypt(user: User) -> str:
    """The user's LibreChat password in plain text. Never log or store what this returns."""
    if not user.librechat_password_encrypted:
        raise ApplicationError(
            "This account has no LibreChat password.",
            code=ErrorCode.NO_LIBRECHAT_PASSWORD,
            status=404,
        )
    return decrypt_secret(user.librechat_password_encrypted)


def librechat_password_read(*, user: User, via: str) -> str:
    """Read the caller's own password for a client, leaving an audit record without the secret."""
    password = librechat_password_decrypt(user)
    audit_logger.info("librechat_password_read user_id=%s via=%s", user.pk, via)
    return password


def encrypted_field_rotate(
    queryset: QuerySet[Any],
    field: str,
    *,
    batch_size: int = 500,
    progress: Callable[[int], object] | None = None,
) -> tuple[int, int]:
    """Re-encrypt ``field`` of every row of ``queryset`` under the first key; return (rotated,
    already_current).

    Each batch commits on its own, so an interrupted run keeps its work and a re-run only
    touches the rows that still need it.
    """
    rotated = current = last_pk = 0
    while batch := list(
        queryset.filter(pk__gt=last_pk).order_by("pk").only("pk", field)[:batch_size]
    ):
        last_pk = batch[-1].pk
        stale = [row for row in batch if not is_encrypted_with_primary_key(getattr(row, field))]
        for row in stale:
            setattr(row, field, rotate_secret(getattr(row, field)))
        with transaction.atomic():
            queryset.model.objects.bulk_update(stale, [field])
        rotated += len(stale)
        current += len(batch) - len(stale)
        if progress:
            progress(len(batch))
    return rotated, current


def librechat_passwords_rotate(
    *, batch_size: int = 500, progress: Callable[[int], object] | None = None
) -> tuple[int, int]:
    """Re-encrypt every stored password under the first key; return (rotated, already_current)."""
    return encrypted_field_rotate(
        User.objects.exclude(librechat_password_encrypted=""),
        "librechat_password_encrypted",
        batch_size=batch_size,
        progress=progress,
    )


def librechat_passwords_count() -> int:
    return User.objects.exclude(librechat_password_encrypted="").count()
