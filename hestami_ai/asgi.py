import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")

application = get_asgi_application()

# The web server runs workflows too (docs/architecture.md); management commands never do.
from django.conf import settings  # noqa: E402

if settings.DBOS_IN_WEB:
    from hestami_ai import dbos

    dbos.launch("web")
