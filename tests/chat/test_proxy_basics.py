"""The proxy under uvicorn against the LibreChat double over HTTP: auth, headers, policy, errors."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.chat.conftest import DEFAULT_PASSWORD, AppServer, api
from tests.factories import make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from tests.librechat_double_tests.chat_helpers import FAST, chat_body
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def test_get_round_trip_with_server_side_librechat_session(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    with api(app_server, alice) as client:
        response = client.get(
            "/api/chat/user", headers={"User-Agent": "okhttp/4.12", "Cookie": "mine=1"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "alice@example.com"
    assert "set-cookie" not in response.headers
    [call] = librechat.state.requests_to("/api/user")
    # LibreChat saw its own token, a browser User-Agent, the client's IP; none of our credentials.
    assert (call.header("authorization") or "").startswith("Bearer ")
    assert call.header("authorization") != client.headers["Authorization"]
    assert "Chrome/" in (call.header("user-agent") or "")
    assert call.header("x-forwarded-for") == "127.0.0.1"
    assert call.header("cookie") is None
    assert librechat.state.login_calls == 1
    with api(app_server, alice) as client:
        assert client.get("/api/chat/user").status_code == 200
    assert librechat.state.login_calls == 1  # the session is reused


def test_users_never_get_each_others_tokens(
    app_server: AppServer, librechat: LibreChatDouble, alice: User, bob: User
) -> None:
    def fetch(user: User, seen: list[str]) -> None:
        with api(app_server, user) as client:
            for _ in range(5):
                seen.append(client.get("/api/chat/user").json()["email"])

    results: dict[str, list[str]] = {"alice": [], "bob": []}
    threads = [
        threading.Thread(target=fetch, args=(u, results[n]))
        for n, u in (("alice", alice), ("bob", bob))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["alice"] == ["alice@example.com"] * 5
    assert results["bob"] == ["bob@example.com"] * 5


def test_session_cookie_works_and_unsafe_methods_need_csrf(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    with httpx.Client(base_url=app_server.url, timeout=30) as browser:
        page = browser.get("/accounts/login/")
        csrf = browser.cookies["csrftoken"]
        browser.post(
            "/accounts/login/",
            data={
                "username": alice.email,
                "password": DEFAULT_PASSWORD,
                "csrfmiddlewaretoken": csrf,
            },
            headers={"Referer": f"{app_server.url}/accounts/login/"},
        )
        assert page.status_code == 200
        assert browser.get("/api/chat/user").status_code == 200
        refused = browser.post("/api/chat/convos/update", json={"arg": {}})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf_failed"
        allowed = browser.delete(
            "/api/chat/convos",
            headers={
                "X-CSRFToken": browser.cookies["csrftoken"],
                "Referer": f"{app_server.url}/chat/",
            },
        )
        assert allowed.status_code != 403, allowed.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "auth/login"),
        ("POST", "auth/refresh"),
        ("GET", "admin/users"),
        ("DELETE", "user/delete"),
        ("POST", "api-keys"),
        ("GET", "convos/../auth/logout"),
    ],
)
def test_refused_routes(
    app_server: AppServer, librechat: LibreChatDouble, alice: User, method: str, path: str
) -> None:
    with api(app_server, alice) as client:
        response = client.request(method, f"/api/chat/{path}")
    assert response.status_code in (403, 404)
    if response.status_code == 403:
        assert response.json()["error"]["code"] == "route_refused"
    assert not [
        r
        for r in librechat.state.requests
        if "/api/auth/" in r.path and r.path != "/api/auth/login"
    ]


def test_a_user_librechat_reports_as_admin_is_refused(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    """Provisioning stops such users (users/workflows.py); one already active is refused here,
    whenever LibreChat's log-in or refresh reports the role."""
    librechat.state.get_user(alice.email).role = "ADMIN"  # type: ignore[union-attr]
    with api(app_server, alice) as client:
        for _ in range(2):
            refused = client.get("/api/chat/convos")
            assert refused.status_code == 403
            error = refused.json()["error"]
            assert error["code"] == "librechat_admin_account"
            assert "administrator rights" in error["message"]
    # Logged in once (the session is kept, so its role is known without logging in again) ...
    assert librechat.state.login_calls == 1
    # ... and nothing was forwarded with the admin's token.
    assert [r.path for r in librechat.state.requests] == ["/api/auth/login"]


