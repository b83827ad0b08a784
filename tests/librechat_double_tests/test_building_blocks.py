"""The pure pieces: browser detection, req.ip, zod messages, JWT verification errors."""

from __future__ import annotations

import pytest

from tests.librechat_double.client_ip import express_request_ip, remove_ports
from tests.librechat_double.tokens import JwtRejected, sign_jwt, verify_jwt
from tests.librechat_double.user_agent import browser_name
from tests.librechat_double.validation import (
    errors_to_string,
    js_length,
    validate_registration,
)

BROWSERS = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36": "Chrome",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0": "Firefox",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15": "Safari",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.6 Mobile/15E148 Safari/604.1": "Mobile Safari",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0": "Edge",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/130.0.0.0 Mobile Safari/537.36": "Chrome WebView",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 OPR/114.0.0.0": "Opera",
    "MyApp/1.0 AppleWebKit/537.36": "WebKit",
}
NON_BROWSERS = [
    None,
    "",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "python-httpx/0.28.1",
    "okhttp/4.12.0",
    "HestamiApp/3 CFNetwork/1568.100.1 Darwin/24.0.0",
    "axios/1.7.7",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Go-http-client/1.1",
    "Mozilla/5.0",
    "operator-sdk/1.0",
]


@pytest.mark.parametrize(("agent", "name"), BROWSERS.items())
def test_browsers_are_recognised(agent: str, name: str) -> None:
    assert browser_name(agent) == name


@pytest.mark.parametrize("agent", NON_BROWSERS)
def test_libraries_are_not_browsers(agent: str | None) -> None:
    assert browser_name(agent) is None


@pytest.mark.parametrize(
    ("peer", "xff", "hops", "expected"),
    [
        ("127.0.0.1", None, 1, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.1", 1, "203.0.113.1"),
        ("127.0.0.1", "10.0.0.1, 203.0.113.1", 1, "203.0.113.1"),
        ("127.0.0.1", "10.0.0.1, 203.0.113.1", 2, "10.0.0.1"),
        ("127.0.0.1", "203.0.113.1", 3, "203.0.113.1"),
        ("127.0.0.1", "203.0.113.1", 0, "203.0.113.1"),
        ("127.0.0.1", " , 203.0.113.1:8080", 1, "203.0.113.1"),
        ("127.0.0.1", "[2001:db8::1]:443", 1, "2001:db8::1"),
    ],
)
def test_express_request_ip(peer: str, xff: str | None, hops: int, expected: str) -> None:
    assert express_request_ip(peer, xff, hops) == expected


def test_remove_ports_keeps_bare_ipv6() -> None:
    assert remove_ports("2001:db8::1") == "2001:db8::1"
    assert remove_ports("::ffff:127.0.0.1") == "::ffff:127.0.0.1"


def test_lengths_are_utf16_code_units() -> None:
    assert js_length("😀") == 2
    issues = validate_registration(
        {"name": "😀a", "email": "a@b.co", "password": "p" * 8, "confirm_password": "p" * 8},
        min_password_length=8,
    )
    assert issues == []


def test_mismatch_is_reported_alongside_length_issues() -> None:
    issues = validate_registration(
        {"name": "Probe", "email": "a@b.co", "password": "short", "confirm_password": "shorter"},
        min_password_length=8,
    )
    assert errors_to_string(issues) == (
        "password: String must contain at least 8 character(s) "
        "confirm_password: String must contain at least 8 character(s) "
        ": The passwords did not match"
    )


def test_missing_field_skips_the_password_comparison() -> None:
    issues = validate_registration(
        {"email": "a@b.co", "password": "long enough", "confirm_password": "not the same"},
        min_password_length=8,
    )
    assert errors_to_string(issues) == "name: Required"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "jwt must be provided"),
        ("a.b", "jwt malformed"),
        ("abc.def.ghi", "invalid token"),
    ],
)
def test_jwt_rejections_carry_jsonwebtoken_messages(token: str, reason: str) -> None:
    with pytest.raises(JwtRejected) as rejected:
        verify_jwt(token, "secret" * 8, now=0)
    assert rejected.value.reason == reason


def test_jwt_signature_and_expiry() -> None:
    token = sign_jwt({"id": "x"}, "s" * 48, now=1000.7, expires_in_s=10)
    assert verify_jwt(token, "s" * 48, now=1009.9)["iat"] == 1000
    with pytest.raises(JwtRejected, match="jwt expired"):
        verify_jwt(token, "s" * 48, now=1010.0)
    with pytest.raises(JwtRejected, match="invalid signature"):
        verify_jwt(token, "t" * 48, now=1000)
