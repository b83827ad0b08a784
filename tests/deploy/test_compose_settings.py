"""Every app service gets what our settings require with DEBUG off.

Each service's container environment (the Dockerfile's ENV, then the service's `environment`,
interpolated from the .env scripts/compose-env.py writes) is given, and nothing else, to a
process that loads hestami_ai/settings.py and runs the system checks. What the settings require
is therefore what the code requires, not a list kept here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.deploy.checks import app_services, container_env, settings_problems, settings_report
from tests.deploy.compose import ROOT, Doc

SETTINGS_FILE = ROOT / "hestami_ai" / "settings.py"


def secrets_without_default(path: Path = SETTINGS_FILE) -> list[str]:
    """The names read with env_secret(): no default when DEBUG is off."""
    return [
        str(node.args[0].value)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "env_secret"
        and isinstance(node.args[0], ast.Constant)
    ]


@pytest.mark.parametrize("role", ["migrate", "web", "workflows", "worker", "beat"])
def test_each_app_service_satisfies_the_settings(
    any_project: Doc, image_env: dict[str, str], role: str
) -> None:
    service = app_services(any_project)[role]
    assert settings_problems(container_env(service, image_env)) == []


def test_the_secrets_are_found() -> None:
    assert {"SECRET_KEY", "JWT_SIGNING_KEY", "LIBRECHAT_ENCRYPTION_KEY"} <= set(
        secrets_without_default()
    )


@pytest.mark.parametrize(
    "name",
    [
        *secrets_without_default(),
        "LIBRECHAT_API_URL",  # a system check error with DEBUG off
        "CODE_INTERPRETER_JWT_PUBLIC_KEY",  # CODE_INTERPRETER_AUTH=jwt needs it
    ],
)
def test_a_missing_required_setting_is_caught(
    dev_project: Doc, image_env: dict[str, str], name: str
) -> None:
    env = container_env(dev_project["services"]["web"], image_env)
    del env[name]

    problems = settings_problems(env)

    assert problems
    assert name in " ".join(problems)


def test_debug_on_is_caught(dev_project: Doc, image_env: dict[str, str]) -> None:
    env = container_env(dev_project["services"]["web"], image_env)
    env["DEBUG"] = "true"
    assert "DEBUG is on" in " ".join(settings_problems(env))


def test_all_roles_share_postgresql_and_redis(any_project: Doc, image_env: dict[str, str]) -> None:
    """Scaled-out processes must share one database and one cache/broker, never embedded ones."""
    shared = {
        name: {
            key: container_env(service, image_env).get(key)
            for key in (
                "DATABASE_URL",
                "REDIS_URL",
                "LIBRECHAT_API_URL",
                "LIBRECHAT_ENCRYPTION_KEY",
            )
        }
        for name, service in app_services(any_project).items()
    }
    first = next(iter(shared.values()))
    assert all(values == first for values in shared.values()), shared
    assert str(first["DATABASE_URL"]).startswith("postgres://")
    assert str(first["REDIS_URL"]).startswith("redis://")


def test_no_service_pins_a_dbos_executor_id(any_project: Doc, image_env: dict[str, str]) -> None:
    """A pinned id is shared by every replica of the service (`--scale web=3`, several web
    containers behind a load balancer): each would recover the others' pending workflows. The
    default follows the container's host name, its own and kept across restarts."""
    pinned = {
        name: env["DBOS_EXECUTOR_ID"]
        for name, service in app_services(any_project).items()
        if (env := container_env(service, image_env)).get("DBOS_EXECUTOR_ID")
    }
    assert pinned == {}
    source = (ROOT / "core" / "dbos.py").read_text()
    assert 'f"{socket.gethostname()}-{role}"' in source


def test_web_answers_the_hosts_that_call_it(full_project: Doc, image_env: dict[str, str]) -> None:
    web = settings_report(container_env(full_project["services"]["web"], image_env))["settings"]
    # Its own healthcheck (127.0.0.1) and LibreChat's Code API calls (web).
    assert {"127.0.0.1", "web"} <= set(web["ALLOWED_HOSTS"])


def test_the_sandbox_runtime_is_where_the_image_installs_it(image_env: dict[str, str]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = image_env["CODE_INTERPRETER_RUNTIME_DIR"]
    assert f"SANDBOX_BUILD_ONLY=1 bash scripts/install-sandbox.sh {runtime}" in dockerfile
    assert f"COPY --from=sandbox-build {runtime} {runtime}" in dockerfile
    # The sandbox mounts the runtime there, so the font cache built in the image matches.
    assert runtime == "/opt/runtime"
    assert (
        f'RUNTIME_MOUNT = "{runtime}"' in (ROOT / "code_interpreter/sandbox/command.py").read_text()
    )
