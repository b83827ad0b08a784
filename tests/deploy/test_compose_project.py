"""The compose projects against themselves and the code: healthchecks, dependencies, volumes,
URLs that name real services and ports, and commands that name real modules and commands.

Each check runs on `compose.dev.yaml` alone and with `compose.librechat.yaml`, and on a broken
copy, to show it can fail.
"""

from __future__ import annotations

import copy

from tests.deploy import checks
from tests.deploy.checks import app_services, container_env, settings_report
from tests.deploy.compose import ROOT, Doc

APP_ROLES = {"migrate", "web", "workflows", "worker", "beat"}


def test_every_app_role_has_its_service(any_project: Doc) -> None:
    roles = app_services(any_project)
    assert set(roles) == APP_ROLES
    assert not checks.long_running(roles["migrate"])
    assert all(checks.long_running(roles[role]) for role in APP_ROLES - {"migrate"})
    # One beat per deployment, as a service of its own, never embedded in a worker.
    assert checks.command(roles["beat"])[3] == "beat"
    assert "--beat" not in checks.command(roles["worker"])


def test_every_long_running_service_has_a_healthcheck(any_project: Doc) -> None:
    assert checks.healthcheck_problems(any_project) == []


def test_a_missing_healthcheck_is_caught(full_project: Doc) -> None:
    broken = copy.deepcopy(full_project)
    del broken["services"]["beat"]["healthcheck"]
    broken["services"]["mongodb"]["healthcheck"] = {"disable": True}

    assert checks.healthcheck_problems(broken) == [
        "beat: a long-running service without a healthcheck",
        "mongodb: a long-running service without a healthcheck",
    ]


def test_dependencies_exist_and_wait_for_the_right_thing(any_project: Doc) -> None:
    assert checks.depends_on_problems(any_project) == []


def test_broken_dependencies_are_caught(dev_project: Doc) -> None:
    broken = copy.deepcopy(dev_project)
    broken["services"]["web"]["depends_on"]["database"] = {"condition": "service_healthy"}
    broken["services"]["worker"]["depends_on"]["web"] = {
        "condition": "service_completed_successfully"
    }
    del broken["services"]["workflows"]["depends_on"]["migrate"]

    assert checks.depends_on_problems(broken) == [
        "web: depends on database, which is not a service",
        "workflows: starts without waiting for the migrate service",
        "worker: waits for web to complete; it restarts",
    ]


def test_volumes_are_declared_and_data_lives_in_them(any_project: Doc) -> None:
    assert checks.volume_problems(any_project) == []


def test_broken_volumes_are_caught(full_project: Doc) -> None:
    broken = copy.deepcopy(full_project)
    del broken["volumes"]["media"]
    broken["volumes"]["spare"] = None
    broken["services"]["postgres"]["volumes"] = []
    broken["services"]["librechat"]["volumes"][0]["source"] = "./deploy/missing.yaml"

    assert checks.volume_problems(broken) == [
        "postgres: no volume at /var/lib/postgresql/data, where postgres keeps its data",
        "web: volume media is not declared",
        "worker: volume media is not declared",
        "librechat: bind mount ./deploy/missing.yaml does not exist",
        "volume postgres-data is declared but unused",
        "volume spare is declared but unused",
    ]


def test_app_services_keep_their_files_in_volumes(
    any_project: Doc, image_env: dict[str, str]
) -> None:
    web = settings_report(container_env(any_project["services"]["web"], image_env))["settings"]
    data_dirs = [web["MEDIA_ROOT"], web["CODE_INTERPRETER_SESSIONS_DIR"]]
    # web runs code and stores files; worker's clean-up deletes them.
    expected = {"web": data_dirs, "worker": data_dirs}

    assert checks.app_volume_problems(any_project, expected) == []

    broken = copy.deepcopy(any_project)
    broken["services"]["worker"]["volumes"] = broken["services"]["worker"]["volumes"][:1]
    assert checks.app_volume_problems(broken, expected) == [
        f"worker: writes {data_dirs[1]} but no volume is mounted there"
    ]


def test_urls_name_services_and_their_ports(any_project: Doc) -> None:
    assert checks.url_problems(any_project) == []


def test_broken_urls_are_caught(full_project: Doc) -> None:
    broken = copy.deepcopy(full_project)
    web = broken["services"]["web"]["environment"]
    web["REDIS_URL"] = "redis://cache:6379/0"
    web["LIBRECHAT_API_URL"] = "http://librechat:3000"
    broken["services"]["librechat"]["environment"]["LIBRECHAT_CODE_BASEURL"] = (
        "http://localhost:8000/api/code/v1"
    )

    assert checks.url_problems(broken) == [
        "web: REDIS_URL=redis://cache:6379/0 names cache, which is not a service",
        "web: LIBRECHAT_API_URL=http://librechat:3000: librechat listens on [3080]",
        "librechat: LIBRECHAT_CODE_BASEURL=http://localhost:8000/api/code/v1 points at the "
        "container itself",
    ]


def test_commands_name_real_modules_and_commands(any_project: Doc) -> None:
    assert checks.command_problems(any_project) == []


def test_broken_commands_are_caught(dev_project: Doc) -> None:
    broken = copy.deepcopy(dev_project)
    services = broken["services"]
    services["web"]["command"] = ["uvicorn", "hestami_ai.asgi:app", "--port", "8000"]
    services["worker"]["command"] = ["celery", "-A", "hestami_ai.tasks", "worker"]
    services["workflows"]["command"] = ["python", "manage.py", "run_workflow"]
    services["beat"]["command"] = "gunicorn hestami_ai.wsgi"

    assert checks.command_problems(broken) == [
        "web: uvicorn serves hestami_ai.asgi:app, which does not exist",
        "workflows: manage.py run_workflow: no such command",
        "worker: celery -A hestami_ai.tasks: no Celery app there",
        "beat: gunicorn hestami_ai.wsgi: not a command this image runs",
    ]


def test_only_web_is_published(any_project: Doc) -> None:
    """Clients reach us only; a published LibreChat would take X-Forwarded-For from anyone."""
    published = {name for name, s in any_project["services"].items() if s.get("ports")}
    assert published == {"web"}


SANDBOX_OPTIONS = {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}


def test_only_the_service_running_the_sandbox_is_unconfined(any_project: Doc) -> None:
    """bubblewrap needs user namespaces, mount and a fresh /proc (docs/security.md)."""
    for name, service in app_services(any_project).items():
        options = set(service.get("security_opt") or [])
        assert "no-new-privileges:true" in options, name
        assert service.get("cap_drop") == ["ALL"], name
        if name == "web":
            assert options >= SANDBOX_OPTIONS
        else:
            assert not options & SANDBOX_OPTIONS, name


def test_beats_healthcheck_watches_its_schedule_file(
    any_project: Doc, image_env: dict[str, str]
) -> None:
    """hestami_ai/celery.py keeps the schedule in VAR_DIR; the healthcheck reads its age."""
    celery_app = (ROOT / "hestami_ai" / "celery.py").read_text()
    assert 'beat_schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule")' in celery_app
    test = " ".join(any_project["services"]["beat"]["healthcheck"]["test"])
    assert f"{image_env['VAR_DIR']}/celerybeat-schedule*" in test
