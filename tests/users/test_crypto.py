from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from users.crypto import (
    LIBRECHAT_PASSWORD_ALPHABET,
    DecryptionError,
    EncryptionKeyError,
    decrypt_secret,
    encrypt_secret,
    generate_librechat_password,
    parse_keys,
)


def test_generated_password_fits_librechat_rules() -> None:
    passwords = {generate_librechat_password() for _ in range(200)}
    assert len(passwords) == 200  # CSPRNG: no repeats
    for password in passwords:
        assert 8 <= len(password) <= 128  # LibreChat's registerSchema (contract A1)
        assert password.strip()
        assert set(password) <= set(LIBRECHAT_PASSWORD_ALPHABET)


@pytest.mark.parametrize("length", [7, 129])
def test_generated_password_rejects_lengths_librechat_refuses(length: int) -> None:
    with pytest.raises(ValueError, match="8 to 128"):
        generate_librechat_password(length)


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    token = encrypt_secret("s3cret-value")
    assert "s3cret-value" not in token
    assert decrypt_secret(token) == "s3cret-value"
    assert encrypt_secret("s3cret-value") != token  # fresh IV every time


def test_first_key_encrypts_all_decrypt() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=old):
        old_token = encrypt_secret("pw")
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=f"{new},{old}"):
        assert decrypt_secret(old_token) == "pw"
        new_token = encrypt_secret("pw")
    with override_settings(LIBRECHAT_ENCRYPTION_KEY=new):
        assert decrypt_secret(new_token) == "pw"
        with pytest.raises(DecryptionError):
            decrypt_secret(old_token)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "not set"),
        ("not-a-key", "key #1"),
        (f"{Fernet.generate_key().decode()},short", "key #2"),
    ],
)
def test_parse_keys_says_what_is_wrong(raw: str, message: str) -> None:
    with pytest.raises(EncryptionKeyError, match=message):
        parse_keys(raw)
