from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from code_interpreter.sandbox.memory import memory_enforcement
from core import dbos, health
from librechat import readiness as librechat_readiness
from tests.helpers import child_env, manage
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dbos_system_db(settings: Any, tmp_path: Path) -> Iterator[str]:
    """A reachable DBOS system database for the not-launched (test) process to check."""
    dbos.shutdown()
    settings.DBOS_SYSTEM_DATABASE_URL = f"sqlite:///{tmp_path / 'dbos.sqlite3'}"
    yield settings.DBOS_SYSTEM_DATABASE_URL
    dbos.shutdown()


@pytest.fixture
def ready(librechat: LibreChatDouble, dbos_system_db: str, sandbox_ready: None) -> LibreChatDouble:
    return librechat


def test_healthz_answers_any_host_without_io(
    client: Client, settings: Any, django_assert_num_queries: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = True  # a plain-HTTP probe must not be redirected
    with django_assert_num_queries(0):
        response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"]


def test_healthz_refuses_other_methods(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


def test_readyz_all_checks_pass(client: Client, ready: LibreChatDouble) -> None:
    response = client.get("/readyz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "dbos", "librechat", "sandbox"}
    assert all(check["status"] == "ok" for check in body["checks"].values()), body
    # LibreChat is reported but optional by default; everything else is required.
    assert {name for name, c in body["checks"].items() if not c["required"]} == {"librechat"}
    # It says how memory per execution is enforced on this host.
    enforcement = memory_enforcement()
    assert body["checks"]["sandbox"]["detail"] == f"ready; {enforcement.describe()}"
    assert enforcement.describe().startswith(f"memory per execution: {enforcement.kind}")
    # LibreChat was really asked, with our User-Agent and the probe's request id.
    probe = ready.state.requests_to("/readyz")[-1]
    headers = dict(probe.headers)
    assert headers["x-request-id"] == response["X-Request-ID"]
    assert "Chrome/" in headers["user-agent"]


def test_a_burst_of_probes_asks_librechat_once(
    ready: LibreChatDouble, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz is public: 20 probes at once, then 20 more while the answer is fresh, reach
    LibreChat's /readyz once; a probe after that asks again."""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(
        librechat_readiness, "LIBRECHAT_MEMO_S", 60.0
    )  # "fresh" for the whole burst
    with AppServer() as server, httpx.Client(base_url=server.url, timeout=30) as client:

        def probe() -> int:
            return client.get("/readyz").status_code

        for _ in range(2):
            threads = [threading.Thread(target=probe) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        asked = len(ready.state.requests_to("/readyz"))
        assert librechat_readiness._librechat_memo is not None
        when, failure = librechat_readiness._librechat_memo
        librechat_readiness._librechat_memo = (when - 61.0, failure)  # the answer has grown old
        assert probe() == 200
    assert asked == 1
    assert len(ready.state.requests_to("/readyz")) == 2


def test_by_default_librechat_down_is_degraded_not_unready(
    client: Client, ready: LibreChatDouble, console: Any
) -> None:
    """A LibreChat restart must not take every web process out of rotation: sign-up, accounts,
    the Code API and queued provisioning all work without it."""
    ready.set_mode("down")
    try:
        response = client.get("/readyz")
    finally:
        ready.set_mode("ok")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["librechat"]["status"] == "fail"
    assert body["checks"]["librechat"]["required"] is False
    assert body["checks"]["librechat"]["detail"] == "LibreChat is unreachable (ConnectError)."
    assert "degraded: librechat: LibreChat is unreachable" in console.text


def test_readyz_503_names_the_failed_check_without_urls(
    client: Client, ready: LibreChatDouble, console: Any, settings: Any
) -> None:
    settings.READYZ_OPTIONAL_CHECKS = []  # the strict switch: LibreChat required
    ready.set_ready(False)
    response = client.get("/readyz")
    # One warning naming the check, not Django's "Service Unavailable" error per probe.
    assert "not ready: librechat: LibreChat's /readyz answered 503." in console.text
    assert "Service Unavailable" not in console.text
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["librechat"] == {
        "status": "fail",
        "detail": "LibreChat's /readyz answered 503.",
        "duration_ms": body["checks"]["librechat"]["duration_ms"],
        "required": True,
    }
    assert body["checks"]["database"]["status"] == "ok"
    assert ready.url not in response.content.decode()


def test_optional_checks_are_reported_but_do_not_fail(
    client: Client, ready: LibreChatDouble, settings: Any
) -> None:
    settings.READYZ_OPTIONAL_CHECKS = ["librechat"]
    ready.set_ready(False)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    check = response.json()["checks"]["librechat"]
    assert (check["status"], check["required"]) == ("fail", False)


def test_the_strict_switch_is_an_empty_list() -> None:
    """READYZ_OPTIONAL_CHECKS= (empty) makes every check required, LibreChat included."""
    code = "from django.conf import settings; print(settings.READYZ_OPTIONAL_CHECKS)"
    default = manage(child_env(), "shell", "-c", code).stdout.splitlines()[-1]
    strict = manage(child_env(READYZ_OPTIONAL_CHECKS=""), "shell", "-c", code)
    assert (default, strict.stdout.splitlines()[-1]) == ("['librechat']", "[]")


def test_dbos_failure_hides_credentials(
    client: Client, ready: LibreChatDouble, settings: Any, console: Any
) -> None:
    dbos.shutdown()
    settings.DBOS_SYSTEM_DATABASE_URL = "postgresql://hestami:s3cretpw@127.0.0.1:9/hestami_dbos"
    response = client.get("/readyz")
    assert response.status_code == 503
    text = response.content.decode()
    assert response.json()["checks"]["dbos"] == {
        "status": "fail",
        "detail": "OperationalError (see the server log).",
        "duration_ms": response.json()["checks"]["dbos"]["duration_ms"],
        "required": True,
    }
    assert "s3cretpw" not in text
    assert "127.0.0.1:9" not in text
    # The log has the details, without the password.
    assert "readiness check dbos failed" in console.text
    assert "s3cretpw" not in console.text


def test_dbos_must_be_launched_in_a_web_process(
    client: Client, ready: LibreChatDouble, settings: Any
) -> None:
    settings.TESTING = False  # as under uvicorn, where hestami_ai/asgi.py launches it
    settings.DBOS_IN_WEB = True
    body = client.get("/readyz").json()
    assert body["checks"]["dbos"]["status"] == "fail"
    assert "not launched" in body["checks"]["dbos"]["detail"]


def test_sandbox_failure_is_cached(
    client: Client, ready: LibreChatDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    from code_interpreter import sandbox

    calls: list[int] = []

    def unready() -> tuple[bool, str]:
        calls.append(1)
        return False, "bubblewrap (bwrap) is not installed, so code execution is disabled."

    monkeypatch.setattr(sandbox, "sandbox_status", unready)
    first = client.get("/readyz")
    second = client.get("/readyz")
    assert (first.status_code, second.status_code) == (503, 503)
    assert "bubblewrap" in second.json()["checks"]["sandbox"]["detail"]
    assert len(calls) == 1  # re-checked after SANDBOX_MEMO_S only


def test_a_hanging_check_times_out_and_is_not_started_twice(
    client: Client, ready: LibreChatDouble, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.READYZ_TIMEOUT_S = 0.2
    started: list[float] = []
    release = threading.Event()

    def hanging() -> str:
        started.append(time.monotonic())
        release.wait(5)
        return "late"

    monkeypatch.setitem(health.SYNC_CHECKS, "database", hanging)
    try:
        first = client.get("/readyz").json()["checks"]["database"]
        second = client.get("/readyz").json()["checks"]["database"]
    finally:
        release.set()
    assert first["status"] == second["status"] == "fail"
    assert first["detail"] == "No answer within 0.2 s."
    assert first["duration_ms"] < 1000
    assert len(started) == 1  # the second probe joined the run still in progress


def test_probes_over_uvicorn_skip_host_validation(ready: LibreChatDouble, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["app.example.com"]
    with (
        AppServer() as server,
        httpx.Client(base_url=server.url, headers={"Host": "10.0.0.7:8000"}) as http,
    ):
        live = http.get("/healthz")
        readiness = http.get("/readyz")
        other = http.get("/api/users/me/")
    assert live.status_code == 200
    assert readiness.status_code == 200, readiness.text
    assert json.loads(readiness.text)["checks"]["librechat"]["status"] == "ok"
    assert other.status_code == 400  # everything else still checks the host
    assert live.headers["x-request-id"] != readiness.headers["x-request-id"]
