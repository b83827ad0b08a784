"""System checks, shown by `manage.py migrate`/`check` (so at `make run`): what stops /exec."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from code_interpreter.auth import check_public_key
from code_interpreter.sandbox import check_sandbox

register(check_sandbox)


@register()
def check_code_api_auth(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if not settings.CODE_INTERPRETER_AUTH:
        messages.append(
            Warning(
                "The Code API (/api/code/v1) has no authentication configured, so it refuses "
                "every call.",
                hint="Set CODE_INTERPRETER_JWT_PUBLIC_KEY (LibreChat's CODEAPI_* JWT), "
                "CODE_INTERPRETER_API_KEYS, or CODE_INTERPRETER_AUTH=none on an isolated network "
                "(docs/code-interpreter.md).",
                id="code_interpreter.W002",
            )
        )
    problem = check_public_key()
    if problem:
        messages.append(
            Error(
                problem,
                hint="Give the public half of LibreChat's CODEAPI_JWT_PRIVATE_KEY.",
                id="code_interpreter.E001",
            )
        )
    return messages
