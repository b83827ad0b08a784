"""DRF glue: the exception handler that maps every error to the project's one shape."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.views.defaults import bad_request, page_not_found, permission_denied, server_error
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError, error_body, error_response

logger = logging.getLogger(__name__)

_CODES_BY_STATUS = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


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


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        response = Response(
            error_body(exc.code, exc.message, fields=exc.fields, extra=exc.extra),
            status=exc.status,
        )
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    handled = drf_exception_handler(exc, context)
    if handled is None or not isinstance(exc, exceptions.APIException):
        return handled  # a real server error: Django logs it and answers 500
    response = handled

    status = response.status_code
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        message = "Some fields are invalid."
        if list(fields) == ["non_field_errors"]:
            message = fields["non_field_errors"][0]
        response.data = error_body("invalid", message, fields=fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body(
            "malformed_request", f"The request body is malformed: {exc.detail}"
        )
    elif isinstance(exc, exceptions.Throttled):
        seconds: float | None = getattr(exc, "wait", None)
        wait = math.ceil(seconds) if seconds is not None else None
        message = "Too many requests."
        if wait is not None:
            message += f" Try again in {wait} seconds."
            response["Retry-After"] = str(wait)
        response.data = error_body("throttled", message, extra={"retry_after_seconds": wait})
    else:
        detail = exc.detail
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else ""
        if isinstance(detail, dict):
            message = str(detail.get("detail", detail))
            code = str(detail.get("code", code))
        else:
            message = str(detail)
        response.data = error_body(code or _CODES_BY_STATUS.get(status, "error"), message)
    return response


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
def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_json(request):
        return error_response("not_found", f"No endpoint at {request.path}.", status=404)
    return page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> Any:
    if _wants_json(request):
        return error_response("server_error", "Internal server error.", status=500)
    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse | Any:
    if _wants_json(request):
        return error_response("bad_request", "Bad request.", status=400)
    return bad_request(request, exception or Exception())


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse | Any:
    if _wants_json(request):
        return error_response("permission_denied", "Permission denied.", status=403)
    return permission_denied(request, exception or PermissionDenied())
