"""What every app may hear about an account: the signals users sends after commit, from the
durable clean-ups of users/account_workflows.py (the steps: users/lifecycle.py).

They live here, under the apps, so an app that keeps something for a user receives them with one
line in its ``ready()`` without importing users:

* ``account_deactivated`` (sender, user, give_up): end what you hold open for the user elsewhere
  (chat: the LibreChat session). Idempotent; raise to be retried while LibreChat is unreachable;
  with ``give_up`` drop your copy anyway.
* ``account_erased`` (sender, user): delete what you hold for the user; LibreChat's own data went
  with its account just before (chat: the stored session; code_interpreter: the sessions owned
  by ``user:<LibreChat id>``). Idempotent; raise to be retried.
"""

from __future__ import annotations

from typing import Protocol

from django.dispatch import Signal

account_deactivated = Signal()
account_erased = Signal()


class Account(Protocol):
    """What a receiver may read from the ``user`` it is sent (users.models.User)."""

    @property
    def pk(self) -> int: ...

    @property
    def librechat_user_id(self) -> str: ...
