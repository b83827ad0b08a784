"""/api/files and the public /images/* files (`api/server/routes/files/*.js`).

The group runs requireJwtAuth → checkBan → uaParser; POSTs then pass the upload limiters
(per IP, then per user, whose headers win). `POST /api/files` streams the multipart body
to disk (multipart.py), then applies multer's and `filterFile`'s rules: a UUID `file_id`
(which becomes `temp_file_id`: the server issues a new one), an `endpoint`, a non-empty file,
the URI-encoded filename decoded with JavaScript's strictness.
"""

from __future__ import annotations

import json
import mimetypes
import re
import unicodedata
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .api_routes import outside_api
from .express import send_json, send_text
from .fake_model import CODE_FILE_ID, CODE_SESSION_ID, PLOT_PNG, UPLOAD_FILE_ID, UPLOAD_SESSION_ID
from .guards import double_state, guarded_body, guarded_user, request_ip
from .ids import is_code_id, is_uuid, new_uuid
from .multipart import MultipartError, boundary_of, read_multipart
from .rate_limit import hit_stacked
from .state import DoubleState, User

UPLOAD_OK = "Agent file uploaded and processed successfully"
UPLOAD_ERROR = "Error processing file"
UNKNOWN_ERROR = "An unknown error occurred."
IMAGE_CACHE_CONTROL = "public, max-age=172800, s-maxage=86400"
# The metadata `GET /api/files/download` puts in X-File-Metadata (DOWNLOAD_METADATA_FIELDS).
DOWNLOAD_METADATA_FIELDS = (
    "conversationId",
    "message",
    "file_id",
    "temp_file_id",
    "bytes",
    "model",
    "embedded",
    "filename",
    "filepath",
    "storageKey",
    "storageRegion",
    "object",
    "type",
    "usage",
    "context",
    "source",
    "filterSource",
    "width",
    "height",
    "expiresAt",
    "preview",
    "textFormat",
    "status",
    "previewError",
    "createdAt",
    "updatedAt",
)
_URI_COMPONENT_SAFE = "-_.!~*'()"
_UUID_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}__", re.I)
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def files_routes() -> list[Route]:
    return [
        Route("/api/files", upload, methods=["POST"]),
        Route("/api/files", list_files, methods=["GET"]),
        Route("/api/files", delete_files, methods=["DELETE"]),
        Route("/api/files/download/{user_id}/{file_id}", download, methods=["GET"]),
        Route("/api/files/code/download/{session_id}/{file_id}", code_download, methods=["GET"]),
        Route("/images/{rest:path}", image, methods=["GET", "HEAD"]),
    ]


class URIError(ValueError):
    pass


def decode_uri_component(value: str) -> str:
    """JavaScript's decodeURIComponent: a stray `%` or bad UTF-8 throws URIError."""
    out = bytearray()
    position = 0
    while position < len(value):
        char = value[position]
        if char != "%":
            out += char.encode()
            position += 1
            continue
        match = _PERCENT.match(value, position)
        if match is None:
            raise URIError("URI malformed")
        out.append(int(match.group(1), 16))
        position += 3
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as error:
        raise URIError("URI malformed") from error


def sanitize_filename(name: str) -> str:
    """sanitizeFilename: ASCII outside [a-zA-Z0-9._-] becomes `_`; letters of any script stay."""
    cleaned = []
    for char in unicodedata.normalize("NFC", name.replace("\\", "/").split("/")[-1]):
        if ord(char) > 0x7F:
            category = unicodedata.category(char)
            cleaned.append(char if category[0] in {"L", "M", "N", "S"} else "_")
        else:
            cleaned.append(char if char.isalnum() or char in "._-" else "_")
    return "".join(cleaned) or "_"


# -- upload ------------------------------------------------------------------------------------


