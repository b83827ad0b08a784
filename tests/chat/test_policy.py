"""The allowlist and the canonical path, without a server (under uvicorn: test_proxy_routes.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import RequestFactory

from chat import policy
from chat.policy import PathAmbiguous, RouteRefused

LATEST = "0.8.8"
DOC = Path(__file__).resolve().parents[2] / "docs" / "chat-proxy.md"


def doc_table() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text()
    section = text.split("## Allowed routes (deny by default)", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            method, route, since, reason = cells
            rows.append((method, route.strip("`").removeprefix("/api/"), since, reason))
    return rows


def test_the_doc_table_is_the_code_table() -> None:
    assert doc_table() == [(r.method, r.path, r.since, r.reason) for r in policy.ROUTES]


def test_every_route_is_unique_and_its_parameters_have_a_pattern() -> None:
    keys = [(r.method, r.path) for r in policy.ROUTES]
    assert len(keys) == len(set(keys))
    for route in policy.ROUTES:
        for name in re.findall(r":(\w+)", route.path):
            assert name in policy.PARAMETERS, route
        literals = [part for part in route.path.split("/") if not part.startswith(":")]
        assert route.reason
        assert all(part == part.lower() for part in literals), "literals match lower-cased"


@pytest.mark.parametrize(
    ("method", "raw", "canonical"),
    [
        ("GET", "/convos", "/api/convos"),
        ("GET", "/Convos/", "/api/convos"),
        ("GET", "/CONVOS?x", None),  # the view strips the query before; '?' is no id character
        ("GET", "/%63onvos", "/api/convos"),
        ("GET", "/convos/AbC-123_", "/api/convos/AbC-123_"),
        ("POST", "/Agents/Chat/Fake", "/api/agents/chat/Fake"),
        ("POST", "/agents/chat/Mistral%20AI", "/api/agents/chat/Mistral%20AI"),
        ("POST", "/agents/chat/ABORT", "/api/agents/chat/abort"),
        (
            "GET",
            "/Files/Download/65A0b1c2d3e4f5a6b7c8d9e0/3F2504E0-4F89-41D3-9A0C-0305E82C3301",
            "/api/files/download/65A0b1c2d3e4f5a6b7c8d9e0/3F2504E0-4F89-41D3-9A0C-0305E82C3301",
        ),
    ],
)
def test_canonical_path(method: str, raw: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(RouteRefused):
            policy.resolve(method, raw, version=LATEST)
        return
    assert policy.resolve(method, raw, version=LATEST).path == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "/./auth/register",
        "/convos/../auth/register",
        "/convos/%2e%2e/auth",
        "/convos/%2E/x",
        "/%2e/auth/register",
        "/convos//x",
        "//convos",
        "/convos//",
        "/convos;x",
        "/convos/x;jsessionid=1",
        "/convos%3Bx",
        "/convos\\x",
        "/convos%5Cx",
        "/convos%2Fx",
        "/convos/%00",
        "/convos/a%0Ab",
        "/convos/%25",
        "/convos/%252e",
        "/convos/%zz",
        "/convos/%4",
        "/c%D0%BEnvos",  # Cyrillic o
        "/\u212aeys",  # Kelvin sign, which case-folds to k
        "/convos/%C3%28",  # not UTF-8
        "convos",
    ],
)
def test_ambiguous_paths_are_400(raw: str) -> None:
    with pytest.raises(PathAmbiguous) as caught:
        policy.resolve("GET", raw, version=LATEST)
    assert caught.value.status == 400
    assert caught.value.code == "path_ambiguous"


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("POST", "/auth/register"),
        ("POST", "/Auth/Register"),
        ("GET", "/api-keys"),
        ("GET", "/admin/users"),
        ("DELETE", "/user/delete"),
        ("PATCH", "/convos/abc"),
        ("POST", "/convos"),  # the route exists for GET and DELETE only
        ("POST", "/agents/chat/duplicate"),  # agents/v1.js's POST /:id/duplicate, id "chat"
        ("POST", "/agents/chat/Revert"),
        ("GET", "/convos/a b"),  # a space is no id character
        ("GET", "/files/download/u1"),
        ("GET", "/messages/c/m"),  # PUT only
        ("PUT", "/keys"),
    ],
)
def test_unlisted_routes_are_403(method: str, raw: str) -> None:
    with pytest.raises(RouteRefused) as caught:
        policy.resolve(method, raw, version=LATEST)
    assert caught.value.status == 403
    assert caught.value.code == "route_refused"


def test_literal_routes_win_over_parameters() -> None:
    assert (
        policy.resolve("POST", "/agents/chat/abort", version=LATEST).route.path
        == "agents/chat/abort"
    )
    assert (
        policy.resolve("POST", "/agents/chat/abortx", version=LATEST).route.path
        == policy.CHAT_START
    )


@pytest.mark.parametrize("name", ["steer", "resume"])
def test_steer_and_resume_pass_from_0_8_8_on(name: str) -> None:
    route = policy.resolve("POST", f"/agents/chat/{name.title()}", version="0.8.8")
    assert (route.route.path, route.route.since) == (f"agents/chat/{name}", "0.8.8")
    assert route.path == f"/api/agents/chat/{name}"
    # A release candidate of a later release has them too.
    assert (
        policy.resolve("POST", f"/agents/chat/{name}", version="0.8.9-rc1").route.since == "0.8.8"
    )


@pytest.mark.parametrize("name", ["steer", "resume", "Steer"])
def test_steer_and_resume_are_refused_before_0_8_8(name: str) -> None:
    # LibreChat 0.8.7 would start a turn on an endpoint called "steer": never an endpoint name.
    with pytest.raises(RouteRefused) as refused:
        policy.resolve("POST", f"/agents/chat/{name}", version="0.8.7")
    assert "LibreChat 0.8.7 routes" in refused.value.message
    with pytest.raises(RouteRefused):
        policy.resolve("GET", f"/agents/chat/{name}", version="0.8.8")


def test_every_route_of_0_8_7_is_a_route_of_0_8_8() -> None:
    older, newer = policy.active_routes("0.8.7"), policy.active_routes("0.8.8")
    assert set(older) < set(newer)
    assert {r.path for r in set(newer) - set(older)} == {"agents/chat/steer", "agents/chat/resume"}


def test_decoded_fallback_still_refuses_what_it_can_see() -> None:
    assert (
        policy.resolve("GET", "/convos/AbC", version=LATEST, decoded=True).path == "/api/convos/AbC"
    )
    for raw in ("/convos/../auth", "/convos/%2e", "/c\u043envos"):
        with pytest.raises(PathAmbiguous):
            policy.resolve("GET", raw, version=LATEST, decoded=True)


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"RAW_URI": "/api/chat/./auth?x=1"}, ("/api/chat/./auth", False)),  # gunicorn
        ({"REQUEST_URI": "http://h/api/chat/%2e%2e/x?y"}, ("/api/chat/%2e%2e/x", False)),
        ({}, ("/api/chat/auth", True)),  # runserver: only the decoded path
    ],
)
def test_the_raw_path_under_wsgi(meta: dict[str, str], expected: tuple[str, bool]) -> None:
    request = RequestFactory().get("/api/chat/auth")
    request.META.update(meta)
    assert policy.raw_request_path(request) == expected


def test_our_prefix_must_be_sent_as_is() -> None:
    request = RequestFactory().get("/api/chat/convos", RAW_URI="/api/%63hat/convos")
    with pytest.raises(PathAmbiguous):
        policy.check_request(request, "GET", version=LATEST)
    plain = RequestFactory().get("/api/chat/convos", RAW_URI="/api/chat/Convos/")
    assert policy.check_request(plain, "GET", version=LATEST).path == "/api/convos"
