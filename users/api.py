"""REST endpoints for the mobile apps: register, JWT log-in/refresh/logout, profile, password."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from hestami_ai.api import ErrorSerializer
from hestami_ai.client_ip import client_ip
from hestami_ai.errors import ApplicationError
from users import services
from users.models import User
from users.serializers import (
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
    RegisterAccountThrottle,
    RegisterIPThrottle,
)

ERROR_400 = OpenApiResponse(ErrorSerializer, description="Invalid or malformed input.")
ERROR_401 = OpenApiResponse(ErrorSerializer, description="Missing or invalid credentials.")
ERROR_409 = OpenApiResponse(ErrorSerializer, description="The e-mail is already registered.")
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
            raise ApplicationError(str(exc), code="token_not_valid", status=401) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: UserSerializer, 401: ERROR_401},
        tags=["users"],
        summary="The caller's profile and LibreChat provisioning state",
    )
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, User)
        return Response(UserSerializer(request.user).data)


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
