from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hestami_ai import api, health

urlpatterns = [
    # Served by hestami_ai.health.HealthCheckMiddleware before host checks; routed for reverse().
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/chat/", include("chat.urls")),
    path("api/v1/", include("chat.urls_openai")),
    path("api/code/v1/", include("code_interpreter.urls")),
    path("api/", include("users.urls_api")),
    # Unknown API paths answer in the JSON error shape, also with DEBUG on, and for any method
    # (CSRF-exempt: it changes nothing, and a POST with a session cookie would otherwise get
    # Django's HTML CSRF page instead of the 404).
    re_path(r"^api/", csrf_exempt(api.handler404)),
    path("chat/", include("chat.urls_ui")),
    path("", include("users.urls")),
]

handler400 = "hestami_ai.api.handler400"
handler403 = "hestami_ai.api.handler403"
handler404 = "hestami_ai.api.handler404"
handler500 = "hestami_ai.api.handler500"
