from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

import librechat as librechat_client
from chat import sessions
from core.logs import REDACTED, JsonFormatter, request_id_var, scrub
from tests.chat.conftest import activate, jwt_for
from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer
from users.models import ProvisioningState, User
from users.services import librechat_password_decrypt

from .conftest import ConsoleOutput

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def verbose() -> Iterator[None]:
    """Everything at DEBUG, httpcore's header dumps included: the worst case for leaks."""
    names = ["", "httpx", "httpcore", "django.db.backends"]
    before = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def records(console: ConsoleOutput) -> list[dict[str, Any]]:
    return [json.loads(line) for line in console.lines()]


# -- request ids ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("3f1c9a52-0b4e-4c39-9a6d-7f0e5d2c1b88", True),
        ("Root=1-67891233-abcdef012345678912345678", True),
        ("has spaces in it", False),
        ("x" * 129, False),
        ('quote"inside', False),
        (None, False),
    ],
)
def test_request_id_is_taken_when_sane_else_generated(
    client: Client, sent: str | None, kept: bool
) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = client.get("/api/users/me/", headers=headers)
    assert response.status_code == 401
    if kept:
        assert response["X-Request-ID"] == sent
    else:
        assert HEX32.fullmatch(response["X-Request-ID"])


@pytest.mark.django_db
def test_every_log_line_of_a_request_carries_its_id(
    api_client: APIClient, console: ConsoleOutput, settings: Any
) -> None:
    settings.LIBRECHAT_API_URL = "http://127.0.0.1:9"  # provisioning is not what this is about
    response = api_client.post(
        "/api/auth/register/",
        {"email": "ids@example.com", "password": DEFAULT_PASSWORD, "name": "Ids"},
        format="json",
        HTTP_X_REQUEST_ID="req-abc-123",
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-abc-123"
    lines = records(console)
    registered = [r for r in lines if r["message"].startswith("user registered")]
    assert registered, lines
    assert registered[0]["request_id"] == "req-abc-123"
    assert {"time", "level", "logger", "message", "request_id"} <= set(registered[0])
    assert registered[0]["time"].endswith("+00:00")
    # And nothing outside the request keeps it.
    assert request_id_var.get() is None


def test_text_format_shows_the_request_id() -> None:
    from core.logs import TEXT_FORMAT, RequestIdFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    token = request_id_var.set("rid-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert logging.Formatter(TEXT_FORMAT).format(record).endswith("INFO x [rid-1] hello you")


def test_json_formatter_keeps_extras_and_tracebacks() -> None:
    from core.logs import RedactSecretsFilter, RequestIdFilter

    try:
        raise ValueError("boom token=abc123secret")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed for %s", ("u1",), sys.exc_info()
        )
    record.user_id = 7
    record.cookie = "sessionid=topsecret"
    RequestIdFilter().filter(record)
    RedactSecretsFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed for u1"
    assert line["user_id"] == 7
    assert line["cookie"] == REDACTED
    assert line["request_id"] == "-"
    assert "ValueError" in line["exc_info"]
    assert "abc123secret" not in line["exc_info"]


# -- the id reaches LibreChat ---------------------------------------------------------------------


def test_auth_client_sends_the_request_id(librechat: LibreChatDouble) -> None:
    token = request_id_var.set("from-the-request")
    try:
        with pytest.raises(librechat_client.LibreChatError):
            librechat_client.login(email="nobody@example.com", password="x" * 12)
    finally:
        request_id_var.reset(token)
    with pytest.raises(librechat_client.LibreChatError):
        librechat_client.login(email="nobody@example.com", password="x" * 12)
    first, second = librechat.state.requests_to("/api/auth/login")
    assert dict(first.headers)["x-request-id"] == "from-the-request"
    assert HEX32.fullmatch(dict(second.headers)["x-request-id"])  # outside a request: new


@pytest.mark.django_db(transaction=True)
def test_workflow_steps_send_the_workflow_id(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str, console: ConsoleOutput
) -> None:
    response = api_client.post(
        "/api/auth/register/",
        {"email": "wf@example.com", "password": DEFAULT_PASSWORD, "name": "Work Flow"},
        format="json",
    )
    assert response.status_code == 201
    wait_for(
        lambda: (
            User.objects.get(email="wf@example.com").provisioning_state == ProvisioningState.ACTIVE
        ),
        message="provisioned",
    )
    sent = {dict(r.headers)["x-request-id"] for r in librechat.state.requests}
    assert len(sent) == 1  # register and login of one run share it
    assert next(iter(sent)).startswith("librechat-provision-")


@pytest.fixture
def app_server(
    librechat: LibreChatDouble, transactional_db: None, settings: Any
) -> Iterator[AppServer]:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    with AppServer() as server:
        yield server


@pytest.mark.parametrize(
    ("sent", "kept"), [("client-id-42", True), ("bad id", False), (None, False)]
)
def test_proxy_sends_one_sanitised_request_id(
    app_server: AppServer, librechat: LibreChatDouble, sent: str | None, kept: bool
) -> None:
    alice = activate(make_legacy_user(email="alice@example.com"), librechat)
    headers = {"Authorization": f"Bearer {jwt_for(alice)}"}
    if sent is not None:
        headers["X-Request-ID"] = sent
    with httpx.Client(base_url=app_server.url, headers=headers, timeout=30) as http:
        response = http.get("/api/chat/convos")
    assert response.status_code == 200, response.text
    ours = response.headers["x-request-id"]
    assert ours == sent if kept else HEX32.fullmatch(ours)
    upstream = librechat.state.requests_to("/api/convos")[-1]
    values = [v for k, v in upstream.headers if k == "x-request-id"]
    assert values == [ours]


# -- redaction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("headers={'authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
        ("[(b'Set-Cookie', b'refreshToken=r3fr3sh; Path=/')]", "r3fr3sh"),
        ("Cookie: sessionid=s3ss10n; csrftoken=c5rf", "s3ss10n"),
        ("sent refreshToken=tok3n-value;", "tok3n-value"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IjEifQ.c2lnbmF0dXJl here", "eyJpZCI6IjEifQ"),
        ("stored gAAAAABnA1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v2w3x4y5z6==", "gAAAAABnA1b2"),
        ('{"password": "hunter22", "email": "a@b.c"}', "hunter22"),
        ("password1=pw-one&password2=pw-one", "pw-one"),
        ("postgres://app:dbpa55@db:5432/hestami", "dbpa55"),
        ("X-API-Key: k3y-value", "k3y-value"),
        ("[(b'authorization', b'Bearer s3cr3t-access')]", "s3cr3t-access"),
        ("[(b'cookie', b'refreshToken=abc; other=s3cr3t')]", "s3cr3t"),
        ("Authorization: plainsecretvalue", "plainsecretvalue"),
    ],
)
def test_scrub_removes_secrets(text: str, secret: str) -> None:
    scrubbed = scrub(text)
    assert secret not in scrubbed
    assert "REDACTED" in scrubbed


