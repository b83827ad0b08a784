"""Every way of creating a user gives them a LibreChat password and starts provisioning after
commit; each reaches `active` against the double within seconds. (Before: `create_user` rows
had no password and looped in reconciliation; admin and `createsuperuser` rows waited for it.)"""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.helpers import wait_for
from tests.librechat_double.server import LibreChatDouble
from users.models import ProvisioningState, User
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db(transaction=True)
WITHIN_S = 10.0


def becomes_active(email: str) -> User:
    started = time.monotonic()
    wait_for(
        lambda: User.objects.filter(email=email, provisioning_state="active").exists(),
        timeout=WITHIN_S,
        message=f"{email} active",
    )
    user = User.objects.get(email=email)
    assert time.monotonic() - started < WITHIN_S
    return user


def provisioned_with_its_password(user: User, librechat: LibreChatDouble) -> None:
    account = librechat.state.get_user(user.email)
    assert account is not None
    assert account.password == librechat_password_decrypt(user)
    assert user.librechat_user_id == account.id


def test_rest_registration(
    api_client: APIClient, librechat: LibreChatDouble, workflows: str
) -> None:
    body = {"email": "rest@example.com", "password": DEFAULT_PASSWORD, "name": "Rest Person"}
    assert api_client.post("/api/auth/register/", body, format="json").status_code == 201
    provisioned_with_its_password(becomes_active("rest@example.com"), librechat)


def test_web_signup(client: Client, librechat: LibreChatDouble, workflows: str) -> None:
    client.post(
        "/accounts/signup/",
        {
            "email": "web@example.com",
            "name": "Web Person",
            "password1": DEFAULT_PASSWORD,
            "password2": DEFAULT_PASSWORD,
        },
    )
    provisioned_with_its_password(becomes_active("web@example.com"), librechat)
    page = client.get("/accounts/")
    assert b'data-testid="provisioning-state">Active<' in page.content


def test_admin_add_form(client: Client, librechat: LibreChatDouble, workflows: str) -> None:
    client.force_login(make_legacy_user(email="root@example.com", is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/users/user/add/",
        {
            "email": "Staff@Example.com",
            "name": "Staff",
            "password1": DEFAULT_PASSWORD,
            "password2": DEFAULT_PASSWORD,
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    provisioned_with_its_password(becomes_active("staff@example.com"), librechat)


def test_createsuperuser(
    librechat: LibreChatDouble, workflows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", DEFAULT_PASSWORD)
    call_command(
        "createsuperuser",
        "--noinput",
        "--email",
        "boss@example.com",
        "--name",
        "The Boss",
        stdout=StringIO(),
    )
    provisioned_with_its_password(becomes_active("boss@example.com"), librechat)


def test_create_user_in_a_shell(librechat: LibreChatDouble, workflows: str) -> None:
    User.objects.create_user(email="shell@example.com", password=DEFAULT_PASSWORD, name="Shell")
    provisioned_with_its_password(becomes_active("shell@example.com"), librechat)


def test_fixture(librechat: LibreChatDouble, workflows: str, tmp_path: Path) -> None:
    """loaddata saves raw (no save(), so no password yet): the workflow makes one."""
    fixture = tmp_path / "people.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "users.user",
                    "pk": 4242,
                    "fields": {"email": "fixture@example.com", "name": "From A Fixture"},
                }
            ]
        )
    )
    call_command("loaddata", str(fixture), verbosity=0)
    user = becomes_active("fixture@example.com")
    provisioned_with_its_password(user, librechat)


def test_data_migration(librechat: LibreChatDouble, workflows: str) -> None:
    """A data migration's rows get no signal at all: `migrate`'s end starts them."""
    make_legacy_user(email="migrated@example.com", librechat_password=False)
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    provisioned_with_its_password(becomes_active("migrated@example.com"), librechat)


def test_an_old_copy_saved_again_neither_restarts_nor_undoes_provisioning(
    librechat: LibreChatDouble, workflows: str
) -> None:
    """The instance create_user returned still says `pending`; saving it (a name change) must
    not write that back over what the workflow recorded, nor start another run."""
    user = User.objects.create_user(
        email="once@example.com", password=DEFAULT_PASSWORD, name="Once"
    )
    active = becomes_active(user.email)
    user.name = "Once Again"
    user.save()
    time.sleep(0.5)
    saved = User.objects.get(pk=user.pk)
    assert saved.name == "Once Again"
    assert saved.provisioning_state == ProvisioningState.ACTIVE
    assert saved.librechat_user_id == active.librechat_user_id
    assert saved.provisioning_attempts == 1
    assert librechat.state.register_calls == 1
