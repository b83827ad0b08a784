"""Schemathesis against /api/schema/: generated requests to every documented operation, valid
ones with and without credentials and invalid ones (schema-violating bodies, parameters and
headers); no server error, invalid input refused with a 4xx, and every response matches the
schema (status code, content type, body). Called in-process through Django's WSGI handler (the
same views and middleware as under ASGI). The chat proxy and the Code API are plain Django views
outside the schema; /api/v1 is in it, tested live (tests/openai_api)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework_simplejwt.tokens import AccessToken
from schemathesis import GenerationMode, checks

from tests.factories import make_user

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def api_schema(db: None) -> Iterator[Any]:
    """The schema and the app behind it, called in-process through WSGI.

    As Django's test client does, a request's start and end must not close the connection that
    holds the test's transaction.
    """
    from hestami_ai.wsgi import application

    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        for signal in (signals.request_started, signals.request_finished):
            signal.connect(close_old_connections)


@pytest.fixture
def bearer(db: None) -> dict[str, str]:
    user = make_user(email="schemathesis@example.com")
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


def operations(schema: Any) -> list[Any]:
    """Every documented operation but /api/v1's: those async proxy views hand their database
    connection back mid-request (chat/auth.py), which would end this in-process run's test
    transaction; tests/openai_api drives them over a live server with the real openai client."""
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if not op.path.startswith("/api/v1/")]


RUNS = [
    pytest.param(GenerationMode.POSITIVE, True, CHECKS, id="valid"),
    pytest.param(GenerationMode.POSITIVE, False, CHECKS, id="valid-anonymous"),
    pytest.param(
        GenerationMode.NEGATIVE, True, [*CHECKS, checks.negative_data_rejection], id="invalid"
    ),
]


# (schemathesis.pytest.from_fixture does not work with pytest 9: one test drives every operation.)
@pytest.mark.parametrize(("mode", "authenticated", "run_checks"), RUNS)
def test_api_matches_its_schema(
    api_schema: Any,
    bearer: dict[str, str],
    mode: GenerationMode,
    authenticated: bool,
    run_checks: list[Any],
) -> None:
    headers = bearer if authenticated else {}
    for operation in operations(api_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            cache.clear()  # the throttles' counters: every case reaches the view, not a 429
            case.call_and_validate(headers=headers, checks=run_checks)

        check()


def test_schema_documents_the_operations(api_schema: Any) -> None:
    documented = {f"{op.method.upper()} {op.path}" for op in operations(api_schema)}
    assert "POST /api/auth/register/" in documented
    assert "GET /api/users/me/" in documented
    assert len(documented) >= 6
