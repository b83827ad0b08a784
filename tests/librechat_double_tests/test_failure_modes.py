"""Failure modes, health probes, the control endpoints and the standalone server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.librechat_double import DoubleConfig, LibreChatDouble
from tests.librechat_double.pytest_plugin import MakeDouble

from .chat_helpers import FAST, start
from .conftest import BROWSER_UA, connect, register_and_login, registration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_health_probes_and_unknown_api_paths(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    for path in ("/health", "/livez", "/readyz"):
        response = client.get(path)
        assert (response.status_code, response.text) == (200, "OK")
        assert response.headers["content-type"] == "text/html; charset=utf-8"
    missing = client.get("/api/health")
    assert (missing.status_code, missing.json()) == (404, {"message": "Endpoint not found"})
    assert client.get("/api/auth/login").status_code == 404  # wrong method falls through
    assert missing.headers["x-robots-tag"] == "noindex"
    config = client.get("/api/config").json()
    assert config["registrationEnabled"] is True
    assert "minPasswordLength" not in config


def test_not_ready(librechat_double: LibreChatDouble, clients: list[httpx.Client]) -> None:
    client = connect(librechat_double, clients)
    login = register_and_login(client, "ready@example.com")
    librechat_double.set_ready(False)
    readyz = client.get("/readyz")
    chat = client.post(
        "/api/agents/chat/openAI",
        headers={"Authorization": f"Bearer {login.json()['token']}", "User-Agent": BROWSER_UA},
    )
    assert (readyz.status_code, readyz.text) == (503, "NOT_READY")
    assert (chat.status_code, chat.json(), chat.headers["retry-after"]) == (
        503,
        {"code": "SERVER_NOT_READY"},
        "1",
    )
    assert client.get("/health").status_code == 200


def test_down_refuses_connections_and_recovers_on_the_same_port(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    port = librechat_double.port
    client.post("/api/auth/register", json=registration("kept@example.com"))

    librechat_double.set_mode("down")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{librechat_double.url}/health", timeout=2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    librechat_double.set_mode("ok")
    assert librechat_double.port == port
    assert client.get("/health").text == "OK"
    assert librechat_double.state.get_user("kept@example.com") is not None


def test_crash_cuts_a_stream_mid_answer_and_refuses_connections(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(**{**FAST, "fake_slow_token_delay_s": 0.2})
    client = connect(double, clients, **{"User-Agent": BROWSER_UA})
    token = register_and_login(client, "crash@example.com").json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    stream_id = start(client, "SLOW please")["streamId"]
    received = b""
    url = f"/api/agents/chat/stream/{stream_id}"
    with (  # noqa: PT012 (the cut comes while reading)
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        client.stream("GET", url) as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
            if received.count(b"on_message_delta") == 1:
                double.set_mode("crash")
    assert b"event: error" not in received  # no goodbye: the process is gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", double.port), timeout=2).close()
    double.set_mode("ok")
    assert client.get("/health").text == "OK"


def test_slow_mode_delays_every_response(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    librechat_double.set_mode("slow", seconds=0.4)
    started = time.monotonic()
    assert client.get("/health").status_code == 200
    assert time.monotonic() - started >= 0.4
    with pytest.raises(httpx.ReadTimeout):
        client.get("/health", timeout=0.1)


def test_error500_mode(librechat_double: LibreChatDouble, clients: list[httpx.Client]) -> None:
    client = connect(librechat_double, clients)
    librechat_double.set_mode("error500")
    response = client.post("/api/auth/login", json={})
    assert (response.status_code, response.json()) == (500, {"message": "Something went wrong"})
    assert client.get("/health").status_code == 200
    assert librechat_double.state.login_calls == 0
    assert librechat_double.state.requests_to("/api/auth/login")[0].status == 500


def test_ratelimit429_mode(librechat_double: LibreChatDouble, clients: list[httpx.Client]) -> None:
    client = connect(librechat_double, clients)
    librechat_double.set_mode("ratelimit429", retry_after_s=42)
    response = client.post("/api/auth/login", json={})
    assert (response.status_code, response.json()) == (
        429,
        {"message": "Too many login attempts, please try again after 5 minutes."},
    )
    assert response.headers["retry-after"] == "42"
    assert response.headers["x-ratelimit-limit"] == "7"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["x-ratelimit-reset"]) >= int(time.time()) + 41
    librechat_double.set_mode("ok")
    assert client.post("/api/auth/login", json={}).status_code == 404


def test_unknown_mode_is_refused(librechat_double: LibreChatDouble) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        librechat_double.set_mode("flaky")
    with pytest.raises(ValueError, match="no option"):
        librechat_double.set_mode("error500", seconds=3)


def test_request_log_keeps_headers_and_bodies(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients, **{"User-Agent": "hestami-bff/1.0"})
    client.post(
        "/api/auth/register",
        json=registration("log@example.com"),
        headers={"X-Forwarded-For": "192.0.2.10"},
    )
    (entry,) = librechat_double.state.requests_to("/api/auth/register", "POST")
    assert entry.header("User-Agent") == "hestami-bff/1.0"
    assert entry.header("x-forwarded-for") == "192.0.2.10"
    assert (entry.client_ip, entry.peer_ip, entry.status) == ("192.0.2.10", "127.0.0.1", 200)
    assert entry.json()["email"] == "log@example.com"


def test_control_endpoints(make_librechat_double: MakeDouble, clients: list[httpx.Client]) -> None:
    double = make_librechat_double(duplicate_delay_s=0)
    client = connect(double, clients)
    control = "/__double__"

    added = client.post(f"{control}/users", json={"email": "Seed@Example.com", "password": "pw"})
    assert (added.status_code, added.json()["role"]) == (201, "ADMIN")
    client.post(
        f"{control}/users/verification", json={"email": "seed@example.com", "verified": False}
    )
    assert double.state.get_user("seed@example.com").email_verified is False  # type: ignore[union-attr]
    client.post(f"{control}/config", json={"allow_registration": "false", "login_max": 2})
    assert (double.config.allow_registration, double.config.login_max) == (False, 2)
    assert client.post(f"{control}/mode", json={"mode": "error500"}).json() == {"mode": "error500"}
    assert client.get("/api/config").status_code == 500
    assert client.post(f"{control}/mode", json={"mode": "down"}).status_code == 400
    client.post(f"{control}/mode", json={"mode": "ok"})
    client.post(f"{control}/clock", json={"advance_s": 10})
    client.post(f"{control}/bans", json={"key": "192.0.2.99", "duration_s": 60})
    summary = client.get(f"{control}/state").json()
    assert summary["bans"] == ["192.0.2.99"]
    assert summary["clock_offset_s"] == 10
    assert summary["users"][0]["email"] == "seed@example.com"
    assert [r["path"] for r in client.get(f"{control}/requests").json()] == ["/api/config"]
    assert client.post(f"{control}/reset").json()["users"] == []
    assert double.state.requests == []


def test_down_from_the_control_endpoint_comes_back_by_itself(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    answer = client.post("/__double__/mode", json={"mode": "down", "duration_s": 0.5})
    assert answer.json() == {"mode": "down"}
    assert _poll_health(librechat_double.url, want_up=False)
    assert _poll_health(librechat_double.url, want_up=True)
    assert librechat_double.state.mode.name == "ok"


def _poll_health(url: str, *, want_up: bool, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            up = httpx.get(f"{url}/health", timeout=0.5).status_code == 200
        except httpx.TransportError:
            up = False
        if up == want_up:
            return True
        time.sleep(0.02)
    return False


def test_context_manager_and_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LibreChatDouble(DoubleConfig(), port=port) as double:
        assert double.url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{double.url}/livez").text == "OK"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)


def test_standalone_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.librechat_double",
            "--port",
            str(port),
            "--set",
            "register_max=1",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"127.0.0.1:{port}" in process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/__double__/config").json()["register_max"] == 1
        assert (
            httpx.post(f"{url}/api/auth/register", json=registration("a@example.com")).status_code
            == 200
        )
        assert (
            httpx.post(f"{url}/api/auth/register", json=registration("b@example.com")).status_code
            == 429
        )
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cors_preflight_and_spa_fallback(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    preflight = client.options(
        "/api/auth/login", headers={"Access-Control-Request-Headers": "content-type"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert client.get("/c/new").status_code == 200
    assert client.post("/c/new").text.count("Cannot POST /c/new") == 1


def test_refresh_for_a_deleted_user_redirects_to_login(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    login = register_and_login(client, "gone@example.com")
    librechat_double.state.delete_user("gone@example.com")
    cookie = login.headers.get_list("set-cookie")[0].split(";")[0]
    response = client.post("/api/auth/refresh", headers={"Cookie": cookie})
    assert (response.status_code, response.headers["location"]) == (302, "/login")
