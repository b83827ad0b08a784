"""The one error shape of every API response, ``{"error": {"code", "message", "fields"?}}``,
the codes it may carry, and the one place an error becomes a response: ``json_errors`` for
plain Django views (sync or async), which the DRF exception handler (core/api.py) and the
Django-level handlers reuse. The codes and their meaning: docs/architecture.md#errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from enum import StrEnum
from functools import wraps
from typing import Any, ParamSpec, overload

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase


class ErrorCode(StrEnum):
    """Every code an API error carries, one word per meaning across our API and the Code API:
    DRF's and SimpleJWT's words (``throttled``, ``token_not_valid``, which the chat page reads to
    sign out) serve both. The few Code API refusals LibreChat's client reads by a top-level word
    have the official Code API's flat body instead (code_interpreter/profiles.py)."""

    # Any endpoint.
    BAD_REQUEST = "bad_request"
    INVALID = "invalid"
    MALFORMED_REQUEST = "malformed_request"
    NOT_AUTHENTICATED = "not_authenticated"
    PERMISSION_DENIED = "permission_denied"
    CSRF_FAILED = "csrf_failed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    # DRF's and SimpleJWT's own, passed on as they name them.
    AUTHENTICATION_FAILED = "authentication_failed"
    NO_ACTIVE_ACCOUNT = "no_active_account"
    USER_INACTIVE = "user_inactive"
    BAD_AUTHORIZATION_HEADER = "bad_authorization_header"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a code, not a secret)
    ERROR = "error"
    # Our accounts and tokens.
    TOKEN_NOT_VALID = "token_not_valid"  # noqa: S105 (a code, not a secret)
    USER_NOT_FOUND = "user_not_found"
    ACCOUNT_INACTIVE = "account_inactive"
    ACCOUNT_BEING_DELETED = "account_being_deleted"
    EMAIL_TAKEN = "email_taken"
    NO_LIBRECHAT_PASSWORD = "no_librechat_password"  # noqa: S105 (a code, not a secret)
    # The chat proxy and LibreChat behind it.
    ROUTE_REFUSED = "route_refused"
    PATH_AMBIGUOUS = "path_ambiguous"
    LIBRECHAT_NOT_PROVISIONED = "librechat_not_provisioned"
    LIBRECHAT_CREDENTIALS_UNREADABLE = "librechat_credentials_unreadable"
    LIBRECHAT_ADMIN_ACCOUNT = "librechat_admin_account"
    LIBRECHAT_SESSION_FAILED = "librechat_session_failed"
    LIBRECHAT_UNREACHABLE = "librechat_unreachable"
    LIBRECHAT_TIMEOUT = "librechat_timeout"
    LIBRECHAT_RATE_LIMITED = "librechat_rate_limited"
    LIBRECHAT_DENIED = "librechat_denied"
    # The OpenAI-compatible API (/api/v1), in OpenAI's words where OpenAI has one; besides the
    # LibreChat codes above and the codes LibreChat's remote agents API sends, passed on as sent.
    INVALID_JSON = "invalid_json"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    UNKNOWN_URL = "unknown_url"
    REMOTE_AGENTS_NOT_GRANTED = "remote_agents_not_granted"
    LIBRECHAT_AGENT_KEY_FAILED = "librechat_agent_key_failed"
    LIBRECHAT_AGENT_KEY_REFUSED = "librechat_agent_key_refused"
    LIBRECHAT_ERROR = "librechat_error"
    LIBRECHAT_REFUSED = "librechat_refused"
    LIBRECHAT_STREAM_INTERRUPTED = "librechat_stream_interrupted"
    # The Code API (called by LibreChat).
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a code, not a secret)
    INVALID_API_KEY = "invalid_api_key"
    INVALID_ID = "invalid_id"
    INVALID_FILE_NAME = "invalid_file_name"
    FILE_NOT_FOUND = "file_not_found"
    UPLOAD_FAILED = "upload_failed"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    TOO_MANY_SESSIONS = "too_many_sessions"
    DISK_QUOTA_EXCEEDED = "disk_quota_exceeded"
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"
    SANDBOX_ERROR = "sandbox_error"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"


class ApplicationError(Exception):
    """A failure a client can act on; views raise it and it is rendered in one place."""

    status = 400
    code = ErrorCode.BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields
        self.extra = extra or {}
        self.headers = headers or {}


def error_body(
    code: ErrorCode,
    message: str,
    *,
    fields: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": str(code), "message": message}
    if fields:
        error["fields"] = fields
    if extra:
        error.update(extra)
    return {"error": error}


def error_json(code: ErrorCode, message: str) -> bytes:
    """The body where no response object exists yet (the ASGI and WSGI body limits)."""
    return json.dumps(error_body(code, message)).encode()


def application_error_response(exc: ApplicationError) -> JsonResponse:
    """The one place an error becomes a response."""
    response = JsonResponse(
        error_body(exc.code, exc.message, fields=exc.fields, extra=exc.extra), status=exc.status
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


_P = ParamSpec("_P")


@overload
def json_errors(
    view: Callable[_P, Coroutine[Any, Any, HttpResponseBase]],
) -> Callable[_P, Coroutine[Any, Any, HttpResponseBase]]: ...
@overload
def json_errors(view: Callable[_P, HttpResponseBase]) -> Callable[_P, HttpResponseBase]: ...
def json_errors(view: Callable[_P, Any]) -> Callable[_P, Any]:
    """``ApplicationError`` raised by the view -> the error shape; for sync and async views."""
    if asyncio.iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            try:
                return await view(*args, **kwargs)
            except ApplicationError as exc:
                return application_error_response(exc)

        return async_wrapper

    @wraps(view)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        try:
            return view(*args, **kwargs)
        except ApplicationError as exc:
            return application_error_response(exc)

    return wrapper


def wants_json(request: HttpRequest) -> bool:
    """Django's own error pages answer in the error shape under /api/."""
    return request.path.startswith("/api/")
