"""Test data builders: real users through the real service, so passwords are really encrypted."""

from __future__ import annotations

import itertools
from typing import Any

from users.crypto import new_encrypted_librechat_password
from users.models import User
from users.services import user_create

_counter = itertools.count(1)
DEFAULT_PASSWORD = "a-Strong-passw0rd!"


def make_user(*, email: str | None = None, password: str = DEFAULT_PASSWORD, **extra: Any) -> User:
    n = next(_counter)
    user = user_create(
        email=email or f"user{n}@example.com",
        password=password,
        name=extra.pop("name", f"User {n}"),
    )
    if extra:
        # An update, not save(): provisioning fields belong to the services (User.save()).
        User.objects.filter(pk=user.pk).update(**extra)
        user.refresh_from_db()
    return user


def make_legacy_user(
    *, email: str | None = None, librechat_password: bool = True, **fields: Any
) -> User:
    """A user whose provisioning never started: written without ``User.save()``, as a data
    migration writes rows, so no signal started it. ``librechat_password=False``: without a
    LibreChat password either, as a data migration's row would be."""
    n = next(_counter)
    user = User(
        email=email or f"legacy{n}@example.com",
        name=fields.pop("name", f"Legacy {n}"),
        librechat_password_encrypted=new_encrypted_librechat_password()
        if librechat_password
        else "",
        **fields,
    )
    user.set_password(DEFAULT_PASSWORD)
    [created] = User.objects.bulk_create([user])
    return User.objects.get(pk=created.pk)
