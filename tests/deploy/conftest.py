from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.checks import dockerfile_env
from tests.deploy.compose import DEV_FILE, DOCKERFILE, LIBRECHAT_FILE, ROOT, Doc, project


def compose_env_script() -> ModuleType:
    """scripts/compose-env.py, which writes the .env the compose files read."""
    spec = importlib.util.spec_from_file_location("compose_env", ROOT / "scripts/compose-env.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dotenv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The .env scripts/compose-env.py writes: the only variables the projects see."""
    script = compose_env_script()
    path: Path = tmp_path_factory.mktemp("compose") / ".env"
    script.ensure_env(path)
    values: dict[str, str] = script.read_env(path)
    return values


@pytest.fixture(scope="session")
def dev_project(dotenv: dict[str, str]) -> Doc:
    """`docker compose -f compose.dev.yaml`."""
    return project([DEV_FILE], dotenv)


@pytest.fixture(scope="session")
def full_project(dotenv: dict[str, str]) -> Doc:
    """`docker compose -f compose.dev.yaml -f compose.librechat.yaml`."""
    return project([DEV_FILE, LIBRECHAT_FILE], dotenv)


@pytest.fixture(scope="session", params=["dev", "full"])
def any_project(request: pytest.FixtureRequest, dev_project: Doc, full_project: Doc) -> Doc:
    return dev_project if request.param == "dev" else full_project


@pytest.fixture(scope="session")
def image_env() -> dict[str, str]:
    return dockerfile_env(DOCKERFILE)
