"""POST /api/auth/register: gates, zod messages, ambiguity, first admin, per-IP limit."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.librechat_double import ROLE_ADMIN, ROLE_USER, LibreChatDouble
from tests.librechat_double.pytest_plugin import MakeDouble

from .conftest import PASSWORD, connect, registration

GENERIC = {"message": "Please check your email to verify your email address."}


def test_success_and_duplicate_are_indistinguishable(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(duplicate_delay_s=0.3)
    client = connect(double, clients)

    first = client.post("/api/auth/register", json=registration("dup@example.com"))
    started = time.monotonic()
    second = client.post(
        "/api/auth/register", json=registration("DUP@Example.com", password="another password")
    )
    elapsed = time.monotonic() - started

    assert (first.status_code, first.json()) == (200, GENERIC)
    assert (second.status_code, second.json()) == (200, GENERIC)
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert "set-cookie" not in first.headers
    assert elapsed >= 0.3
    assert (double.state.register_calls, double.state.accounts_created) == (2, 1)
    assert double.state.duplicate_registrations == 1
    # The first password stays; the duplicate changed nothing.
    login = client.post("/api/auth/login", json={"email": "dup@example.com", "password": PASSWORD})
    assert login.status_code == 200


def test_first_user_is_admin_and_emails_are_lower_cased(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    client.post("/api/auth/register", json=registration("First@Example.COM", username="Boss"))
    client.post("/api/auth/register", json=registration("second@example.com"))

    first = librechat_double.state.get_user("first@example.com")
    second = librechat_double.state.get_user("second@example.com")
    assert first is not None
    assert second is not None
    assert (first.email, first.username, first.role) == ("first@example.com", "boss", ROLE_ADMIN)
    assert (second.role, second.username) == (ROLE_USER, "")
    assert len(first.id) == 24
    assert int(first.id, 16) >= 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            registration("a@example.com", password="short"),
            "password: String must contain at least 8 character(s) "
            "confirm_password: String must contain at least 8 character(s)",
        ),
        (
            {**registration("a@example.com"), "confirm_password": "different password"},
            ": The passwords did not match",
        ),
        (registration("not-an-email"), "email: Invalid email"),
        (
            {k: v for k, v in registration("a@example.com").items() if k != "name"},
            "name: Required",
        ),
        (
            registration("a@example.com", password="        "),
            "password: Password cannot be only spaces "
            "confirm_password: Password cannot be only spaces",
        ),
        (
            {**registration("a@example.com"), "name": "Al", "username": "a"},
            "name: String must contain at least 3 character(s) "
            "username: String must contain at least 2 character(s)",
        ),
        (
            registration("a@example.com", username="bob;drop"),
            "username: Potential injection attack detected",
        ),
        (
            {**registration("a@example.com"), "email": 42},
            "email: Expected string, received number",
        ),
    ],
)
def test_validation_failures_answer_404_with_zod_text(
    librechat_double: LibreChatDouble,
    clients: list[httpx.Client],
    body: dict[str, object],
    message: str,
) -> None:
    response = connect(librechat_double, clients).post("/api/auth/register", json=body)
    assert (response.status_code, response.json()) == (404, {"message": message})
    assert librechat_double.state.accounts_created == 0


def test_min_password_length_is_configurable(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(min_password_length=12)
    response = connect(double, clients).post(
        "/api/auth/register", json=registration("a@example.com", password="elevenchars")
    )
    assert response.json()["message"].startswith(
        "password: String must contain at least 12 character(s)"
    )


def test_registration_disabled_answers_403(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(allow_registration=False)
    client = connect(double, clients)
    response = client.post("/api/auth/register", json=registration("a@example.com"))
    assert (response.status_code, response.json()) == (
        403,
        {"message": "Registration is not allowed."},
    )
    assert client.get("/api/config").json()["registrationEnabled"] is False


def test_an_invite_bypasses_the_closed_gate(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(allow_registration=False)
    token = double.state.create_invite("invited@example.com")
    client = connect(double, clients)

    wrong = client.post(
        "/api/auth/register", json={**registration("other@example.com"), "token": token}
    )
    ok = client.post(
        "/api/auth/register", json={**registration("invited@example.com"), "token": token}
    )

    assert (wrong.status_code, wrong.json()) == (400, {"message": "Invalid invite token"})
    assert ok.status_code == 200
    assert double.state.accounts_created == 1


def test_domain_allowlist(make_librechat_double: MakeDouble, clients: list[httpx.Client]) -> None:
    double = make_librechat_double(allowed_domains=("example.com",))
    client = connect(double, clients)
    refused = client.post("/api/auth/register", json=registration("a@elsewhere.org"))
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("The email address provided cannot be used.")


def test_five_registrations_per_ip_then_429(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)

    def register(n: int, xff: str) -> httpx.Response:
        return client.post(
            "/api/auth/register",
            json=registration(f"user{n}@example.com"),
            headers={"X-Forwarded-For": xff},
        )

    answers = [register(n, "203.0.113.7") for n in range(6)]
    other_ip = register(6, "203.0.113.8")

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[5].json() == {
        "message": "Too many accounts created, please try again after 60 minutes"
    }
    assert answers[0].headers["x-ratelimit-limit"] == "5"
    assert answers[0].headers["x-ratelimit-remaining"] == "4"
    assert answers[5].headers["x-ratelimit-remaining"] == "0"
    assert 3590 <= int(answers[5].headers["retry-after"]) <= 3600
    assert int(answers[5].headers["x-ratelimit-reset"]) >= int(time.time()) + 3590
    assert "ratelimit-limit" not in answers[5].headers  # no draft headers by default
    assert other_ip.status_code == 200
    assert librechat_double.state.accounts_created == 6


def test_limit_key_follows_trust_proxy(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    """TRUST_PROXY=1 keys on the right-most XFF entry; the left part can be anything."""
    double = make_librechat_double(register_max=1)
    client = connect(double, clients)

    def register(n: int, xff: str) -> int:
        return client.post(
            "/api/auth/register",
            json=registration(f"u{n}@example.com"),
            headers={"X-Forwarded-For": xff},
        ).status_code

    assert register(0, "10.0.0.1, 198.51.100.1") == 200
    assert register(1, "10.0.0.2, 198.51.100.1:4567") == 429
    double.config.trust_proxy = 2
    assert register(2, "10.0.0.3, 198.51.100.1") == 200
    assert register(3, "10.0.0.3, 198.51.100.9") == 429
    assert [r.client_ip for r in double.state.requests] == [
        "198.51.100.1",
        "198.51.100.1",
        "10.0.0.3",
        "10.0.0.3",
    ]


def test_window_expiry_frees_the_ip(
    make_librechat_double: MakeDouble, clients: list[httpx.Client]
) -> None:
    double = make_librechat_double(register_max=1, register_window_s=60)
    client = connect(double, clients)
    assert client.post("/api/auth/register", json=registration("a@example.com")).status_code == 200
    assert client.post("/api/auth/register", json=registration("b@example.com")).status_code == 429
    double.state.advance_clock(61)
    assert client.post("/api/auth/register", json=registration("b@example.com")).status_code == 200


def test_fifty_concurrent_registrations_are_counted_exactly(
    make_librechat_double: MakeDouble,
) -> None:
    double = make_librechat_double(register_max=1000, duplicate_delay_s=0.2)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=double.url, timeout=10.0) as client:
            calls = [
                client.post("/api/auth/register", json=registration(f"user{n % 50}@example.com"))
                for n in range(60)
            ]
            return await asyncio.gather(*calls)

    answers = asyncio.run(burst())

    assert {a.status_code for a in answers} == {200}
    assert double.state.register_calls == 60
    assert double.state.accounts_created == 50
    assert double.state.duplicate_registrations == 10
    assert [u.role for u in double.state.users()].count(ROLE_ADMIN) == 1


def test_bodies_that_are_not_json_objects(
    librechat_double: LibreChatDouble, clients: list[httpx.Client]
) -> None:
    client = connect(librechat_double, clients)
    broken = client.post(
        "/api/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    array = client.post("/api/auth/register", json=[1, 2])
    assert (broken.status_code, broken.text) == (400, "{not json")
    assert (array.status_code, array.json()) == (
        404,
        {"message": ": Expected object, received array"},
    )
