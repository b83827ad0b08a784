"""ASGI entry point: uvicorn serves this (the chat proxy streams)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")
django.setup(set_prefix=False)

from core.asgi_handler import PooledASGIHandler  # noqa: E402

# What get_asgi_application() returns, but with each request's sync thread taken from a pool.
django_application = PooledASGIHandler()

from django.conf import settings  # noqa: E402

from core.body_limits import BodyLimitMiddleware  # noqa: E402

# Bodies on the proxy's and the code API's routes are bounded before Django buffers them.
application = BodyLimitMiddleware(django_application)


if not settings.TESTING:
    from core.database import ensure_app_database

    # A missing PostgreSQL database stops the server now, saying so, not 30 s into a request.
    ensure_app_database(create=False)

# The web server runs workflows too (docs/architecture.md); management commands never do.
if settings.DBOS_IN_WEB and not settings.TESTING:
    from core import dbos

    dbos.launch("web")

# Uvicorn runs no system checks: say at start-up whether the code interpreter can execute.
if not settings.TESTING:
    import logging

    from code_interpreter.sandbox import sandbox_status

    _ready, _message = sandbox_status()
    logging.getLogger("code_interpreter").log(logging.INFO if _ready else logging.ERROR, _message)
