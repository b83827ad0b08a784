"""ASGI entry point: uvicorn serves this (the chat proxy streams)."""

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")
django.setup(set_prefix=False)

from hestami_ai.asgi_handler import PooledASGIHandler  # noqa: E402

# What get_asgi_application() returns, but with each request's sync thread taken from a pool.
django_application = PooledASGIHandler()

from django.conf import settings  # noqa: E402

from hestami_ai.errors import error_body  # noqa: E402


def _body_limit(path: str) -> int | None:
    if path.startswith("/api/chat/"):
        return int(settings.CHAT_PROXY_MAX_BODY_BYTES)
    if path.startswith("/api/code/"):
        if "/upload" in path:
            return int(settings.CODE_INTERPRETER_MAX_UPLOAD_BYTES)
        return int(settings.CODE_INTERPRETER_MAX_REQUEST_BYTES)
    return None


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse an oversized body from its Content-Length, before Django spools it to disk."""
    limit = _body_limit(scope["path"]) if scope["type"] == "http" else None
    if limit is not None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                if int(value) > limit:
                    await _too_large(send, int(value), limit)
                    return
                break
    await django_application(scope, receive, send)


async def _too_large(send: Any, size: int, limit: int) -> None:
    import json

    body = json.dumps(
        error_body("payload_too_large", f"The request body is {size} bytes; the limit is {limit}.")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


if not settings.TESTING:
    from hestami_ai.database import ensure_app_database

    # A missing PostgreSQL database stops the server now, saying so, not 30 s into a request.
    ensure_app_database(create=False)

# The web server runs workflows too (docs/architecture.md); management commands never do.
if settings.DBOS_IN_WEB and not settings.TESTING:
    from hestami_ai import dbos

    dbos.launch("web")

# Uvicorn runs no system checks: say at start-up whether the code interpreter can execute.
if not settings.TESTING:
    import logging

    from code_interpreter.sandbox import sandbox_status

    _ready, _message = sandbox_status()
    logging.getLogger("code_interpreter").log(logging.INFO if _ready else logging.ERROR, _message)
