from django.urls import path

from users import api

urlpatterns = [
    path("auth/register/", api.RegisterView.as_view(), name="api-register"),
    path("auth/token/", api.LoginView.as_view(), name="api-token"),
    path("auth/token/refresh/", api.RefreshView.as_view(), name="api-token-refresh"),
    path("auth/logout/", api.LogoutView.as_view(), name="api-logout"),
    path("users/me/", api.MeView.as_view(), name="api-me"),
    path(
        "users/<int:pk>/deactivate/", api.UserDeactivateView.as_view(), name="api-user-deactivate"
    ),
    path(
        "users/<int:pk>/reactivate/", api.UserReactivateView.as_view(), name="api-user-reactivate"
    ),
    path(
        "users/librechat-password/",
        api.LibreChatPasswordView.as_view(),
        name="api-librechat-password",
    ),
]
