"""ASGI entry point: uvicorn serves this (the chat proxy streams)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")
django.setup(set_prefix=False)

# After django.setup(): these read settings, and the apps have registered what they contribute.
from django.conf import settings  # noqa: E402

from core import dbos, health  # noqa: E402
from core.asgi_handler import PooledASGIHandler  # noqa: E402
from core.body_limits import BodyLimitMiddleware  # noqa: E402
from core.database import ensure_app_database  # noqa: E402

# What get_asgi_application() returns, but with each request's sync thread taken from a pool.
django_application = PooledASGIHandler()

# Bodies on the proxy's and the code API's routes are bounded before Django buffers them.
application = BodyLimitMiddleware(django_application)


if not settings.TESTING:
    # A missing PostgreSQL database stops the server now, saying so, not 30 s into a request.
    ensure_app_database(create=False)

# The web server runs workflows too (docs/architecture.md); management commands never do.
if settings.DBOS_IN_WEB and not settings.TESTING:
    dbos.launch("web")

# Uvicorn runs no system checks: what the apps registered to say at start-up (the sandbox's state).
if not settings.TESTING:
    health.run_startup_reports()
