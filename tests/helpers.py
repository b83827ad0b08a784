"""Small helpers shared by the tests."""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment for a child process of ours, without the test run's marker
    (HESTAMI_TESTING), plus the overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESTAMI_")}
    env.update(overrides)
    return env


def run_python(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Our interpreter in a child process, from the repository root; never raises for a
    non-zero exit."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def manage(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python manage.py <args>` in a child process."""
    return run_python(env, "manage.py", *args, timeout=timeout)


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll until the predicate returns something truthy; fail with the message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def _decodings(cell: object) -> Iterable[bytes]:
    raw = cell if isinstance(cell, bytes) else str(cell).encode()
    yield raw
    with contextlib.suppress(binascii.Error, ValueError):  # DBOS stores base64 of a pickle
        yield base64.b64decode(raw, validate=True)


def find_in_database(url: str, secrets: list[str]) -> list[str]:
    """Every table.column of the database whose raw or base64-decoded contents hold a secret."""
    engine = sa.create_engine(url)
    hits: list[str] = []
    try:
        inspector = sa.inspect(engine)
        schemas: list[str | None] = [None]
        if engine.dialect.name == "postgresql":
            schemas = [
                s
                for s in inspector.get_schema_names()
                if s != "information_schema" and not s.startswith("pg_")
            ]
        with engine.connect() as connection:
            tables = [
                (name, table) for name in schemas for table in inspector.get_table_names(name)
            ]
            for schema, table_name in tables:
                table = sa.Table(table_name, sa.MetaData(), autoload_with=connection, schema=schema)
                for row in connection.execute(sa.select(table)):
                    for column, cell in zip(table.columns, row, strict=True):
                        if cell is None:
                            continue
                        for data in _decodings(cell):
                            for secret in secrets:
                                if secret.encode() in data:
                                    hits.append(f"{table_name}.{column.name}")
    finally:
        engine.dispose()
    return hits


class RawHttp:
    """HTTP/1.1 with the request target sent exactly as given, over one kept-alive connection
    (httpx resolves `./` and `../` and re-encodes; http.client refuses non-ASCII). Non-ASCII in a
    target goes out as raw UTF-8 bytes."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.address = (parts.hostname or "", parts.port or 80)
        self.host = parts.netloc
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        lines = [
            f"{method} ".encode() + target.encode() + b" HTTP/1.1",
            f"Host: {self.host}".encode(),
            f"Content-Length: {len(body)}".encode(),
            *(f"{name}: {value}".encode() for name, value in (headers or {}).items()),
        ]
        if self._sock is None:
            self._sock = socket.create_connection(self.address, self.timeout)
        self._sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(self._sock)
        try:
            response.begin()
            answer = response.status, response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return answer

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> RawHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_raw(
    base_url: str,
    method: str,
    target: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request with the request target exactly as given (see RawHttp): status and body."""
    with RawHttp(base_url) as connection:
        return connection.request(method, target, body=body, headers=headers)
