from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import override_settings

from librechat import AgentApiKey
from tests.factories import make_user
from users.agent_keys import agent_key_get, agent_key_store
from users.crypto import DecryptionError, decrypt_secret, encrypt_secret
from users.models import LibreChatAdmin, User
from users.services import librechat_password_decrypt, librechat_passwords_rotate

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


@pytest.fixture
def users_under_old_key(db: None) -> dict[int, str]:
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=OLD):
        users = [make_user() for _ in range(7)]
        return {u.pk: librechat_password_decrypt(u) for u in users}


def test_rotation_moves_every_password_to_the_first_key(
    users_under_old_key: dict[int, str],
) -> None:
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=f"{NEW},{OLD}"):
        # Before rotation the old key still decrypts everything.
        for user in User.objects.all():
            assert librechat_password_decrypt(user) == users_under_old_key[user.pk]
        out, err = StringIO(), StringIO()
        call_command("rotate_librechat_key", "--batch-size", "3", stdout=out, stderr=err)
    assert "Re-encrypted 7 password(s); 0 already used the first key." in out.getvalue()
    assert "7/7" in err.getvalue()  # the progress bar
    # After it, the new key alone is enough and the old one alone is not.
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=NEW):
        for user in User.objects.all():
            assert librechat_password_decrypt(user) == users_under_old_key[user.pk]
    first = User.objects.first()
    assert first is not None
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=OLD), pytest.raises(DecryptionError):
        decrypt_secret(first.librechat_password_encrypted)


def test_rotation_is_idempotent_and_resumable(users_under_old_key: dict[int, str]) -> None:
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=f"{NEW},{OLD}"):
        calls: list[int] = []

        class Interrupted(Exception):
            pass

        def progress(n: int) -> None:
            calls.append(n)
            if len(calls) == 1:
                raise Interrupted  # dies after the first batch has committed

        with pytest.raises(Interrupted):
            librechat_passwords_rotate(batch_size=3, progress=progress)
        assert librechat_passwords_rotate(batch_size=3) == (4, 3)
        assert librechat_passwords_rotate(batch_size=3) == (0, 7)
        for user in User.objects.all():
            assert librechat_password_decrypt(user) == users_under_old_key[user.pk]


def test_rotation_covers_the_librechat_admin(db: None) -> None:
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=OLD):
        LibreChatAdmin.objects.create(
            email="ops@example.com", name="Operator", password_encrypted=encrypt_secret("s3cret")
        )
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=f"{NEW},{OLD}"):
        out = StringIO()
        call_command("rotate_librechat_key", stdout=out, stderr=StringIO())
        assert "the LibreChat admin's password too" in out.getvalue()
        again = StringIO()
        call_command("rotate_librechat_key", stdout=again, stderr=StringIO())
        assert "LibreChat admin" not in again.getvalue()
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=NEW):
        assert decrypt_secret(LibreChatAdmin.objects.get().password_encrypted) == "s3cret"


def test_rotation_moves_the_agent_api_keys_too(users_under_old_key: dict[int, str]) -> None:
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=OLD):
        for number, user in enumerate(User.objects.all()[:3]):
            agent_key_store(
                user_id=user.pk, key=AgentApiKey(id=f"{number:024x}", key=f"sk-secret{number}")
            )
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=f"{NEW},{OLD}"):
        out = StringIO()
        call_command("rotate_librechat_key", stdout=out, stderr=StringIO())
    assert "Re-encrypted 3 LibreChat agent API key(s); 0 already used" in out.getvalue()
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=NEW):
        keys = sorted(
            stored.key
            for user in User.objects.all()
            if (stored := agent_key_get(user_id=user.pk)) is not None
        )
    assert keys == ["sk-secret0", "sk-secret1", "sk-secret2"]
