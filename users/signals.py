"""Receivers that turn model events into the services that own them (no logic of their own).

Every way of creating a user ends in ``post_save`` with ``created`` (sign-up, the admin,
``createsuperuser``, ``create_user``, fixtures), so provisioning starts here, after commit; rows
written without it (data migrations) are started when ``migrate`` ends and by reconciliation.
Every way of deactivating a loaded user ends in ``post_save`` with ``is_active`` turned off.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_migrate, post_save
from django.dispatch import receiver

from users.lifecycle import account_deactivated_effects
from users.models import ProvisioningState, User
from users.provisioning import provisioning_start_on_commit


@receiver(post_save, sender=User, dispatch_uid="users.user_saved")
def user_saved(sender: type[User], instance: User, created: bool, raw: bool, **kwargs: Any) -> None:
    if created:
        provisioning_start_on_commit(user_id=instance.pk)
    elif not raw and instance.stored_value("is_active") is True and not instance.is_active:
        account_deactivated_effects(instance)


@receiver(post_migrate, dispatch_uid="users.migrated")
def migrated(sender: Any, **kwargs: Any) -> None:
    """Users a data migration created: their provisioning was never started."""
    if getattr(sender, "name", None) != "users":
        return
    using = kwargs.get("using", "default")
    never_started = User.objects.using(using).filter(
        provisioning_state=ProvisioningState.PENDING,
        provisioning_attempts=0,
        deletion_requested_at=None,
    )
    for user_id in never_started.values_list("pk", flat=True):
        provisioning_start_on_commit(user_id=user_id)
