"""compose.librechat.yaml: LibreChat set up for a backend-for-frontend, and its Code API JWT
accepted by our code interpreter with the keys scripts/compose-env.py generates.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

import jwt
import pytest
from django.urls import resolve

from code_interpreter.auth import NotAuthenticated, verify_jwt
from tests.deploy import checks
from tests.deploy.checks import container_env, environment, settings_report
from tests.deploy.compose import (
    DEV_FILE,
    LIBRECHAT_FILE,
    Doc,
    InterpolationError,
    project,
    required_variables,
)
from tests.deploy.conftest import compose_env_script


@pytest.fixture(scope="module")
def web_settings(full_project: Doc, image_env: dict[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = settings_report(
        container_env(full_project["services"]["web"], image_env)
    )["settings"]
    return settings


def librechat_env(full_project: Doc) -> dict[str, str]:
    return environment(full_project["services"]["librechat"])


def test_every_required_variable_is_generated(dotenv: dict[str, str]) -> None:
    required = required_variables(DEV_FILE) | required_variables(LIBRECHAT_FILE)
    script = compose_env_script()
    assert required <= set(script.GENERATORS) | set(script.KEY_PAIR)
    assert required <= set(dotenv)


def test_a_missing_variable_stops_the_project(dotenv: dict[str, str]) -> None:
    env = {name: value for name, value in dotenv.items() if name != "LIBRECHAT_CREDS_IV"}
    project([DEV_FILE], env)  # compose.dev.yaml alone does not need it
    with pytest.raises(InterpolationError, match="LIBRECHAT_CREDS_IV: run scripts/compose-env"):
        project([DEV_FILE, LIBRECHAT_FILE], env)


def test_the_generator_keeps_existing_values(tmp_path: Any) -> None:
    script = compose_env_script()
    path = tmp_path / ".env"
    path.write_text("SECRET_KEY=mine\n")
    generated = script.ensure_env(path)
    assert "SECRET_KEY" not in generated
    assert script.read_env(path)["SECRET_KEY"] == "mine"
    assert script.ensure_env(path) == []
    assert path.stat().st_mode & 0o777 == 0o600


def test_librechat_suits_a_bff(full_project: Doc, web_settings: dict[str, Any]) -> None:
    assert checks.librechat_problems(full_project, web_settings) == []


def test_librechat_misconfiguration_is_caught(
    full_project: Doc, web_settings: dict[str, Any]
) -> None:
    broken = copy.deepcopy(full_project)
    env = broken["services"]["librechat"]["environment"]
    env["ALLOW_REGISTRATION"] = "True"
    env["TRUST_PROXY"] = "2"
    env["REGISTER_MAX"] = "5"
    env["LIBRECHAT_CODE_BASEURL"] = "http://web:8000/v1"
    env["LIBRECHAT_CODE_BASEURL_STATEFUL"] = "http://web:8000/api/code/v1"
    env["CODEAPI_JWT_AUDIENCE"] = "code-interpreter"
    env["CODEAPI_JWT_ALGORITHM"] = "RS256"
    broken["services"]["beat"]["environment"]["LIBRECHAT_API_URL"] = "http://mongodb:27017"

    assert checks.librechat_problems(broken, web_settings) == [
        "ALLOW_REGISTRATION is not exactly true: provisioning gets 403",
        "LibreChat must trust one hop (TRUST_PROXY=1: us, forwarding the client's IP)",
        "REGISTER_MAX is below 10, what our register_ip throttle admits",
        "LIBRECHAT_CODE_BASEURL is not our web service's /api/code/v1",
        "LIBRECHAT_CODE_BASEURL_STATEFUL is not our /api/code/stateful/v1",
        "CODEAPI_JWT_AUDIENCE differs from our CODE_INTERPRETER_JWT_AUDIENCE",
        "CODEAPI_JWT_ALGORITHM is not in our CODE_INTERPRETER_JWT_ALGORITHMS",
        "LIBRECHAT_CODE_BASEURL differs from LibreChat's in: migrate, web, workflows, worker, beat",
        "LIBRECHAT_CODE_BASEURL_STATEFUL differs from LibreChat's in: migrate, web, workflows, "
        "worker, beat",
        "beat: LIBRECHAT_API_URL does not point at the LibreChat service",
    ]


@pytest.mark.parametrize("setting", ["LIBRECHAT_CODE_BASEURL", "LIBRECHAT_CODE_BASEURL_STATEFUL"])
def test_the_code_api_url_is_routed_here(full_project: Doc, setting: str) -> None:
    base = librechat_env(full_project)[setting]
    path = base.split("://", 1)[1].partition("/")[2]
    assert resolve(f"/{path}/health").url_name == "code-health"
    assert resolve(f"/{path}/exec").url_name == "code-exec"


def librechat_token(
    env: dict[str, str], private_key: str, *, sub: str = "6650f0c0a1b2c3d4e5f60718"
):
    """A Code API token as LibreChat mints it (packages/api/src/auth/codeapi.ts)."""
    now = int(time.time())
    claims = {
        "iss": env.get("CODEAPI_JWT_ISSUER", "librechat"),
        "aud": env.get("CODEAPI_JWT_AUDIENCE", "codeapi"),
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + int(env.get("CODEAPI_JWT_TTL_SECONDS", "300")),
        "jti": str(uuid.uuid4()),
        "tenant_id": "legacy",
        "role": "USER",
        "principal_source": "librechat_jwt",
        "auth_context_hash": "0" * 64,
    }
    return jwt.encode(
        claims,
        private_key.replace("\\n", "\n"),
        algorithm=env.get("CODEAPI_JWT_ALGORITHM", "EdDSA"),
        headers={"kid": env.get("CODEAPI_JWT_KID", "lc-codeapi-2026-05")},
    )


@pytest.fixture
def code_api_settings(settings: Any, web_settings: dict[str, Any]) -> Any:
    """Our Code API configured as the web service is in the stack."""
    for name, value in web_settings.items():
        if name.startswith("CODE_INTERPRETER_JWT_") or name == "CODE_INTERPRETER_AUTH":
            setattr(settings, name, value)
    return settings


@pytest.mark.usefixtures("code_api_settings")
def test_librechats_code_api_token_is_accepted(full_project: Doc) -> None:
    env = librechat_env(full_project)
    token = librechat_token(env, env["CODEAPI_JWT_PRIVATE_KEY"])
    assert verify_jwt(token) == "6650f0c0a1b2c3d4e5f60718"


@pytest.mark.usefixtures("code_api_settings")
def test_a_token_from_another_key_is_refused(full_project: Doc) -> None:
    env = librechat_env(full_project)
    other = compose_env_script().code_api_key_pair()["CODEAPI_JWT_PRIVATE_KEY"]
    with pytest.raises(NotAuthenticated):
        verify_jwt(librechat_token(env, other))
