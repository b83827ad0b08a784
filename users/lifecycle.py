"""Deactivating, reactivating and deleting accounts: the one place their steps are listed.

Each operation is a short, explicit tuple of steps below (``DEACTIVATION_STEPS``,
``DELETION_STEPS``): what happens at once, in the caller's transaction. What must reach LibreChat
or another app happens in the durable clean-up after commit, which sends one signal per
operation (``core.accounts``: ``account_deactivated``, ``account_erased``); a clean-up is one
receiver, connected with one line in its app's ``ready()``. users imports none of those apps.

* Deactivate: at once, in the caller's transaction, every JWT we issued and every web session
  stop working (``credentials_revoked_at``, refresh tokens blacklisted); the chat proxy refuses
  the user within ``CHAT_PROXY_USER_CACHE_S`` (at most 1 s). After commit a durable workflow
  ends the user's LibreChat session (``POST /api/auth/logout`` with its refresh cookie) and
  forgets the tokens we stored (users/account_workflows.py). Reactivating restores the log-in;
  the LibreChat account was never touched, so nothing else is needed.
* Delete: deactivate, then a durable workflow deletes the LibreChat account as the user (log
  in, ``DELETE /api/user/delete``; LibreChat has no admin delete), lets every app erase what it
  holds, and deletes our row. It waits while LibreChat is unreachable or refusing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from core import dbos
from core.errors import ApplicationError, ErrorCode
from users.models import User

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("hestami_ai.audit")

DELETION_STARTED_MESSAGE = (
    "Your account is being deleted, with your chat account and everything in it. You are "
    "signed out everywhere; the e-mail address can sign up again once the deletion is done "
    "(usually within a minute)."
)
DEACTIVATION_WORKFLOW = "users.deactivation_cleanup"
DELETION_WORKFLOW = "users.delete_account"


def deactivation_workflow_id(user: User) -> str:
    assert user.credentials_revoked_at is not None
    stamp = int(user.credentials_revoked_at.timestamp() * 1000)
    return f"account-deactivation-{user.uuid}-{stamp}"


def deletion_workflow_id(user: User) -> str:
    return f"account-deletion-{user.uuid}"


def _enqueue(name: str, wid: str, user_key: str) -> None:
    try:
        dbos.enqueue(name, wid, user_key)
    except Exception:
        # The user is refused already; reconciliation (users/tasks.py) starts the rest later.
        logger.exception("could not enqueue %s workflow_id=%s", name, wid)


# -- the steps ----------------------------------------------------------------------------------


def credentials_refuse(user: User) -> None:
    """From now on: access JWTs issued before are refused (by their `iat`), refresh JWTs are
    blacklisted, web sessions end (their hash covers the revocation time)."""
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(credentials_revoked_at=now)
    user.credentials_revoked_at = now
    outstanding = OutstandingToken.objects.filter(user_id=user.pk, blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


def deactivation_cleanup_start(user: User) -> None:
    """After commit: the durable clean-up (LibreChat log-out, apps' receivers)."""
    wid, key = deactivation_workflow_id(user), str(user.uuid)
    transaction.on_commit(lambda: _enqueue(DEACTIVATION_WORKFLOW, wid, key), robust=True)


def deletion_start(user: User) -> None:
    """After commit: the durable deletion (users/account_workflows.py)."""
    wid, key = deletion_workflow_id(user), str(user.uuid)
    transaction.on_commit(lambda: _enqueue(DELETION_WORKFLOW, wid, key), robust=True)


Step = Callable[[User], None]

# Run when an active account becomes inactive, however that happens (admin form or action,
# the staff API, a save() in a shell): see users/signals.py.
DEACTIVATION_STEPS: tuple[Step, ...] = (
    credentials_refuse,
    deactivation_cleanup_start,
)
# Run when an account's deletion is requested (it was deactivated just before).
DELETION_STEPS: tuple[Step, ...] = (deletion_start,)


# -- the services -------------------------------------------------------------------------------


class AccountBeingDeleted(ApplicationError):
    status = 409
    code = ErrorCode.ACCOUNT_BEING_DELETED

    def __init__(self) -> None:
        super().__init__("This account is being deleted; it cannot be reactivated.")


def account_deactivated_effects(user: User) -> None:
    """Everything deactivation does besides ``is_active = False`` (users/signals.py calls it)."""
    for step in DEACTIVATION_STEPS if not user.deletion_requested_at else (credentials_refuse,):
        step(user)
    audit_logger.info("account deactivated user_id=%s", user.pk)


def account_deactivate(*, user: User) -> None:
    """Refuse the user everywhere at once; end their LibreChat session after commit."""
    with transaction.atomic():
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])  # users/signals.py runs the steps


def account_reactivate(*, user: User) -> None:
    """Let the user log in again (with new credentials: the revoked ones stay revoked)."""
    if user.deletion_requested_at:
        raise AccountBeingDeleted
    with transaction.atomic():
        if not user.is_active:
            user.is_active = True
            user.save(update_fields=["is_active"])
            audit_logger.info("account reactivated user_id=%s", user.pk)


def account_delete(*, user: User) -> str:
    """Start deleting the account: refused everywhere at once, gone once LibreChat's account is.

    Idempotent: a second request joins the running deletion. Returns the workflow id.
    """
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        first = locked.deletion_requested_at is None
        if first:
            locked.deletion_requested_at = timezone.now()
            locked.save(update_fields=["deletion_requested_at"])
        if locked.is_active:
            locked.is_active = False
            locked.save(update_fields=["is_active"])  # users/signals.py refuses credentials
        for step in DELETION_STEPS:
            step(locked)
    if first:
        audit_logger.info("account deletion requested user_id=%s", user.pk)
    user.is_active, user.deletion_requested_at = False, locked.deletion_requested_at
    return deletion_workflow_id(locked)


def deletions_reconcile() -> int:
    """Start (or join: the id is the user's) the deletion of every account whose deletion was
    requested: a request whose enqueue was lost (DBOS unreachable then) still completes."""
    pending = list(User.objects.exclude(deletion_requested_at=None))
    for user in pending:
        _enqueue(DELETION_WORKFLOW, deletion_workflow_id(user), str(user.uuid))
    return len(pending)
