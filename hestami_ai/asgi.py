"""ASGI entry point: uvicorn serves this (the chat proxy streams)."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402

from hestami_ai.errors import error_body  # noqa: E402


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse an oversized proxy upload from its Content-Length, before Django spools the body."""
    if scope["type"] == "http" and scope["path"].startswith("/api/chat/"):
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                if int(value) > settings.CHAT_PROXY_MAX_BODY_BYTES:
                    await _too_large(send, int(value))
                    return
                break
    await django_application(scope, receive, send)


async def _too_large(send: Any, size: int) -> None:
    import json

    body = json.dumps(
        error_body(
            "payload_too_large",
            f"The request body is {size} bytes; the limit is {settings.CHAT_PROXY_MAX_BODY_BYTES}.",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# The web server runs workflows too (docs/architecture.md); management commands never do.
if settings.DBOS_IN_WEB and not settings.TESTING:
    from hestami_ai import dbos

    dbos.launch("web")
