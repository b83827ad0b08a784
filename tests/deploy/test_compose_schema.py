"""Both compose files, and the project they make together, follow the Compose Specification."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.deploy.compose import (
    DEV_FILE,
    LIBRECHAT_FILE,
    Doc,
    compose_schema,
    load,
    schema_errors,
)


def test_the_schema_is_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    assert "service" in schema["$defs"]


@pytest.mark.parametrize("path", [DEV_FILE, LIBRECHAT_FILE], ids=lambda p: p.name)
def test_each_file_follows_the_specification(path: Path) -> None:
    assert schema_errors(load(path)) == []


def test_the_merged_project_follows_the_specification(full_project: Doc) -> None:
    assert schema_errors(full_project) == []


def test_a_broken_file_is_caught() -> None:
    doc = copy.deepcopy(load(DEV_FILE))
    doc["services"]["web"]["helthcheck"] = doc["services"]["web"].pop("healthcheck")
    doc["services"]["worker"]["depends_on"]["redis"]["condition"] = "service_ready"
    doc["volumes"]["media"] = "not a mapping"

    errors = schema_errors(doc)

    assert any(e.startswith("services/web") and "helthcheck" in e for e in errors), errors
    assert any("/depends_on" in e and "service_ready" in e for e in errors), errors
    assert any(e.startswith("volumes/media") for e in errors), errors
