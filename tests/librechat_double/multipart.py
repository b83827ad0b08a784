"""A streaming multipart/form-data reader, standing in for multer + busboy.

The request body is never held in memory: the file part goes to a temporary file chunk by
chunk while the parser keeps at most one chunk plus a boundary's worth of bytes. Text fields
(limited to 1 MB each, like busboy's fieldSize) are collected in order. As in multer's
`upload.single('file')`, a file in any other field, or a second file, is an error.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

FIELD_SIZE_LIMIT = 1024 * 1024
HEADER_BLOCK_LIMIT = 64 * 1024
_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class MultipartError(Exception):
    """multer/busboy gave up; LibreChat's error handler answers 500 text."""


@dataclass
class UploadedFile:
    field_name: str
    # The filename parameter as busboy reads it (latin1), not yet URI-decoded.
    raw_filename: str
    content_type: str
    path: Path
    size: int = 0


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    # Every part's field name, files included, in the order they arrived.
    order: list[str] = field(default_factory=list)
    file: UploadedFile | None = None

    def discard(self) -> None:
        if self.file is not None:
            self.file.path.unlink(missing_ok=True)


def boundary_of(content_type: str) -> bytes | None:
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "multipart/form-data":
        return None
    for name, value in _PARAM.findall(";" + params):
        if name.lower() == "boundary":
            boundary = _unquote(value.strip())
            return boundary.encode("latin-1") if boundary else None
    return None


async def read_multipart(
    chunks: AsyncIterator[bytes],
    boundary: bytes,
    *,
    directory: Path,
    max_file_size: int,
    file_field: str = "file",
) -> MultipartForm:
    parser = _Parser(boundary, directory, max_file_size, file_field)
    try:
        async for chunk in chunks:
            parser.feed(chunk)
        parser.finish()
    except BaseException:
        parser.abandon()
        raise
    return parser.form


class _Parser:
    def __init__(self, boundary: bytes, directory: Path, max_file_size: int, file_field: str):
        self.delimiter = b"--" + boundary
        self.separator = b"\r\n" + self.delimiter
        self.directory = directory
        self.max_file_size = max_file_size
        self.file_field = file_field
        self.form = MultipartForm()
        self.buffer = bytearray()
        self.state = "preamble"
        self.field_name: str | None = None
        self.field_value = bytearray()
        self.sink: BinaryIO | None = None

    def feed(self, data: bytes) -> None:
        if self.state == "done":
            return  # the epilogue is ignored
        self.buffer += data
        while self._step():
            pass

    def finish(self) -> None:
        if self.state != "done":
            raise MultipartError("Unexpected end of form")

    def abandon(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        self.form.discard()

    def _step(self) -> bool:
        buffer = self.buffer
        if self.state == "preamble":
            index = buffer.find(self.delimiter)
            if index < 0:
                keep = len(self.delimiter) - 1
                if len(buffer) > keep:
                    del buffer[: len(buffer) - keep]
                return False
            del buffer[: index + len(self.delimiter)]
            self.state = "after_delimiter"
            return True
        if self.state == "after_delimiter":
            while buffer and buffer[0] in (0x20, 0x09):  # transport padding
                del buffer[:1]
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self.state = "done"
                buffer.clear()
                return False
            if buffer[:2] != b"\r\n":
                raise MultipartError("Malformed part header")
            del buffer[:2]
            self.state = "headers"
            return True
        if self.state == "headers":
            if buffer[:2] == b"\r\n":
                block, consumed = b"", 2
            else:
                index = buffer.find(b"\r\n\r\n")
                if index < 0:
                    if len(buffer) > HEADER_BLOCK_LIMIT:
                        raise MultipartError("Malformed part header")
                    return False
                block, consumed = bytes(buffer[:index]), index + 4
            del buffer[:consumed]
            self._begin_part(block)
            self.state = "body"
            return True
        if self.state == "body":
            index = buffer.find(self.separator)
            if index < 0:
                safe = len(buffer) - (len(self.separator) - 1)
                if safe > 0:
                    self._write(bytes(buffer[:safe]))
                    del buffer[:safe]
                return False
            self._write(bytes(buffer[:index]))
            del buffer[: index + len(self.separator)]
            self._end_part()
            self.state = "after_delimiter"
            return True
        return False

    def _begin_part(self, block: bytes) -> None:
        headers: dict[str, str] = {}
        for line in block.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = {k.lower(): _unquote(v.strip()) for k, v in _PARAM.findall(disposition)}
        name = params.get("name", "")
        self.form.order.append(name)
        if "filename" not in params:
            self.field_name = name
            self.field_value = bytearray()
            return
        if name != self.file_field or self.form.file is not None:
            raise MultipartError("Unexpected field")  # multer's LIMIT_UNEXPECTED_FILE
        path = self.directory / f"upload-{secrets.token_hex(8)}"
        self.sink = path.open("wb")
        self.form.file = UploadedFile(
            field_name=name,
            raw_filename=params["filename"],
            content_type=headers.get("content-type", "application/octet-stream"),
            path=path,
        )

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.sink is not None and self.form.file is not None:
            self.form.file.size += len(data)
            if self.form.file.size > self.max_file_size:
                raise MultipartError("File too large")  # multer's LIMIT_FILE_SIZE
            self.sink.write(data)
        elif len(self.field_value) < FIELD_SIZE_LIMIT:
            self.field_value += data[: FIELD_SIZE_LIMIT - len(self.field_value)]

    def _end_part(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        elif self.field_name is not None:
            self.form.fields[self.field_name] = self.field_value.decode("utf-8", "replace")
            self.field_name = None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
