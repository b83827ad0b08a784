"""Expiry: the service, `manage.py cleanup_code_sessions` and the Celery task."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from code_interpreter.cleanup import sessions_cleanup
from code_interpreter.models import CodeFile, CodeSession
from code_interpreter.storage import file_storage
from code_interpreter.tasks import code_sessions_cleanup
from tests.code_interpreter.conftest import BASE, post_exec


def make_session(api: Client) -> tuple[str, str]:
    body = post_exec(api, {"lang": "bash", "code": "echo x > /mnt/data/x.txt"}).json()
    return body["session_id"], body["files"][0]["id"]


def expire(session_id: str) -> None:
    CodeSession.objects.filter(pk=session_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_sessions_last_at_least_a_day(api: Client) -> None:
    session_id, _ = make_session(api)
    session = CodeSession.objects.get(pk=session_id)
    assert session.expires_at - timezone.now() > timedelta(hours=24)


def test_expired_sessions_are_removed_with_their_files_and_directory(
    api: Client, code_settings: Settings
) -> None:
    old_session, old_file = make_session(api)
    kept_session, kept_file = make_session(api)
    stored = CodeFile.objects.get(pk=old_file).storage_name
    expire(old_session)
    # Expired is gone for callers at once, before the clean-up runs.
    assert api.get(f"{BASE}/download/{old_session}/{old_file}").status_code == 404
    report = sessions_cleanup()
    assert (report.sessions, report.files, report.bytes) == (1, 1, 2)
    assert not CodeSession.objects.filter(pk=old_session).exists()
    assert not file_storage().exists(stored)
    sessions_dir = Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR)
    assert not (sessions_dir / old_session).exists()
    assert (sessions_dir / kept_session / "x.txt").exists()
    assert api.get(f"{BASE}/download/{kept_session}/{kept_file}").status_code == 200


def test_orphaned_directories_go_after_a_grace_period(api: Client, code_settings: Settings) -> None:
    orphan = Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR) / ("O" * 21)
    orphan.mkdir(parents=True)
    assert sessions_cleanup().orphan_dirs == 0  # too young
    assert sessions_cleanup(now=timezone.now() + timedelta(hours=2)).orphan_dirs == 1
    assert not orphan.exists()


def test_management_command_reports(api: Client) -> None:
    session_id, _ = make_session(api)
    expire(session_id)
    out = io.StringIO()
    call_command("cleanup_code_sessions", "--dry-run", stdout=out)
    assert "1 expired session(s)" in out.getvalue()
    call_command("cleanup_code_sessions", stdout=out, stderr=io.StringIO())
    assert "Removed 1 session(s) with 1 file(s)" in out.getvalue()
    assert not CodeSession.objects.exists()


def test_celery_task_calls_the_service(api: Client) -> None:
    session_id, _ = make_session(api)
    expire(session_id)
    assert code_sessions_cleanup() == {"sessions": 1, "files": 1, "bytes": 2, "orphan_dirs": 0}
