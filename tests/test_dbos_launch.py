"""DBOS launches only in the processes that run workflows, never in management commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, child_env, manage


def test_management_commands_do_not_launch_dbos(tmp_path: Path) -> None:
    dbos_file = tmp_path / "dbos.sqlite3"
    env = child_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DBOS_SYSTEM_DATABASE_URL=f"sqlite:///{dbos_file}",
        VAR_DIR=str(tmp_path),
    )
    for command in (["migrate", "-v0"], ["check"], ["shell", "-c", "import hestami_ai.celery"]):
        result = manage(env, *command)
        assert result.returncode == 0, result.stderr
        assert "DBOS" not in result.stderr + result.stdout
    assert not dbos_file.exists()
    # The ASGI entry point does launch it (and so creates the system database).
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import hestami_ai.asgi; from core import dbos; "
            "assert dbos.is_launched(); dbos.shutdown()",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert dbos_file.exists()
