"""Schemathesis against /api/schema/: generated requests (valid and invalid) to every documented
operation; no server error, and every response matches the schema (status code, content type,
body). The chat proxy and the Code API are plain Django views outside the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework_simplejwt.tokens import AccessToken
from schemathesis import checks

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
    return [result.ok() for result in schema.get_all_operations()]


# (schemathesis.pytest.from_fixture does not work with pytest 9: one test drives every operation.)
def test_api_matches_its_schema(api_schema: Any, bearer: dict[str, str]) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=bearer, checks=CHECKS)

        check()


def test_schema_documents_the_operations(api_schema: Any) -> None:
    documented = {f"{op.method.upper()} {op.path}" for op in operations(api_schema)}
    assert "POST /api/auth/register/" in documented
    assert "GET /api/users/me/" in documented
    assert len(documented) >= 6
