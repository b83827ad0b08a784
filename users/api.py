"""REST endpoints for the mobile apps: register, JWT log-in/refresh/logout, profile, password,
deleting one's account; and for staff, deactivating and reactivating accounts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from core.api import ErrorSerializer
from core.client_ip import client_ip
from core.errors import ApplicationError, ErrorCode
from users import lifecycle, services
from users.authentication import JWTAuthentication
from users.models import User
from users.serializers import (
    AccountDeleteSerializer,
    AccountDeletionSerializer,
    LibreChatPasswordSerializer,
    LogoutSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    UserSerializer,
)
from users.throttles import (
    LibreChatPasswordThrottle,
    LoginAccountThrottle,
    LoginIPThrottle,
    PasswordCheckThrottle,
    RegisterAccountThrottle,
    RegisterIPThrottle,
)

ERROR_400 = OpenApiResponse(ErrorSerializer, description="Invalid or malformed input.")
ERROR_401 = OpenApiResponse(ErrorSerializer, description="Missing or invalid credentials.")
ERROR_409 = OpenApiResponse(ErrorSerializer, description="The e-mail is already registered.")
ERROR_403 = OpenApiResponse(ErrorSerializer, description="Deactivated, or not staff.")
ERROR_404 = OpenApiResponse(ErrorSerializer, description="No such user.")
ERROR_429 = OpenApiResponse(ErrorSerializer, description="Throttled; see `Retry-After`.")


def token_pair(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


class RegisterView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [RegisterIPThrottle, RegisterAccountThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses={201: RegisterResponseSerializer, 400: ERROR_400, 409: ERROR_409, 429: ERROR_429},
        summary="Create an account and get a token pair",
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(**serializer.validated_data, client_ip=client_ip(request))
        body = {"user": UserSerializer(user).data, "tokens": token_pair(user)}
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(TokenObtainPairView):
    throttle_classes = [LoginIPThrottle, LoginAccountThrottle]

    @extend_schema(
        responses={
            200: OpenApiResponse(description="A token pair."),
            400: ERROR_400,
            401: ERROR_401,
            429: ERROR_429,
        },
        summary="Log in with e-mail and password",
        tags=["auth"],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class RefreshView(TokenRefreshView):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="A new token pair; the old refresh token is blacklisted."
            ),
            400: ERROR_400,
            401: ERROR_401,
        },
        summary="Rotate a refresh token",
        tags=["auth"],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class LogoutView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=LogoutSerializer,
        responses={204: None, 400: ERROR_400, 401: ERROR_401},
        summary="Blacklist a refresh token",
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            RefreshToken(serializer.validated_data["refresh"]).blacklist()
        except TokenError as exc:
            raise ApplicationError(str(exc), code=ErrorCode.TOKEN_NOT_VALID, status=401) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    def get_throttles(self) -> list[Any]:
        # Deleting checks the password: as many tries as a log-in gets.
        return [PasswordCheckThrottle()] if self.request.method == "DELETE" else []

    @extend_schema(
        responses={200: UserSerializer, 401: ERROR_401, 403: ERROR_403},
        tags=["users"],
        summary="The caller's profile and LibreChat provisioning state",
    )
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        return Response(UserSerializer(request.user).data)

    @extend_schema(
        request=AccountDeleteSerializer,
        responses={202: AccountDeletionSerializer, 400: ERROR_400, 401: ERROR_401, 429: ERROR_429},
        tags=["users"],
        summary="Delete the caller's account, with its LibreChat account",
        description="Every credential stops working at once; the account and everything held "
        "for it go once its LibreChat account is deleted (a durable workflow that waits while "
        "LibreChat is unreachable). The e-mail can then sign up again.",
    )
    def delete(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        serializer = AccountDeleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not request.user.check_password(serializer.validated_data["password"]):
            message = "The password is not correct."
            raise ApplicationError(message, code=ErrorCode.INVALID, fields={"password": [message]})
        lifecycle.account_delete(user=request.user)
        body = {"status": "deleting", "message": lifecycle.DELETION_STARTED_MESSAGE}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class _StaffUserAction(APIView):
    """POST: run one lifecycle service on the user with that id; answer the user."""

    permission_classes = [IsAdminUser]
    service: Any

    def post(self, request: Request, pk: int) -> Response:
        user = get_object_or_404(User, pk=pk)
        type(self).service(user=user)
        return Response(UserSerializer(user).data)


def _staff_schema(summary: str, description: str, errors: dict[int, Any] | None = None) -> Any:
    responses: dict[int, Any] = {
        200: UserSerializer,
        401: ERROR_401,
        403: ERROR_403,
        404: ERROR_404,
        **(errors or {}),
    }
    return extend_schema_view(
        post=extend_schema(
            request=None,
            responses=responses,
            tags=["staff"],
            summary=summary,
            description=description,
        )
    )


@_staff_schema(
    "Deactivate an account",
    "At once: the user's JWTs and web sessions stop working and every API refuses them (the "
    "chat proxy within a second). After commit their LibreChat session is logged out and our "
    "copy of its tokens deleted.",
)
class UserDeactivateView(_StaffUserAction):
    service = lifecycle.account_deactivate


@_staff_schema(
    "Reactivate an account",
    "The user can log in again (tokens issued before the deactivation stay revoked); the "
    "LibreChat account is the same as before.",
    {409: OpenApiResponse(ErrorSerializer, description="The account is being deleted.")},
)
class UserReactivateView(_StaffUserAction):
    service = lifecycle.account_reactivate


class LibreChatPasswordView(APIView):
    # JWT only: a browser session must never be able to read the secret.
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [LibreChatPasswordThrottle]

    @extend_schema(
        responses={
            200: LibreChatPasswordSerializer,
            401: ERROR_401,
            404: OpenApiResponse(ErrorSerializer, description="No LibreChat password stored."),
            429: ERROR_429,
        },
        summary="The caller's own LibreChat password (audited, not cached)",
        tags=["users"],
    )
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        password = services.librechat_password_read(user=request.user, via="api")
        response = Response({"password": password})
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response
