from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_schema_covers_every_endpoint_and_its_errors(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in [
        "/api/auth/register/",
        "/api/auth/token/",
        "/api/auth/token/refresh/",
        "/api/auth/logout/",
        "/api/users/me/",
        "/api/users/librechat-password/",
    ]:
        assert path in paths, path
    register = paths["/api/auth/register/"]["post"]["responses"]
    assert {"201", "400", "409", "429"} <= set(register)
    error = schema["components"]["schemas"]["ErrorDetail"]["properties"]
    assert {"code", "message", "fields"} <= set(error)


def test_interactive_docs_render(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_schema_covers_the_openai_compatible_api(client: Client) -> None:
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    completions = paths["/api/v1/chat/completions"]["post"]
    assert {"200", "401", "403", "409", "429", "502", "504"} <= set(completions["responses"])
    error = completions["responses"]["403"]["content"]["application/json"]["schema"]
    assert {"message", "type", "code"} <= set(error["properties"]["error"]["properties"])
    assert "text/event-stream" in completions["responses"]["200"]["content"]
    assert "get" in paths["/api/v1/models"]
    assert "get" in paths["/api/v1/models/{model_id}"]