def test_scrub_keeps_ordinary_text() -> None:
    text = "librechat session refreshed user_id=5 state=active email=a@example.com"
    assert scrub(text) == text


def test_configured_secrets_are_scrubbed_wherever_they_appear(settings: Any) -> None:
    settings.SECRET_KEY = "a-very-particular-secret-key-value"
    assert scrub(f"key is {settings.SECRET_KEY}!") == f"key is {REDACTED}!"


@pytest.mark.django_db(transaction=True)
def test_real_flows_log_no_secret(
    api_client: APIClient,
    app_server: AppServer,
    librechat: LibreChatDouble,
    workflows: str,
    console: ConsoleOutput,
    verbose: None,
) -> None:
    """Registration, provisioning (register + login on LibreChat), our log-in, the proxy with a
    LibreChat session: everything the configured handler wrote, at DEBUG, holds no secret."""
    connection.force_debug_cursor = True  # SQL with its parameters, as with DEBUG on
    try:
        registered = api_client.post(
            "/api/auth/register/",
            {"email": "leak@example.com", "password": DEFAULT_PASSWORD, "name": "No Leak"},
            format="json",
        )
        tokens = api_client.post(
            "/api/auth/token/",
            {"email": "leak@example.com", "password": DEFAULT_PASSWORD},
            format="json",
        ).json()
    finally:
        connection.force_debug_cursor = False
    assert registered.status_code == 201
    wait_for(
        lambda: (
            User.objects.get(email="leak@example.com").provisioning_state
            == ProvisioningState.ACTIVE
        ),
        message="provisioned",
    )
    user = User.objects.get(email="leak@example.com")
    with httpx.Client(base_url=app_server.url, timeout=30) as http:
        chat = http.get("/api/chat/convos", headers={"Authorization": f"Bearer {tokens['access']}"})
    assert chat.status_code == 200, chat.text
    session = async_to_sync(sessions._load)(user.pk)
    assert session is not None

    from users.crypto import decrypt_secret

    secrets = {
        "our password": DEFAULT_PASSWORD,
        "LibreChat password": librechat_password_decrypt(user),
        "stored LibreChat password (Fernet)": user.librechat_password_encrypted,
        "our access JWT": tokens["access"],
        "our refresh JWT": tokens["refresh"],
        "LibreChat access JWT": session.access_token,
        "LibreChat refresh JWT": decrypt_secret(session.refresh_token_encrypted),
    }
    output = console.text
    assert "user registered" in output  # the capture saw the flows ...
    assert "HTTP Request: GET" in output or "receive_response_headers" in output
    leaked = [name for name, value in secrets.items() if value in output]
    assert leaked == []
    assert "[REDACTED_FERNET]" in output  # redaction had work to do


