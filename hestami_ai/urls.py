from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import api, health

urlpatterns = [
    # Served by core.health.HealthCheckMiddleware before host checks; routed for reverse().
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/chat/", include("chat.urls_api")),
    path("api/v1/", include("chat.urls_api_openai")),
    path("api/code/v1/", include("code_interpreter.urls_api")),
    # The same Code API as LibreChat's stateful profile (code_interpreter/profiles.py).
    path(
        "api/code/stateful/v1/",
        include(("code_interpreter.urls_api", "code_stateful")),
        {"execution_profile": "stateful"},
    ),
    path("api/", include("users.urls_api")),
    # Unknown API paths answer in the JSON error shape, also with DEBUG on, and for any method
    # (CSRF-exempt: it changes nothing, and a POST with a session cookie would otherwise get
    # Django's HTML CSRF page instead of the 404).
    re_path(r"^api/", csrf_exempt(api.handler404)),
    path("chat/", include("chat.urls_web")),
    path("", include("users.urls_web")),
]

handler400 = "core.api.handler400"
handler403 = "core.api.handler403"
handler404 = "core.api.handler404"
handler500 = "core.api.handler500"
