"""Test data builders: real users through the real service, so passwords are really encrypted."""

from __future__ import annotations

import itertools
from typing import Any

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
        for key, value in extra.items():
            setattr(user, key, value)
        user.save()
    return user


def make_legacy_user(*, email: str | None = None, **fields: Any) -> User:
    """A user whose provisioning never started (made before it existed, or its start was lost)."""
    from users.crypto import new_encrypted_librechat_password

    n = next(_counter)
    return User.objects.create_user(
        email=email or f"legacy{n}@example.com",
        password=DEFAULT_PASSWORD,
        name=fields.pop("name", f"Legacy {n}"),
        librechat_password_encrypted=new_encrypted_librechat_password(),
        **fields,
    )
