"""The durable halves of deactivation and deletion (DBOS); users/lifecycle.py starts them.

Inputs are the user's uuid; the password is decrypted inside the step that logs in and never
leaves it. Both workflows are keyed on the user (``account-deactivation-<uuid>-<revocation>``,
``account-deletion-<uuid>``), so a repeated request joins the running one, and each step is
idempotent, so a run recovered after a crash repeats at most the step it was in:

* a deletion that dies after LibreChat deleted the account logs in again on recovery, is told
  "Email does not exist." and goes on;
* one that dies after our row went finds no row and ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypedDict

from dbos import DBOS
from django.conf import settings
from django.db import close_old_connections, transaction
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

import librechat
from core import dbos
from core.accounts import account_deactivated, account_erased
from core.dbos import DATABASE_RETRIES
from users.crypto import DecryptionError
from users.lifecycle import DEACTIVATION_WORKFLOW, DELETION_WORKFLOW
from users.models import User
from users.provisioning import TERMINAL_STATUSES, current_workflow_id
from users.services import librechat_password_decrypt, user_by_key

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("hestami_ai.audit")


class Outcome(TypedDict):
    done: bool
    message: str


def _done(message: str = "") -> Outcome:
    return {"done": True, "message": message}


def _not_yet(message: str) -> Outcome:
    return {"done": False, "message": message}


def _backoff(attempt: int) -> float:
    return float(
        min(
            settings.PROVISIONING_BACKOFF_BASE_S * 2 ** (attempt - 1),
            settings.PROVISIONING_BACKOFF_MAX_S,
        )
    )


def _receivers_failed(responses: list[tuple[Any, Any]]) -> str:
    return "; ".join(
        f"{getattr(receiver, '__qualname__', receiver)}: {response}"[:300]
        for receiver, response in responses
        if isinstance(response, Exception)
    )


# -- deactivation ---------------------------------------------------------------------------------


@DBOS.step(name="users.deactivation.notify", **DATABASE_RETRIES)
def deactivation_notify_step(user_key: str, give_up: bool) -> Outcome:
    """Tell every app (``account_deactivated``): chat logs the LibreChat session out and forgets
    our copy of its tokens."""
    close_old_connections()
    try:
        user = user_by_key(user_key)
        if user is None or user.is_active:
            return _done("reactivated or deleted meanwhile: nothing to end")
        responses = account_deactivated.send_robust(sender=User, user=user, give_up=give_up)
        failed = _receivers_failed(responses)
        return _not_yet(failed) if failed else _done()
    finally:
        close_old_connections()


@DBOS.workflow(name=DEACTIVATION_WORKFLOW)
def deactivation_cleanup(user_key: str) -> str:
    """Retried while LibreChat cannot be told (PROVISIONING_* back-off and count), then once more
    with ``give_up``: the receivers drop what they hold even if LibreChat never heard."""
    retries = settings.PROVISIONING_TRANSIENT_RETRIES
    for attempt in range(1, retries + 2):
        outcome = deactivation_notify_step(user_key, attempt > retries)
        if outcome["done"]:
            return "done"
        logger.warning("deactivation clean-up retrying: %s", outcome["message"])
        if attempt <= retries:
            DBOS.sleep(_backoff(attempt))
    return "gave up"


# -- deletion -------------------------------------------------------------------------------------


def librechat_call_margin_s() -> float:
    """Long enough for a LibreChat call already sent to have ended (answered or timed out)."""
    return librechat.longest_call_s() + 1.0


@DBOS.step(name="users.deletion.stop_provisioning", **DATABASE_RETRIES)
def stop_provisioning_step(user_key: str) -> bool:
    """Cancel a provisioning run still going; True if there was one (a register call of it may
    be in flight, and must land before we look for the account)."""
    close_old_connections()
    try:
        user = user_by_key(user_key)
        wid = current_workflow_id(user) if user else None
        if wid is None or dbos.workflow_status(wid) in (TERMINAL_STATUSES | {None}):
            return False
        dbos.cancel(wid)
        logger.info("provisioning cancelled for a deletion workflow_id=%s", wid)
        return True
    finally:
        close_old_connections()


@DBOS.step(name="users.deletion.librechat", **DATABASE_RETRIES)
def librechat_delete_step(user_key: str) -> Outcome:
    """Delete the LibreChat account as its user: log in, then ``DELETE /api/user/delete``
    (api/server/routes/user.js: requireJwtAuth, canDeleteAccount; LibreChat has no admin delete,
    contract item 21)."""
    close_old_connections()
    try:
        user = user_by_key(user_key)
        if user is None:
            return _done("our row is gone: deleted earlier")
        if not user.provisioning_attempts and not user.librechat_user_id:
            return _done("never registered in LibreChat")
        try:
            session = librechat.login(
                email=user.email,
                password=librechat_password_decrypt(user),
                client_ip=user.registration_ip,
            )
            librechat.delete_account(
                access_token=session.access_token, client_ip=user.registration_ip
            )
        except DecryptionError as exc:
            return _not_yet(f"Cannot log in to LibreChat as the user: {exc}")
        except librechat.LibreChatError as exc:
            if exc.message == librechat.EMAIL_DOES_NOT_EXIST:
                return _done("LibreChat has no account with this e-mail (any more)")
            if exc.message == librechat.INCORRECT_PASSWORD:
                # A conflict: that account was never ours to delete.
                return _done("LibreChat's account with this e-mail is not ours: left alone")
            return _not_yet(_deletion_refusal(exc))
        audit_logger.info(
            "librechat account deleted user_id=%s librechat_user_id=%s", user.pk, session.user_id
        )
        return _done()
    finally:
        close_old_connections()


def _deletion_refusal(exc: librechat.LibreChatError) -> str:
    if exc.status == 403 and exc.message == librechat.DELETION_NOT_ALLOWED:
        return (
            "LibreChat refuses account deletion (403: ALLOW_ACCOUNT_DELETION is false). Set "
            "ALLOW_ACCOUNT_DELETION=true in LibreChat's .env and restart it; the deletion then "
            "finishes by itself."
        )
    if exc.status is None:  # unreachable or timed out: the message says so
        return exc.message
    return f"LibreChat answered {exc.status}: {exc.message}"


@DBOS.step(name="users.deletion.erase", **DATABASE_RETRIES)
def erase_step(user_key: str) -> Outcome:
    """Every app erases what it holds (``account_erased``), then our row and tokens go."""
    close_old_connections()
    try:
        user = user_by_key(user_key)
        if user is None:
            return _done("deleted earlier")
        failed = _receivers_failed(account_erased.send_robust(sender=User, user=user))
        if failed:
            return _not_yet(failed)
        with transaction.atomic():
            OutstandingToken.objects.filter(user_id=user.pk).delete()
            User.objects.filter(pk=user.pk).delete()
        audit_logger.info("account deleted user_id=%s", user.pk)
        return _done()
    finally:
        close_old_connections()


@DBOS.step(name="users.deletion.note", **DATABASE_RETRIES)
def note_step(user_key: str, message: str) -> None:
    """Why the deletion waits, for the admin."""
    close_old_connections()
    try:
        User.objects.filter(uuid=user_key).update(deletion_error=message[:1000])
    finally:
        close_old_connections()


def _until_done(step: Callable[[str], Outcome], user_key: str) -> None:
    """Repeat a step until it is done, backing off to PROVISIONING_BACKOFF_MAX_S: a deletion
    waits for LibreChat (down, or refusing until an operator fixes it) as long as it takes."""
    attempt = 0
    while True:
        try:
            outcome = step(user_key)
        except Exception as exc:  # a step that kept raising (our database): try again later
            outcome = _not_yet(dbos.step_failure(exc))
        if outcome["done"]:
            return
        attempt += 1
        logger.warning("account deletion waiting: %s", outcome["message"])
        note_step(user_key, outcome["message"])
        DBOS.sleep(_backoff(attempt))


@DBOS.workflow(name=DELETION_WORKFLOW)
def delete_account(user_key: str) -> str:
    if stop_provisioning_step(user_key):
        DBOS.sleep(librechat_call_margin_s())
    _until_done(librechat_delete_step, user_key)
    _until_done(erase_step, user_key)
    return "deleted"


BY_NAME: dict[str, Any] = {
    DEACTIVATION_WORKFLOW: deactivation_cleanup,
    DELETION_WORKFLOW: delete_account,
}
