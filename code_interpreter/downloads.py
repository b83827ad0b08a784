"""Serving a stored file: one byte range at most, the real name, and nothing a browser runs.

LibreChat fetches generated files with axios (15 s) and passes our headers on to the browser, so
the reply carries ``Content-Type``, ``Content-Length``, ``Accept-Ranges`` and an RFC 6266/5987
``Content-Disposition``; ``attachment`` plus a ``sandbox`` CSP keep an HTML or SVG output from
running as our origin.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

from code_interpreter.ids import basename
from code_interpreter.models import CodeFile
from code_interpreter.storage import file_storage
from core.errors import ApplicationError, ErrorCode

CHUNK = 256 * 1024
IN_MEMORY_MAX = 1024 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(first, last) for one satisfiable range; None to send everything; False if unsatisfiable.

    Several ranges, or a header we do not understand, mean the whole file (RFC 9110 allows it).
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return False
    return first, min(last, size - 1)


def _sync_chunks(source: Any, length: int) -> Iterator[bytes]:
    with source:
        remaining = length
        while remaining > 0:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


async def _async_chunks(source: Any, length: int) -> AsyncIterator[bytes]:
    """Reads happen off the event loop; under ASGI a sync iterator would be buffered whole."""
    try:
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(source.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(source.close)


def file_response(request: HttpRequest, record: CodeFile) -> HttpResponseBase:
    storage = file_storage()
    try:
        source = storage.open(record.storage_name, "rb")
    except FileNotFoundError:
        raise ApplicationError(
            f"File {record.session_id}/{record.id} is no longer stored.",
            code=ErrorCode.NOT_FOUND,
            status=404,
        ) from None
    size = record.size
    wanted = parse_range(request.headers.get("Range"), size)
    if wanted is False:
        source.close()
        raise ApplicationError(
            f"The file has {size} bytes.",
            code=ErrorCode.RANGE_NOT_SATISFIABLE,
            status=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    first, last = wanted if isinstance(wanted, tuple) else (0, size - 1)
    length = max(0, last - first + 1)
    if first:
        source.seek(first)
    if length <= IN_MEMORY_MAX:
        with source:
            response: HttpResponseBase = HttpResponse(
                source.read(length), content_type=record.content_type
            )
    elif isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(
            _async_chunks(source, length), content_type=record.content_type
        )
    else:
        response = StreamingHttpResponse(
            _sync_chunks(source, length), content_type=record.content_type
        )
    if isinstance(wanted, tuple):
        response.status_code = 206
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = content_disposition_header(True, basename(record.name))
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=0"
    response["ETag"] = f'"{record.sha256}"'
    response["Last-Modified"] = record.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return response
