import os

from django.core.wsgi import get_wsgi_application

from core.body_limits import BodyLimitWSGIMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hestami_ai.settings")

# Bodies on the proxy's and the code API's routes are bounded before Django reads them.
application = BodyLimitWSGIMiddleware(get_wsgi_application())