def _upload_limits(
    state: DoubleState, user: User, ip: str | None
) -> tuple[list[tuple[str, str]], Response | None]:
    config, store = state.config, state.chat
    headers, exceeded = hit_stacked(
        (
            (
                store.upload_ip_limiter,
                ip or "",
                config.file_upload_ip_max,
                config.file_upload_ip_window_s,
                "ip",
            ),
            (
                store.upload_user_limiter,
                user.id,
                config.file_upload_user_max,
                config.file_upload_user_window_s,
                "user",
            ),
        ),
        state.now,
    )
    if exceeded is None:
        return headers, None
    kind = exceeded[0]
    state.record_violation(
        user_id=user.id, ip=ip, violation_type=f"file_upload_limit_{kind}", score=1
    )
    message = {"message": "Too many file upload requests. Try again later"}
    return headers, send_json(message, status=429, headers=headers)


async def upload(request: Request) -> Response:
    """POST /api/files: 200 with the new file record, or 500 `{"message"}`."""
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    ip = request_ip(request, state)
    headers, limited = _upload_limits(state, user, ip)
    if limited is not None:
        return limited
    store = state.chat
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        # multer ignores the body; filterFile then fails on the missing file.
        return send_json({"message": UPLOAD_ERROR}, status=500, headers=headers)
    try:
        form = await read_multipart(
            request.stream(),
            boundary,
            directory=store.upload_dir(),
            max_file_size=state.config.file_size_limit_bytes,
        )
    except MultipartError:
        return send_text(UNKNOWN_ERROR, status=500, headers=headers)
    try:
        return _process_upload(state, user, form.fields, form.file, headers)
    finally:
        form.discard()


def _process_upload(
    state: DoubleState,
    user: User,
    fields: dict[str, str],
    uploaded: Any,
    headers: list[tuple[str, str]],
) -> Response:
    store = state.chat
    if uploaded is not None:
        try:
            original = decode_uri_component(uploaded.raw_filename)
        except URIError:
            # Thrown inside multer's storage callback: Express's error handler.
            return send_text(UNKNOWN_ERROR, status=500, headers=headers)
    failure = send_json({"message": UPLOAD_ERROR}, status=500, headers=headers)
    temp_file_id = fields.get("file_id")
    endpoint = fields.get("endpoint")
    if not temp_file_id or uploaded is None or uploaded.size == 0 or not is_uuid(temp_file_id):
        return failure
    if not endpoint:
        return failure
    message_file = bool(fields.get("message_file"))
    agent_id = fields.get("agent_id")
    tool_resource = fields.get("tool_resource")
    content_type = _mime_type(original, uploaded.content_type)
    is_image = content_type.startswith("image")
    if agent_id and not tool_resource and not message_file:
        return failure
    if tool_resource == "file_search" and is_image:
        return failure
    if not message_file and not agent_id:
        return failure
    file_id = new_uuid()
    filename = sanitize_filename(original)
    folder = "images" if is_image else "uploads"
    record: dict[str, Any] = {
        "bytes": uploaded.size,
        "context": "message_attachment" if message_file else "agents",
        "filename": filename,
        "filepath": f"/{folder}/{user.id}/{file_id}__{filename}",
        "source": "local",
        "temp_file_id": temp_file_id,
        "type": content_type,
    }
    if not message_file and fields.get("model"):
        record["model"] = fields["model"]
    if tool_resource == "execute_code":
        # Uploaded to the Code API as kind "user" (chat attachment) or "agent".
        record["metadata"] = {
            "codeEnvRef": {
                "kind": "user" if message_file else "agent",
                "id": user.id if message_file else agent_id,
                "storage_session_id": UPLOAD_SESSION_ID,
                "file_id": UPLOAD_FILE_ID,
            }
        }
    if is_image:
        for key in ("width", "height"):
            size = fields.get(key)
            if size and size.isdigit():
                record[key] = int(size)
    destination = store.upload_dir() / f"{file_id}__stored"
    uploaded.path.replace(destination)
    document = store.add_file(user.id, file_id, record, path=destination)
    state.count("uploads")
    return send_json({"message": UPLOAD_OK, **document}, headers=headers)