def test_no_credentials_is_401(app_server: AppServer) -> None:
    with httpx.Client(base_url=app_server.url) as client:
        response = client.get("/api/chat/convos")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_not_provisioned_is_409_and_nudges(
    app_server: AppServer, librechat: LibreChatDouble, settings: Any
) -> None:
    settings.DBOS_SYSTEM_DATABASE_URL = (
        "sqlite:////nonexistent/dir/dbos.sqlite3"  # the nudge may fail
    )
    user = make_legacy_user(email="new@example.com")
    with api(app_server, user) as client:
        response = client.get("/api/chat/convos")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "librechat_not_provisioned"
    assert response.json()["error"]["retrying"] is True
    assert "being set up" in response.json()["error"]["message"]
    assert User.objects.get(pk=user.pk).provisioning_attempts == 1  # a run was asked for
    assert librechat.state.requests == []


@pytest.mark.parametrize(
    ("fields", "retrying", "says"),
    [
        ({"provisioning_state": "failed"}, True, "We try again automatically"),
        (
            {"provisioning_state": "failed", "provisioning_permanent": True},
            False,
            "an administrator has to fix it. Please contact support.",
        ),
        (
            {"provisioning_state": "failed", "provisioning_attempts": 5},
            False,
            "an administrator has to fix it. Please contact support.",
        ),
        (
            {"provisioning_state": "conflict", "provisioning_permanent": True},
            False,
            "already has an account with your e-mail address",
        ),
    ],
)
def test_failed_and_conflict_say_what_is_true_and_what_to_do(
    app_server: AppServer,
    librechat: LibreChatDouble,
    fields: dict[str, Any],
    retrying: bool,
    says: str,
) -> None:
    """Not "still being set up... try again in a moment": these states do not change by
    themselves, or only when reconciliation starts another run."""
    user = make_legacy_user(email="stuck@example.com", **{"provisioning_attempts": 1, **fields})
    with api(app_server, user) as client:
        response = client.get("/api/chat/convos")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "librechat_not_provisioned"
    assert error["provisioning_state"] == fields["provisioning_state"]
    assert error["retrying"] is retrying
    assert says in error["message"]
    assert "being set up" not in error["message"]
    assert "moment" not in error["message"]
    user.refresh_from_db()
    assert user.provisioning_attempts == fields.get("provisioning_attempts", 1)  # not nudged


def test_unreachable_is_502_and_slow_is_504(
    app_server: AppServer, librechat: LibreChatDouble, alice: User, settings: Any
) -> None:
    with api(app_server, alice) as client:
        assert client.get("/api/chat/user").status_code == 200  # session opened
        settings.CHAT_PROXY_TIMEOUT_S = 0.5
        librechat.set_mode("slow", seconds=2)
        slow = client.get("/api/chat/user")
        assert slow.status_code == 504
        assert slow.json()["error"]["code"] == "librechat_timeout"
        librechat.set_mode("down")
        down = client.get("/api/chat/user")
        assert down.status_code == 502
        assert down.json()["error"]["code"] == "librechat_unreachable"


