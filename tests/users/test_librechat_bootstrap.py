"""`manage.py librechat_bootstrap`: the operator's LibreChat admin, created once, before anyone."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD
from tests.librechat_double.server import LibreChatDouble
from users.crypto import decrypt_secret
from users.models import LibreChatAdmin

pytestmark = pytest.mark.django_db(transaction=True)


def bootstrap(*args: str) -> str:
    out = io.StringIO()
    call_command("librechat_bootstrap", *args, stdout=out)
    return out.getvalue()


def test_creates_the_admin_once_and_does_nothing_the_second_time(
    fresh_librechat: LibreChatDouble,
) -> None:
    said = bootstrap("--email", "Ops@Example.com")
    assert "reports the role ADMIN" in said
    account = fresh_librechat.state.get_user("ops@example.com")
    assert account is not None
    assert account.role == "ADMIN"
    admin = LibreChatAdmin.objects.get()
    assert (admin.email, admin.role, admin.librechat_user_id) == (
        "ops@example.com",
        "ADMIN",
        account.id,
    )
    assert admin.verified_at is not None
    # Kept like a user's password: Fernet ciphertext, never the plain text.
    assert decrypt_secret(admin.password_encrypted) == account.password
    assert account.password not in admin.password_encrypted
    # The verifying log-in left no session behind.
    assert fresh_librechat.state.sessions_of("ops@example.com") == []

    requests_before = len(fresh_librechat.state.requests)
    stored = LibreChatAdmin.objects.values().get()
    again = bootstrap("--email", "ops@example.com")
    assert "already set up" in again
    assert "nothing to do" in again
    assert len(fresh_librechat.state.requests) == requests_before  # LibreChat was not asked
    assert LibreChatAdmin.objects.values().get() == stored
    assert fresh_librechat.state.accounts_created == 1


def test_too_late_says_why_keeps_the_credentials_and_repairs_later(
    fresh_librechat: LibreChatDouble,
) -> None:
    fresh_librechat.state.add_user("first@example.com", "an-end-users-password")  # ADMIN
    with pytest.raises(CommandError) as caught:
        bootstrap("--email", "ops@example.com")
    assert "not ADMIN" in str(caught.value)
    assert "first one holds ADMIN" in str(caught.value)
    admin = LibreChatAdmin.objects.get()
    assert (admin.role, admin.verified_at) == ("USER", None)

    # The operator deletes the end user's account and promotes ours in LibreChat's database.
    fresh_librechat.state.delete_user("first@example.com")
    fresh_librechat.state.get_user("ops@example.com").role = "ADMIN"  # type: ignore[union-attr]
    assert "reports the role ADMIN" in bootstrap("--repair")
    assert LibreChatAdmin.objects.get().verified_at is not None


def test_adopts_an_admin_made_with_librechats_own_cli(
    librechat: LibreChatDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(OPERATOR_PASSWORD + "\n"))
    assert "reports the role ADMIN" in bootstrap("--email", OPERATOR_EMAIL, "--password-stdin")
    assert librechat.state.register_calls == 0
    assert decrypt_secret(LibreChatAdmin.objects.get().password_encrypted) == OPERATOR_PASSWORD


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give the admin's e-mail address"),
        (("--email", "other@example.com"), "already set up as ops@example.com"),
    ],
)
def test_refusals(fresh_librechat: LibreChatDouble, args: tuple[str, ...], message: str) -> None:
    if args:
        bootstrap("--email", "ops@example.com")
    with pytest.raises(CommandError, match=re.escape(message)):
        bootstrap(*args)


def test_a_wrong_password_for_an_existing_account_is_explained(
    librechat: LibreChatDouble,
) -> None:
    with pytest.raises(CommandError, match=re.escape(f"already has an account {OPERATOR_EMAIL}")):
        bootstrap("--email", OPERATOR_EMAIL)
