"""The one error shape of every API response: ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


class ApplicationError(Exception):
    """A failure a client can act on; views raise it and the API layer renders it once."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
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
    code: str,
    message: str,
    *,
    fields: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    if extra:
        error.update(extra)
    return {"error": error}


def error_response(
    code: str,
    message: str,
    *,
    status: int,
    fields: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    response = JsonResponse(error_body(code, message, fields=fields, extra=extra), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def application_error_response(exc: ApplicationError) -> JsonResponse:
    return error_response(
        exc.code,
        exc.message,
        status=exc.status,
        fields=exc.fields,
        extra=exc.extra,
        headers=exc.headers,
    )
