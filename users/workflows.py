"""The durable LibreChat provisioning workflow (DBOS).

register (a 200 only means "maybe") -> log in to verify and read LibreChat's user id -> active,
unless LibreChat reports the account as its ADMIN (it was LibreChat's first): conflict.
Inputs, outputs and step results hold ids and messages only: DBOS stores them, so the password
is decrypted inside the steps and never leaves them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from dbos import DBOS
from django.conf import settings
from django.db import close_old_connections

from users import librechat
from users.crypto import DecryptionError
from users.librechat_admin import ADMIN_ROLE
from users.models import ProvisioningState, User
from users.provisioning import WORKFLOW_NAME, provisioning_record
from users.services import get_librechat_password

CONFLICT_MESSAGE = (
    "LibreChat already has an account with this e-mail and it does not accept the password we "
    "generated. Remove that account in LibreChat (there is no API to reset it), then use the "
    "'Re-provision' action."
)
ADMIN_CONFLICT_MESSAGE = (
    "LibreChat made this account its ADMIN: LibreChat gives ADMIN to its first account, and no "
    "operator admin existed when this one was registered. An end user must never hold "
    "LibreChat's admin rights, so it was not activated. Delete this account in LibreChat "
    "(`npm run delete-user <email>` in LibreChat), create the operator admin with `manage.py "
    "librechat_bootstrap --email <yours>` (docs/operations.md), then use the 'Re-provision' "
    "action on this user's admin page. `manage.py librechat_doctor` shows whether LibreChat "
    "has an operator admin."
)


# LibreChat failures come back as results; what still raises is our own database (a lock, a
# dropped connection), worth a few quick retries before the run ends in ERROR for reconciliation.
DATABASE_RETRIES: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 5,
    "interval_seconds": 0.5,
    "backoff_rate": 2.0,
}


class StepResult(TypedDict, total=False):
    outcome: str  # "ok", "active", "retry", "failed", "conflict"
    message: str
    rate_limited: bool
    retry_after: float
    librechat_user_id: str


def librechat_display_name(user: User) -> str:
    """LibreChat wants 3 to 80 characters (contract A1)."""
    name = (user.name or user.email.split("@")[0]).strip()[:80]
    return name if len(name) >= 3 else f"{name}___"[:3]


def _retry(exc: librechat.LibreChatError, user_id: int) -> StepResult:
    provisioning_record(
        user_id=user_id, state=ProvisioningState.PENDING, message=f"Retrying: {exc.message}"
    )
    return {
        "outcome": "retry",
        "message": exc.message,
        "rate_limited": exc.rate_limited,
        "retry_after": exc.retry_after or 0.0,
    }


@DBOS.step(name="users.provision.register", **DATABASE_RETRIES)
def register_step(user_id: int) -> StepResult:
    close_old_connections()
    try:
        user = User.objects.get(pk=user_id)
        librechat.register(
            email=user.email,
            password=get_librechat_password(user),
            name=librechat_display_name(user),
            client_ip=user.registration_ip,
        )
    except DecryptionError as exc:
        return {"outcome": "failed", "message": str(exc)}
    except librechat.LibreChatError as exc:
        if exc.permanent:
            return {
                "outcome": "failed",
                "message": f"LibreChat refused the registration ({exc.status}): {exc.message}",
            }
        return _retry(exc, user_id)
    finally:
        close_old_connections()
    return {"outcome": "ok"}


@DBOS.step(name="users.provision.verify", **DATABASE_RETRIES)
def verify_step(user_id: int) -> StepResult:
    close_old_connections()
    try:
        user = User.objects.get(pk=user_id)
        session = librechat.login(
            email=user.email, password=get_librechat_password(user), client_ip=user.registration_ip
        )
    except DecryptionError as exc:
        return {"outcome": "failed", "message": str(exc)}
    except librechat.LibreChatError as exc:
        if exc.message == librechat.INCORRECT_PASSWORD:
            return {"outcome": "conflict", "message": CONFLICT_MESSAGE}
        if exc.permanent:
            return {
                "outcome": "failed",
                "message": f"LibreChat refused the log-in ({exc.status}): {exc.message}",
            }
        return _retry(exc, user_id)
    else:
        if session.user.get("role") == ADMIN_ROLE:
            return {"outcome": "conflict", "message": ADMIN_CONFLICT_MESSAGE}
        # Verified: record it in this step (one checkpoint less per user).
        provisioning_record(
            user_id=user_id, state=ProvisioningState.ACTIVE, librechat_user_id=session.user_id
        )
        return {"outcome": "active", "librechat_user_id": session.user_id}
    finally:
        close_old_connections()


@DBOS.step(name="users.provision.record", **DATABASE_RETRIES)
def record_step(user_id: int, result: StepResult) -> str:
    """Record how a run failed (success is recorded by the verify step)."""
    close_old_connections()
    try:
        outcome = result["outcome"]
        state = ProvisioningState.CONFLICT if outcome == "conflict" else ProvisioningState.FAILED
        provisioning_record(
            user_id=user_id,
            state=state,
            message=result.get("message", ""),
            permanent=outcome != "retry",
        )
        return state
    finally:
        close_old_connections()


def _with_retries(step: Callable[[int], StepResult], user_id: int) -> StepResult:
    """Call a step until it stops asking for a retry: 429s are waited out as LibreChat says,
    connection errors and 5xx back off exponentially; both with bounded counts."""
    transient = waits = 0
    while True:
        result = step(user_id)
        if result["outcome"] != "retry":
            return result
        if result.get("rate_limited"):
            waits += 1
            if waits > settings.PROVISIONING_RATE_LIMIT_WAITS:
                return {
                    **result,
                    "message": f"Still rate-limited after {waits - 1} waits: {result['message']}",
                }
            delay = min(result.get("retry_after", 0.0), settings.PROVISIONING_RATE_LIMIT_MAX_WAIT_S)
        else:
            transient += 1
            if transient > settings.PROVISIONING_TRANSIENT_RETRIES:
                return {
                    **result,
                    "message": f"LibreChat still failing after {transient} attempts: "
                    f"{result['message']}",
                }
            delay = min(
                settings.PROVISIONING_BACKOFF_BASE_S * 2 ** (transient - 1),
                settings.PROVISIONING_BACKOFF_MAX_S,
            )
        DBOS.sleep(max(delay, 0.05))


@DBOS.workflow(name=WORKFLOW_NAME)
def provision_librechat_account(user_id: int) -> str:
    result = _with_retries(register_step, user_id)
    if result["outcome"] == "ok":
        result = _with_retries(verify_step, user_id)
    if result["outcome"] == "active":
        return ProvisioningState.ACTIVE
    return record_step(user_id, result)


BY_NAME: dict[str, Any] = {WORKFLOW_NAME: provision_librechat_account}