def test_every_method_round_trips_json(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    # Allowed routes, one per method; the double answers some with LibreChat's 404, passed on.
    routes = [
        ("GET", "banner"),
        ("POST", "presets"),
        ("PUT", "messages/c-1/m-1"),
        ("DELETE", "files"),
    ]
    with api(app_server, alice) as client:
        for method, path in routes:
            response = client.request(method, f"/api/chat/{path}?x=1&y=%20z", json={"k": method})
            assert response.status_code < 500, response.text
        banner = client.get("/api/chat/banner")
        assert banner.status_code == 404
        assert banner.json() == {"message": "Endpoint not found"}
        # No LibreChat route this proxy allows takes PATCH.
        patch = client.patch("/api/chat/convos/c-1", json={"k": "PATCH"})
        assert patch.status_code == 403
        assert patch.json()["error"]["code"] == "route_refused"
    seen = [r for r in librechat.state.requests if r.query == "x=1&y=%20z"]
    assert [(r.method, r.path) for r in seen] == [(m, f"/api/{p}") for m, p in routes]
    # The JSON bodies went through with their exact length.
    lengths = [int(r.header("content-length") or 0) for r in seen]
    assert lengths == [len(f'{{"k":"{m}"}}') for m, _ in routes]
    assert not librechat.state.requests_to("/api/convos/c-1")


def test_oversized_body_is_413_before_it_is_read(
    app_server: AppServer, librechat: LibreChatDouble, alice: User, settings: Any
) -> None:
    settings.CHAT_PROXY_MAX_BODY_BYTES = 1000
    with api(app_server, alice) as client:
        response = client.post("/api/chat/files", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert librechat.state.requests == []


def test_expired_access_token_20_concurrent_requests_refresh_once(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    with api(app_server, alice) as client:
        assert client.get("/api/chat/user").status_code == 200
    # LibreChat's 15-minute access token runs out while the 7-day refresh token lives on.
    librechat.state.advance_clock(16 * 60)
    from chat import sessions

    sessions._memo.clear()
    statuses: list[int] = []

    def call() -> None:
        with api(app_server, alice) as c:
            statuses.append(c.get("/api/chat/user").status_code)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    assert librechat.state.refresh_calls == 1
    assert librechat.state.refresh_reused_token_failures == 0
    assert librechat.state.login_calls == 1


def test_failed_refresh_falls_back_to_login(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    with api(app_server, alice) as client:
        assert client.get("/api/chat/user").status_code == 200
        for session in librechat.state.sessions_of(alice.email):
            librechat.state.delete_session(session.id)  # e.g. LibreChat was restarted or banned us
        librechat.state.advance_clock(16 * 60)
        from chat import sessions

        sessions._memo.clear()
        assert client.get("/api/chat/user").status_code == 200
    assert librechat.state.login_calls == 2


def test_compressed_answers_pass_through_as_librechat_encoded_them(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    """LibreChat gzips answers of 1 KiB and more when asked to (its `compression()`); the proxy
    asks only for what the client accepts and hands the bytes over untouched."""
    librechat.config.update(**FAST)
    with api(app_server, alice) as client:
        started = client.post("/api/chat/agents/chat/Fake", json=chat_body("long " * 400))
        assert started.status_code == 200, started.text
        path = f"/api/chat/messages/{started.json()['conversationId']}"
        wait_for(lambda: len(client.get(path).json()) == 2, timeout=10)
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join(response.iter_raw())
            encoding = response.headers.get("content-encoding")
    assert len(plain.content) > 1024
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(plain.content)
    assert encoding == "gzip"
    assert json.loads(gzip.decompress(raw)) == plain.json()
    asked = [
        r.header("accept-encoding")
        for r in librechat.state.requests_to(path.replace("/api/chat/", "/api/"))
    ]
    assert asked[-2:] == ["identity", "gzip"]


def test_refresh_token_under_a_removed_key_falls_back_to_login(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    from django.core.cache import cache

    from chat import sessions

    with api(app_server, alice) as client:
        assert client.get("/api/chat/user").status_code == 200
        key = f"librechat:session:{alice.pk}"
        stored = cache.get(key)
        stored["refresh_token_encrypted"] = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
        cache.set(key, stored)
        librechat.state.advance_clock(16 * 60)
        sessions._memo.clear()
        response = client.get("/api/chat/user")
    assert response.status_code == 200, response.text
    assert (librechat.state.refresh_calls, librechat.state.login_calls) == (0, 2)


def test_password_under_a_removed_key_is_a_clear_server_error(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    User.objects.filter(pk=alice.pk).update(
        librechat_password_encrypted=Fernet(Fernet.generate_key()).encrypt(b"secret").decode()
    )
    with api(app_server, alice) as client:
        response = client.get("/api/chat/user")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "librechat_credentials_unreadable"
    assert "re-provision" in response.json()["error"]["message"]
    assert librechat.state.login_calls == 0