def _mime_type(filename: str, declared: str) -> str:
    """inferMimeType: the part's type unless it is missing or generic, then the extension's."""
    declared = declared.split(";")[0].strip().lower()
    if declared and declared != "application/octet-stream":
        return declared
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or declared or "application/octet-stream"


# -- listing, deleting, downloading -------------------------------------------------------------


async def list_files(request: Request) -> Response:
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    return send_json(state.chat.files_of(user.id))


async def delete_files(request: Request) -> Response:
    """DELETE /api/files {"files":[{file_id, filepath}]}: only the caller's own files."""
    state = double_state(request)
    admitted = await guarded_body(request, state)
    if isinstance(admitted, Response):
        return admitted
    body, user = admitted
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list):
        reason = "Cannot read properties of undefined (reading 'filter')"
        return send_json({"message": "Error in request", "error": reason}, status=400)
    wanted = [
        str(f["file_id"])
        for f in files
        if isinstance(f, dict)
        and f.get("file_id")
        and f.get("filepath")
        and (re.match(r"^(file|assistant)-", str(f["file_id"])) or is_uuid(f["file_id"]))
    ]
    if not wanted:
        return Response(status_code=204)
    store = state.chat
    found = [stored for fid in wanted if (stored := store.find_file(fid)) is not None]
    foreign = [stored.file_id for stored in found if stored.user != user.id]
    if foreign:
        return send_json(
            {
                "message": "You can only delete files you have access to",
                "unauthorizedFiles": foreign,
            },
            status=403,
        )
    store.delete_files([stored.file_id for stored in found])
    return send_json({"message": "Files deleted successfully"})


async def download(request: Request) -> Response:
    """GET /api/files/download/:userId/:file_id: the bytes as an attachment (fileAccess)."""
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    stored = state.chat.find_file(request.path_params["file_id"])
    if stored is None:
        return send_json({"error": "Not Found", "message": "File not found"}, status=404)
    if stored.user != user.id:
        return send_json(
            {"error": "Forbidden", "message": "Insufficient permissions to access this file"},
            status=403,
        )
    document = state.chat.render_file(stored)
    metadata = {key: document[key] for key in DOWNLOAD_METADATA_FIELDS if key in document}
    metadata_json = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
    response = StreamingResponse(stored.chunks(), media_type=None)
    response.headers["Content-Disposition"] = content_disposition(str(document.get("filename")))
    response.headers["Content-Type"] = "application/octet-stream"
    response.headers["X-File-Metadata"] = quote(metadata_json, safe=_URI_COMPONENT_SAFE)
    return response


def content_disposition(filename: str) -> str:
    """getContentDisposition: an ASCII fallback plus the RFC 5987 `filename*`."""
    cleaned = _UUID_PREFIX.sub("", filename) or "download"
    fallback = "".join(
        "_" if not (0x20 <= ord(c) <= 0x7E) or c in '"\\\r\n' else c
        for c in unicodedata.normalize("NFKD", cleaned)
    )
    encoded = quote(cleaned, safe="-_.!~")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


async def code_download(request: Request) -> Response:
    """GET /api/files/code/download/:session_id/:fileId: 21-character ids or 400 "Bad request"."""
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    session_id = request.path_params["session_id"]
    file_id = request.path_params["file_id"]
    if not is_code_id(session_id) or not is_code_id(file_id):
        return send_text("Bad request", status=400)
    if (session_id, file_id) != (CODE_SESSION_ID, CODE_FILE_ID):
        # The fake Code API only knows its plot; anything else fails upstream.
        return send_text("Error downloading file", status=500)
    return Response(PLOT_PNG, media_type="image/png")


async def image(request: Request) -> Response:
    """The public /images/<userId>/… static files; anything else is the single-page app."""
    state = double_state(request)
    stored = state.chat.file_by_filepath(request.url.path)
    if stored is None:
        return await outside_api(request)
    body = b"".join(stored.chunks())
    media_type = str(stored.fields.get("type") or "application/octet-stream")
    response = Response(body, media_type=media_type)
    response.headers["Cache-Control"] = IMAGE_CACHE_CONTROL
    return response
