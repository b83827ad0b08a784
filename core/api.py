"""DRF glue: its exceptions turned into ``ApplicationError`` and rendered by core.errors, the
one place errors become responses; the error schema for the OpenAPI document."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.defaults import bad_request, page_not_found, permission_denied, server_error
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError, ErrorCode, application_error_response, wants_json

logger = logging.getLogger(__name__)

_CODES_BY_STATUS = {
    400: ErrorCode.INVALID,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.THROTTLED,
}
# What DRF's own handler sets that a client needs (credentials to send, seconds to wait).
_KEPT_HEADERS = ("WWW-Authenticate", "Retry-After")


def _flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested validation detail into ``{"field": ["message", ...]}``."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            fields.update(_flatten_fields(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            fields[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                fields.update(_flatten_fields(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        fields[prefix or "non_field_errors"] = [str(detail)]
    return fields


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponseBase | None:
    """DRF's exceptions as an ``ApplicationError``, rendered where every error is."""
    error = as_application_error(exc, context)
    return None if error is None else application_error_response(error)


def as_application_error(exc: Exception, context: dict[str, Any]) -> ApplicationError | None:
    """None for a real server error: Django logs it and answers 500."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    handled = drf_exception_handler(exc, context)
    if handled is None or not isinstance(exc, exceptions.APIException):
        return None
    status = handled.status_code
    headers = {name: handled[name] for name in _KEPT_HEADERS if name in handled}
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        message = "Some fields are invalid."
        if list(fields) == ["non_field_errors"]:
            message = fields["non_field_errors"][0]
        return ApplicationError(
            message, code=ErrorCode.INVALID, status=status, fields=fields, headers=headers
        )
    if isinstance(exc, exceptions.ParseError):
        return ApplicationError(
            f"The request body is malformed: {exc.detail}",
            code=ErrorCode.MALFORMED_REQUEST,
            status=status,
            headers=headers,
        )
    if isinstance(exc, exceptions.Throttled):
        seconds: float | None = getattr(exc, "wait", None)
        wait = math.ceil(seconds) if seconds is not None else None
        message = "Too many requests."
        if wait is not None:
            message += f" Try again in {wait} seconds."
            headers["Retry-After"] = str(wait)
        return ApplicationError(
            message,
            code=ErrorCode.THROTTLED,
            status=status,
            extra={"retry_after_seconds": wait},
            headers=headers,
        )
    detail = exc.detail
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else ""
    if isinstance(detail, dict):
        message = str(detail.get("detail", detail))
        code = str(detail.get("code", code))
    else:
        message = str(detail)
    known = code in ErrorCode.__members__.values()
    return ApplicationError(
        message,
        code=ErrorCode(code) if known else _CODES_BY_STATUS.get(status, ErrorCode.ERROR),
        status=status,
        headers=headers,
    )


class ErrorDetailSerializer(serializers.Serializer[Any]):
    """For the OpenAPI schema only; errors are rendered by the handler above."""

    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    retry_after_seconds = serializers.IntegerField(required=False, allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `fields` is a Serializer attribute, so the member of that name is added here.
        declared = super().get_fields()
        declared["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Per-field messages for invalid input.",
        )
        return declared


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorDetailSerializer()


# Django-level handlers, so unknown /api/ URLs and crashes also answer in the error shape.
def _error(code: ErrorCode, message: str, status: int) -> JsonResponse:
    return application_error_response(ApplicationError(message, code=code, status=status))


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if wants_json(request):
        return _error(ErrorCode.NOT_FOUND, f"No endpoint at {request.path}.", 404)
    return page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> Any:
    if wants_json(request):
        return _error(ErrorCode.SERVER_ERROR, "Internal server error.", 500)
    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse | Any:
    if wants_json(request):
        return _error(ErrorCode.BAD_REQUEST, "Bad request.", 400)
    return bad_request(request, exception or Exception())


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse | Any:
    if wants_json(request):
        return _error(ErrorCode.PERMISSION_DENIED, "Permission denied.", 403)
    return permission_denied(request, exception or PermissionDenied())
