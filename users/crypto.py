"""LibreChat passwords: generated from the CSPRNG, stored encrypted with MultiFernet.

``LIBRECHAT_ENCRYPTION_KEY`` holds comma-separated Fernet keys: the first encrypts, all decrypt,
so a new key is put first and ``manage.py rotate_librechat_key`` re-encrypts the old rows.
"""

from __future__ import annotations

import secrets
import string
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# LibreChat accepts 8 to 128 characters, not all spaces (contract A1). Letters, digits and a few
# punctuation marks that need no escaping in JSON, URLs or shells.
LIBRECHAT_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.~"


class EncryptionKeyError(Exception):
    """LIBRECHAT_ENCRYPTION_KEY is missing or malformed."""


class DecryptionError(Exception):
    """A stored ciphertext matches none of the configured keys (or was tampered with)."""


def generate_librechat_password(length: int | None = None) -> str:
    size = length or settings.LIBRECHAT_PASSWORD_LENGTH
    if not 8 <= size <= 128:
        raise ValueError("LibreChat passwords must be 8 to 128 characters long.")
    return "".join(secrets.choice(LIBRECHAT_PASSWORD_ALPHABET) for _ in range(size))


def new_encrypted_librechat_password() -> str:
    """A fresh LibreChat password, already encrypted: what every new user is given."""
    return encrypt_secret(generate_librechat_password())


def parse_keys(raw: str) -> list[Fernet]:
    """Parse the comma-separated key list; raise EncryptionKeyError with what is wrong."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise EncryptionKeyError("LIBRECHAT_ENCRYPTION_KEY is not set.")
    keys = []
    for position, part in enumerate(parts, start=1):
        try:
            keys.append(Fernet(part.encode()))
        except (ValueError, TypeError):
            raise EncryptionKeyError(
                f"LIBRECHAT_ENCRYPTION_KEY key #{position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return keys


@lru_cache(maxsize=4)
def _multifernet(raw: str) -> MultiFernet:
    return MultiFernet(parse_keys(raw))


def get_multifernet() -> MultiFernet:
    return _multifernet(settings.LIBRECHAT_ENCRYPTION_KEY)


def encrypt_secret(plaintext: str) -> str:
    return get_multifernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return get_multifernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "The stored value cannot be decrypted with any LIBRECHAT_ENCRYPTION_KEY key."
        ) from None


def is_encrypted_with_primary_key(ciphertext: str) -> bool:
    try:
        parse_keys(settings.LIBRECHAT_ENCRYPTION_KEY)[0].decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def rotate_secret(ciphertext: str) -> str:
    """Re-encrypt under the first key (keeps the original timestamp, as MultiFernet.rotate does)."""
    try:
        return get_multifernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "The stored value cannot be decrypted with any LIBRECHAT_ENCRYPTION_KEY key."
        ) from None
