from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from librechat import versions
from tests.helpers import ROOT
from tests.librechat_double.config import DoubleConfig
from tests.librechat_double.releases import LATEST, RELEASES
from tests.librechat_double.server import LibreChatDouble

# The LibreChat-facing modules (or single tests, `module::name`) that run against every release
# the double serves; the rest run against the newest. docs/librechat-versions.md says why these
# and what it costs.
EVERY_RELEASE = frozenset(
    {
        "tests/chat/test_proxy_routes.py",
        "tests/chat/test_proxy_releases.py",
        "tests/chat/test_proxy_streaming.py",
        "tests/users/test_librechat_client.py",
        "tests/librechat/test_versions.py",
        "tests/librechat/test_doctor_releases.py",
        # What LibreChat answers decides these; the back-off and outage tests test our retries.
        *(
            f"tests/users/test_provisioning.py::{name}"
            for name in (
                "test_registration_provisions_an_active_librechat_account",
                "test_existing_librechat_account_with_another_password_is_a_conflict",
                "test_invalid_input_fails_permanently_with_librechats_message",
                "test_registration_disabled_fails_with_the_403_message",
                "test_email_login_switched_off_fails_on_0_8_8_with_the_fix",
                "test_an_end_user_librechat_makes_its_admin_is_not_activated",
                "test_concurrent_starts_make_one_account",
            )
        ),
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``librechat_version``: every release for the modules of EVERY_RELEASE, else the newest."""
    if "librechat_version" not in metafunc.fixturenames:
        return
    module = Path(str(metafunc.definition.path)).resolve().relative_to(ROOT).as_posix()
    if module in EVERY_RELEASE or f"{module}::{metafunc.definition.originalname}" in EVERY_RELEASE:
        metafunc.parametrize("librechat_version", RELEASES, ids=[f"lc{v}" for v in RELEASES])


@pytest.fixture
def librechat_version() -> str:
    """The LibreChat release the double answers like (parametrized: pytest_generate_tests)."""
    return LATEST


def pytest_sessionfinish(session: pytest.Session) -> None:
    """What this run left under VAR_DIR: the DBOS store the default settings give it
    (hestami_ai/settings.py derives it from the test database's file), if anything created it."""
    from django.conf import settings

    url = str(getattr(settings, "DBOS_SYSTEM_DATABASE_URL", ""))
    if url.startswith("sqlite:///") and "test-db-" in url:
        path = Path(url.removeprefix("sqlite:///"))
        for leftover in path.parent.glob(f"{path.name}*"):
            leftover.unlink(missing_ok=True)
    # The executor id lock file of this run's in-process DBOS (the `workflows` fixture).
    (Path(settings.VAR_DIR) / f"dbos-executor-test-{os.getpid()}.lock").unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """Throttles and LibreChat sessions live in the cache (Redis in CI), the LibreChat release
    in the process (librechat/versions.py): start every test clean."""
    cache.clear()
    versions.clear_cache()
    yield
    cache.clear()
    versions.clear_cache()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def librechat_server() -> Iterator[LibreChatDouble]:
    with LibreChatDouble(DoubleConfig()) as double:
        yield double


# LibreChat as deployed: the operator's admin is its first account (manage.py
# librechat_bootstrap), so the accounts provisioning creates are plain USERs.
OPERATOR_EMAIL = "operator@hestami.test"
OPERATOR_PASSWORD = "operator-password-0123456789"


@pytest.fixture
def librechat(
    librechat_server: LibreChatDouble, settings: Any, librechat_version: str
) -> Iterator[LibreChatDouble]:
    """The LibreChat double over real HTTP, reset, with LibreChat's default limits and the
    operator's admin account (`fresh_librechat`: without it), answering like LibreChat
    ``librechat_version``; we detect the release from it as in production (``auto``)."""
    from librechat import auth as client

    librechat_server.reset()
    librechat_server.config.update(
        **{
            f.name: getattr(DoubleConfig(), f.name)
            for f in DoubleConfig.__dataclass_fields__.values()
        }
    )
    librechat_server.config.update(version=librechat_version)
    settings.LIBRECHAT_VERSION = versions.AUTO
    librechat_server.state.add_user(
        OPERATOR_EMAIL, OPERATOR_PASSWORD, name="Operator", role="ADMIN"
    )
    settings.LIBRECHAT_API_URL = librechat_server.url
    client.reset_client()
    yield librechat_server
    client.reset_client()


@pytest.fixture
def fresh_librechat(librechat: LibreChatDouble) -> LibreChatDouble:
    """A LibreChat nobody has registered with yet: its first account will be ADMIN."""
    librechat.state.reset()
    return librechat


def dbos_test_url(tmp_path: Path) -> str:
    """SQLite in the test's folder, or a PostgreSQL database when the suite runs on PostgreSQL."""
    from django.db import connection

    if connection.vendor == "postgresql":
        params = connection.settings_dict
        host = params.get("HOST") or "127.0.0.1"
        port = params.get("PORT") or 5432
        # Named after this run's test database, so runs on other databases never share it.
        name = f"{params['NAME']}_dbos"
        return f"postgresql://{params.get('USER') or 'postgres'}@{host}:{port}/{name}"
    return f"sqlite:///{tmp_path / 'dbos.sqlite3'}"


@pytest.fixture
def workflows(settings: Any, tmp_path: Path, librechat: LibreChatDouble) -> Iterator[str]:
    """DBOS launched in this process with short back-offs; yields the system database URL."""
    from dbos import DBOS

    from core import dbos

    url = dbos_test_url(tmp_path)
    settings.DBOS_SYSTEM_DATABASE_URL = url
    settings.DBOS_EXECUTOR_ID = f"test-{os.getpid()}"  # one per test run, even side by side
    settings.DBOS_QUEUE_POLLING_S = 0.05
    settings.PROVISIONING_BACKOFF_BASE_S = 0.2
    settings.PROVISIONING_BACKOFF_MAX_S = 1.0
    DBOS.reset_system_database(system_database_url=url)
    dbos.launch("test")
    yield url
    dbos.shutdown()
