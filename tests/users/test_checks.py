from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from tests.helpers import child_env, manage
from users.checks import check_librechat_settings

ROOT = Path(__file__).resolve().parents[2]


def ids(messages: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(m.id for m in messages)


def test_good_configuration_passes() -> None:
    assert check_librechat_settings() == []


@pytest.mark.parametrize(
    ("debug", "key", "url", "expected"),
    [
        (False, "", "http://lc:3080", ["users.E001"]),
        (False, "garbage", "http://lc:3080", ["users.E001"]),
        (False, None, "", ["users.E002"]),
        (False, None, "lc:3080", ["users.E003"]),
        (True, "", "", ["users.W001", "users.W002"]),
    ],
)
def test_missing_or_malformed_settings(
    debug: bool, key: str | None, url: str, expected: list[str]
) -> None:
    overrides: dict[str, object] = {"DEBUG": debug, "LIBRECHAT_API_URL": url}
    if key is not None:
        overrides["LIBRECHAT_ENCRYPTION_KEY"] = key
    with override_settings(**overrides):
        assert ids(check_librechat_settings()) == expected


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SIGNING_KEY", "LIBRECHAT_ENCRYPTION_KEY"])
def test_production_start_up_stops_without_a_secret(missing: str, tmp_path: Path) -> None:
    env = child_env(DEBUG="false", VAR_DIR=str(tmp_path))
    del env[missing]
    result = manage(env, "check")
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_development_secrets_are_never_used_with_debug_off(tmp_path: Path) -> None:
    secrets_file = ROOT / "var" / "dev-secrets.env"
    env = {
        k: v for k, v in os.environ.items() if k != "SECRET_KEY" and not k.startswith("HESTAMI_")
    }
    env.update(DEBUG="false")
    subprocess.run([sys.executable, "-m", "hestami_ai.devsecrets"], cwd=ROOT, env=env, check=True)
    assert "SECRET_KEY=" in secrets_file.read_text()
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    env["DEBUG"] = "true"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
