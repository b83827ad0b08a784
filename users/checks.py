"""System checks: a missing or malformed encryption key, a missing LibreChat URL.

Errors with DEBUG off (the deployment would fail at the first registration), warnings in
development so `make run` still starts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from users.crypto import EncryptionKeyError, parse_keys


def _message(msg: str, *, hint: str, id_suffix: str) -> CheckMessage:
    if settings.DEBUG:
        return Warning(msg, hint=hint, id=f"users.W{id_suffix}")
    return Error(msg, hint=hint, id=f"users.E{id_suffix}")


@register(Tags.security, deploy=False)
def check_librechat_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        parse_keys(settings.LIBRECHAT_ENCRYPTION_KEY or "")
    except EncryptionKeyError as exc:
        messages.append(
            _message(
                str(exc),
                hint="Set LIBRECHAT_ENCRYPTION_KEY to comma-separated Fernet keys, e.g. the "
                "output of python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'.",
                id_suffix="001",
            )
        )
    if not settings.LIBRECHAT_API_URL:
        messages.append(
            _message(
                "LIBRECHAT_API_URL is not set: users cannot be provisioned in LibreChat.",
                hint="Set LIBRECHAT_API_URL to LibreChat's origin, e.g. http://librechat:3080.",
                id_suffix="002",
            )
        )
    elif not settings.LIBRECHAT_API_URL.startswith(("http://", "https://")):
        messages.append(
            _message(
                f"LIBRECHAT_API_URL must be an http(s) URL, not {settings.LIBRECHAT_API_URL!r}.",
                hint="Set LIBRECHAT_API_URL to LibreChat's origin, e.g. http://librechat:3080.",
                id_suffix="003",
            )
        )
    return messages
