"""Reads on users that more than one page or API shows."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from users.models import ProvisioningState, User


@dataclass(frozen=True)
class ChatAccountStatus:
    """What is true about the user's chat (LibreChat) account and what they can do about it:
    the same words in the proxy's 409, on the chat page and on the account page."""

    state: str
    ready: bool
    # Something is still happening by itself (a run going, or another one coming).
    retrying: bool
    message: str


PENDING_MESSAGE = (
    "Your chat account is being set up. This usually takes a few seconds; chat opens as soon "
    "as it is ready."
)
RETRYING_MESSAGE = (
    "Setting up your chat account failed for now because the chat service did not answer. We "
    "try again automatically within a few minutes; you do not need to do anything."
)
NEEDS_ADMIN_MESSAGE = (
    "Your chat account could not be set up, and trying again will not help: an administrator "
    "has to fix it. Please contact support. Your account here keeps working meanwhile."
)
CONFLICT_MESSAGE = (
    "Your chat account could not be set up: the chat service already has an account with your "
    "e-mail address that we cannot use. An administrator has to resolve this; please contact "
    "support. Your account here keeps working meanwhile."
)


def will_retry(user: User) -> bool:
    """Reconciliation starts another run by itself (users/provisioning.py)."""
    return (
        user.provisioning_state == ProvisioningState.FAILED
        and not user.provisioning_permanent
        and user.provisioning_attempts < settings.PROVISIONING_MAX_RUNS
    )


def chat_account_status(user: User) -> ChatAccountStatus:
    state = user.provisioning_state
    if state == ProvisioningState.ACTIVE:
        return ChatAccountStatus(state, ready=True, retrying=False, message="")
    if state == ProvisioningState.PENDING:
        return ChatAccountStatus(state, ready=False, retrying=True, message=PENDING_MESSAGE)
    if state == ProvisioningState.CONFLICT:
        return ChatAccountStatus(state, ready=False, retrying=False, message=CONFLICT_MESSAGE)
    if will_retry(user):
        return ChatAccountStatus(state, ready=False, retrying=True, message=RETRYING_MESSAGE)
    return ChatAccountStatus(state, ready=False, retrying=False, message=NEEDS_ADMIN_MESSAGE)