@pytest.mark.django_db(transaction=True)
def test_dbos_and_uvicorn_lines_use_our_handler(workflows: str, settings: Any) -> None:
    """uvicorn configures its loggers before it imports the app, so Django's LOGGING (applied at
    import) wins; a test server started earlier in this process did it the other way round."""
    import io
    import logging.config

    from dbos._logger import dbos_logger

    from .conftest import console_handler

    logging.config.dictConfig(settings.LOGGING)
    stream = io.StringIO()
    previous = console_handler().setStream(stream)
    try:
        names = [h.get_name() for h in dbos_logger.handlers]
        assert "console" in names
        assert "__dbos_console_log_handler__" not in names
        dbos_logger.warning("dbos says password=hunter22")
        access = logging.getLogger("uvicorn.access")
        access.info('%s - "%s %s"', "1.2.3.4", "GET", "/x?token=abc123")
    finally:
        console_handler().setStream(previous)
    messages = {(r["logger"], r["message"]) for r in records(ConsoleOutput(stream))}
    assert ("dbos", "dbos says password=[REDACTED]") in messages
    assert ("uvicorn.access", '1.2.3.4 - "GET /x?token=[REDACTED]"') in messages


def test_access_log_switch_removes_uvicorns_line() -> None:
    """uvicorn writes its access line only when its logger has handlers; ACCESS_LOG=false (not
    uvicorn's --no-access-log, which Django's set-up undoes) leaves it none."""
    import logging.config

    from django.conf import settings

    from core.logs import logging_config

    access = logging.getLogger("uvicorn.access")
    try:
        logging.config.dictConfig(logging_config(log_format="json", level="INFO", access_log=False))
        assert not access.hasHandlers()
        logging.config.dictConfig(logging_config(log_format="json", level="INFO"))
        assert access.hasHandlers()
    finally:
        logging.config.dictConfig(settings.LOGGING)
