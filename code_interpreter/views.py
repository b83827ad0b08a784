"""The Code API LibreChat calls (``LIBRECHAT_CODE_BASEURL=<origin>/api/code/v1``).

Thin views: authenticate, validate, call one service, render. Every error is
``{"error": {"code", "message", ...}}``; routes and shapes are in docs/code-interpreter.md.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from code_interpreter import profiles, sandbox, selectors, services, warm_sessions
from code_interpreter.auth import Caller, authenticate
from code_interpreter.downloads import file_response
from code_interpreter.ids import checked_id
from code_interpreter.models import CodeFile
from code_interpreter.schemas import (
    Access,
    parse_access,
    parse_exec,
    parse_json_object,
    parse_version,
)
from code_interpreter.uploads import access_owner, file_delete, upload_files
from core.errors import ApplicationError, ErrorCode, json_errors

logger = logging.getLogger(__name__)
View = Callable[..., HttpResponseBase]
# The words LibreChat's agents (and the official server) use for a run stopped by a limit.
LIMIT_MESSAGES = {
    "timeout": "Time limit exceeded",
    "oom": "Out of memory",
    "disk_quota": "Disk quota exceeded",
}


def code_api(*methods: str) -> Callable[[View], View]:
    """Allowed methods, CSRF off (server-to-server), the execution profile (``profiles``:
    checked, and named on every reply), and ApplicationError -> the error shape."""

    def decorate(view: View) -> View:
        @json_errors
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                raise ApplicationError(
                    f"{request.method} is not allowed here; use {', '.join(methods)}.",
                    code=ErrorCode.METHOD_NOT_ALLOWED,
                    status=405,
                    headers={"Allow": ", ".join(methods)},
                )
            return view(request, *args, **kwargs)

        @csrf_exempt
        @wraps(view)
        def wrapper(
            request: HttpRequest,
            *args: Any,
            execution_profile: profiles.Profile = "default",
            **kwargs: Any,
        ) -> HttpResponseBase:
            try:
                profiles.check_expected(request, execution_profile)
                response = checked(request, *args, **kwargs)
            except profiles.ContractRefusal as refusal:
                response = refusal.response()
            response[profiles.PROFILE_HEADER] = execution_profile
            return response

        return wrapper

    return decorate


def _too_large(what: str, limit: int) -> ApplicationError:
    return ApplicationError(
        f"The {what} is larger than the limit of {limit} bytes.",
        code=ErrorCode.PAYLOAD_TOO_LARGE,
        status=413,
    )


def _read_body(request: HttpRequest, limit: int) -> bytes:
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _too_large("request body", limit)
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _too_large("request body", limit)
    return body


def _query_access(request: HttpRequest) -> Access:
    return parse_access(
        request.GET.get("kind"), request.GET.get("id"), entity_id=request.GET.get("entity_id")
    )


def _named(caller: Caller, request: HttpRequest, access: Access) -> Caller:
    """Without a JWT: the user in ``kind=user&id=`` or the ``User-Id`` header, if any."""
    user_id = access.resource_id if access.kind == "user" else None
    return caller.named(user_id, request.headers.get("User-Id"))


# -- /exec -------------------------------------------------------------------------------------


@code_api("POST")
def exec_code(request: HttpRequest) -> HttpResponseBase:
    caller = authenticate(request)
    data = parse_json_object(_read_body(request, settings.CODE_INTERPRETER_MAX_REQUEST_BYTES))
    caller = caller.named(data.get("user_id"), request.headers.get("User-Id"))
    exec_request = parse_exec(data)
    try:
        with warm_sessions.runtime_session(caller.runtime_scope, exec_request.runtime_session_hint):
            outcome = services.exec_run(caller=caller, request=exec_request)
    except warm_sessions.RuntimeSessionBusy:
        raise profiles.runtime_session_busy() from None
    except sandbox.SandboxUnavailable as exc:
        logger.error("code execution refused: %s", exc)
        raise ApplicationError(str(exc), code=ErrorCode.SANDBOX_UNAVAILABLE, status=503) from None
    except sandbox.SandboxError as exc:
        logger.exception("the sandbox could not run an execution")
        raise ApplicationError(
            f"The sandbox could not run the code: {exc}. Retry.",
            code=ErrorCode.SANDBOX_ERROR,
            status=503,
        ) from None
    result = outcome.result
    status, message = result.status, LIMIT_MESSAGES.get(result.status)
    if status == "output_limit":  # in the runner's words, which LibreChat v0.8.8 reads
        status = "OL" if result.stdout_truncated else "EL"
        message = f"{'stdout' if result.stdout_truncated else 'stderr'} length exceeded"
    return JsonResponse(
        {
            "session_id": outcome.session_id,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "files": outcome.files,
            "code": result.exit_code,
            "signal": _signal_name(result.signal),
            "status": status,
            "message": message,
            "wall_time": round(result.wall_time_s * 1000),
            "language": outcome.language,
            "stdout_truncated": result.stdout_truncated,
            "stderr_truncated": result.stderr_truncated,
        }
    )


def _signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


@code_api("POST")
def exec_programmatic(request: HttpRequest) -> HttpResponseBase:
    authenticate(request)
    raise profiles.unsupported_capability(
        "Programmatic tool calling (and attached-workspace bash) is not supported by this "
        "Code API; use execute_code or bash_tool."
    )


# -- /upload -----------------------------------------------------------------------------------


def _uploads(request: HttpRequest) -> tuple[Access, list[Any], bool, bool, int | None]:
    if request.content_type != "multipart/form-data":
        raise ApplicationError(
            "Invalid content type. Must be multipart/form-data.",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    limit = settings.CODE_INTERPRETER_MAX_UPLOAD_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _too_large("upload", limit)
    try:
        fields, files = request.POST, request.FILES
    except (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
        raise ApplicationError(
            f"The upload has too many parts or fields: {exc}",
            code=ErrorCode.PAYLOAD_TOO_LARGE,
            status=413,
        ) from None
    except MultiPartParserError as exc:
        raise ApplicationError(
            f"The multipart body is malformed: {exc}", code=ErrorCode.MALFORMED_REQUEST
        ) from None
    access = parse_access(fields.get("kind"), fields.get("id"), entity_id=fields.get("entity_id"))
    uploads = [upload for key in files for upload in files.getlist(key)]
    if not uploads:
        raise ApplicationError(
            "No files provided: send them as 'file' parts.", code=ErrorCode.INVALID
        )
    read_only = fields.get("read_only", "").lower() == "true"
    version = parse_version(fields.get("version"))
    return access, uploads, read_only, "kind" not in fields, version


def _described(owner: str, version: int | None, results: list[Any]) -> list[dict[str, Any]]:
    """Each stored file as LibreChat v0.8.8 describes it: ``fileId``/``filename`` (what it
    reads), with the ``kind``/``resource_id``/``version`` it will name it by."""
    descriptor = services.owner_descriptor(owner, version)
    return [
        {"fileId": result.file_id, "filename": result.filename, **descriptor} for result in results
    ]


@code_api("POST")
def upload(request: HttpRequest) -> HttpResponseBase:
    caller = authenticate(request)  # refused before the body is parsed
    access, uploads, read_only, legacy, version = _uploads(request)
    caller = _named(caller, request, access)
    owner = access_owner(caller, access)
    session_id, results = upload_files(
        caller=caller.budget_key, owner=owner, uploads=uploads, read_only=read_only
    )
    body: dict[str, Any] = {
        "message": "success",
        "storage_session_id": session_id,
        "files": [
            {**entry, "storage_session_id": session_id}
            for entry in _described(owner, version, results)
        ],
    }
    if legacy:
        body["session_id"] = session_id
    return JsonResponse(body)


@code_api("POST")
def upload_batch(request: HttpRequest) -> HttpResponseBase:
    caller = authenticate(request)
    access, uploads, read_only, _legacy, version = _uploads(request)
    caller = _named(caller, request, access)
    owner = access_owner(caller, access)
    session_id, results = upload_files(
        caller=caller.budget_key, owner=owner, uploads=uploads, read_only=read_only, strict=False
    )
    files = [
        {"status": "success", **entry, "storage_session_id": session_id}
        if result.error is None
        else {"status": "error", "filename": result.filename, "error": result.error}
        for entry, result in zip(_described(owner, version, results), results, strict=True)
    ]
    succeeded = sum(1 for result in results if result.error is None)
    failed = len(results) - succeeded
    summary = {"storage_session_id": session_id, "succeeded": succeeded, "failed": failed}
    if not succeeded:
        raise ApplicationError(
            "No file could be stored: " + "; ".join(str(r.error) for r in results),
            code=ErrorCode.UPLOAD_FAILED,
            status=400,
            extra={**summary, "files": files},
        )
    message = "success" if not failed else "partial_success"
    return JsonResponse({"message": message, **summary, "files": files})


# -- files -------------------------------------------------------------------------------------


def _file(request: HttpRequest, session_id: str, file_id: str) -> CodeFile:
    caller = authenticate(request)
    session_id = checked_id(session_id, "session_id")
    file_id = checked_id(file_id, "file_id")
    access = _query_access(request)
    return selectors.file_for_caller(_named(caller, request, access), session_id, file_id, access)


def _iso(record: CodeFile) -> str:
    return record.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _metadata(record: CodeFile) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "storage_session_id": record.session_id,
        **services.owner_descriptor(record.session.owner),
        "path": record.path,
        "size": record.size,
        "contentType": record.content_type,
        "lastModified": _iso(record),
        "etag": record.sha256,
        "sha256": record.sha256,
        "read_only": record.read_only,
        "metadata": {"content-type": record.content_type, "original-filename": record.name},
    }


def _delete(request: HttpRequest, session_id: str, file_id: str) -> JsonResponse:
    record = _file(request, session_id, file_id)
    file_delete(record=record)
    return JsonResponse(
        {"message": "File deleted", "id": record.id, "storage_session_id": record.session_id}
    )


@code_api("GET", "DELETE")
def session_object(request: HttpRequest, session_id: str, file_id: str) -> HttpResponseBase:
    if request.method == "DELETE":
        return _delete(request, session_id, file_id)
    return JsonResponse(_metadata(_file(request, session_id, file_id)))


@code_api("DELETE")
def delete_file(request: HttpRequest, session_id: str, file_id: str) -> HttpResponseBase:
    return _delete(request, session_id, file_id)


@code_api("GET")
def download(request: HttpRequest, session_id: str, file_id: str) -> HttpResponseBase:
    return file_response(request, _file(request, session_id, file_id))


@code_api("GET")
def session_files(request: HttpRequest, session_id: str) -> HttpResponseBase:
    caller = authenticate(request)
    session_id = checked_id(session_id, "session_id")
    detail = request.GET.get("detail", "simple")
    if detail not in ("simple", "summary", "full", "normalized"):
        raise ApplicationError(
            "detail must be one of: simple, summary, full, normalized.", code=ErrorCode.INVALID
        )
    access = _query_access(request)
    session = selectors.session_for_caller(_named(caller, request, access), session_id, access)
    records = selectors.session_files(session)
    if detail == "simple":
        return JsonResponse([f"{r.session_id}/{r.id}" for r in records], safe=False)
    if detail == "normalized":
        listing = [
            {key: _metadata(r)[key] for key in ("id", "name", "storage_session_id", "size")}
            | {"contentType": r.content_type, "lastModified": _iso(r)}
            for r in records
        ]
        return JsonResponse(listing, safe=False)
    summary = [
        {
            "name": f"{r.session_id}/{r.id}",
            "size": r.size,
            "lastModified": _iso(r),
            "etag": r.sha256,
        }
        for r in records
    ]
    if detail == "full":
        for entry, r in zip(summary, records, strict=True):
            entry |= {
                "metadata": {"content-type": r.content_type, "original-filename": r.name},
                "versionId": None,
                "contentType": r.content_type,
            }
    return JsonResponse(summary, safe=False)


@code_api("GET")
def health(request: HttpRequest) -> HttpResponseBase:
    ready, message = sandbox.sandbox_status()
    if not ready:
        raise ApplicationError(message, code=ErrorCode.SANDBOX_UNAVAILABLE, status=503)
    return JsonResponse({"status": "ok", "languages": sorted(sandbox.available_languages())})
