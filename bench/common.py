"""What the benchmarks share: ports, waiting for a server, percentiles, memory."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the URL answers (any status), failing early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited early ({process.returncode})")
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start_app(
    port: int,
    env: dict[str, str],
    *,
    prefix: list[str] | None = None,
    quiet: bool = False,
    app_dir: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Our ASGI app under uvicorn, one worker as deployed, on loopback; no access log line.
    ``app_dir``: the code of another checkout (an older commit, measured beside this one)."""
    root = Path(__file__).resolve().parent.parent
    output = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(
        [
            *(prefix or []),
            str(root / ".venv/bin/uvicorn"),
            "hestami_ai.asgi:application",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=app_dir or root,
        env={"ACCESS_LOG": "false", **env},
        stdout=output,
        stderr=output,
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc), all threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_env(tmp: Path, *, librechat_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    """Production-like settings for a benchmark's app: DEBUG off, throwaway secrets, its own
    database (SQLite under ``tmp``, or ``BENCH_DATABASE_URL``: a separate variable, so a bench
    never wipes a database meant for something else), quiet logs."""
    from cryptography.fernet import Fernet

    return {
        "DJANGO_SETTINGS_MODULE": "hestami_ai.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-0123456789-0123456789-0123456789",
        "JWT_SIGNING_KEY": "bench-jwt-key-0123456789-0123456789-0123456789",
        "LIBRECHAT_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "LIBRECHAT_API_URL": librechat_url,
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp / 'db.sqlite3'}"),
        "VAR_DIR": str(tmp),
        "DBOS_IN_WEB": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }


def librechat_account(client: httpx.Client, email: str, password: str) -> dict[str, Any]:
    """Register ``email`` on the LibreChat double behind ``client`` and log in; LibreChat's
    log-in answer (its ``token`` and ``user``)."""
    client.post(
        "/api/auth/register",
        json={"name": "Bench", "email": email, "password": password, "confirm_password": password},
    )
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    login.raise_for_status()
    return dict(login.json())
