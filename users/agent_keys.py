"""Each user's LibreChat agent API key, stored encrypted: the bearer of LibreChat's remote agents
API (docs/openai-api.md). chat/remote_agents.py creates it on first use; this module keeps it,
re-encrypts it with the LibreChat passwords, and deletes it in LibreChat when the account is
deactivated (an ``account_deactivated`` receiver, core/accounts.py). Deleting the LibreChat
account deletes its keys with it (LibreChat's deleteUserController), and our row goes with ours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

import librechat
from users.crypto import (
    DecryptionError,
    decrypt_secret,
    encrypt_secret,
)
from users.models import LibreChatAgentKey, User
from users.services import encrypted_field_rotate, librechat_password_decrypt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredAgentKey:
    key_id: str
    key: str  # the secret; never log it

    def __repr__(self) -> str:
        return f"StoredAgentKey(key_id={self.key_id!r}, key=<hidden>)"


def agent_key_get(*, user_id: int) -> StoredAgentKey | None:
    """The user's key, or None if there is none, or it cannot be decrypted any more (its key was
    removed from LIBRECHAT_ENCRYPTION_KEY): a new one then replaces it."""
    row = LibreChatAgentKey.objects.filter(user_id=user_id).first()
    if row is None:
        return None
    try:
        return StoredAgentKey(key_id=row.librechat_key_id, key=decrypt_secret(row.key_encrypted))
    except DecryptionError:
        logger.error("stored librechat agent key unreadable user_id=%s; replacing it", user_id)
        return None


def agent_key_store(*, user_id: int, key: librechat.AgentApiKey) -> str | None:
    """Keep a key LibreChat just created; answers the id of the key it replaces, if any, for the
    caller to delete in LibreChat."""
    with transaction.atomic():
        previous = LibreChatAgentKey.objects.select_for_update().filter(user_id=user_id).first()
        LibreChatAgentKey.objects.update_or_create(
            user_id=user_id,
            defaults={"librechat_key_id": key.id, "key_encrypted": encrypt_secret(key.key)},
        )
    logger.info("librechat agent key stored user_id=%s key_id=%s", user_id, key.id)
    if previous is not None and previous.librechat_key_id != key.id:
        return previous.librechat_key_id
    return None


def agent_key_forget(*, user_id: int, key_id: str) -> None:
    """Drop our copy of a key LibreChat no longer knows (only that key: a newer one stays)."""
    LibreChatAgentKey.objects.filter(user_id=user_id, librechat_key_id=key_id).delete()
    logger.info("librechat agent key forgotten user_id=%s key_id=%s", user_id, key_id)


def agent_key_exists(*, user_id: int) -> bool:
    return LibreChatAgentKey.objects.filter(user_id=user_id).exists()


# -- the end of an account: the key is deleted in LibreChat -------------------------------------


def agent_key_delete(*, user: User, give_up: bool = False) -> None:
    """Delete the user's key in LibreChat, as the user (log in with the stored password,
    ``DELETE /api/api-keys/:id``, log out), then our row.

    Raises ``LibreChatError`` while LibreChat cannot be reached, so the clean-up retries; with
    ``give_up``, or after a permanent refusal (account or key gone), our row goes anyway.
    """
    row = LibreChatAgentKey.objects.filter(user_id=user.pk).first()
    if row is None:
        return
    try:
        # As the account's other clean-up steps: under the user's address, not on our server's
        # own budget of LibreChat's per-IP log-in limit.
        ip = user.registration_ip
        session = librechat.login(
            email=user.email, password=librechat_password_decrypt(user), client_ip=ip
        )
        try:
            deleted = librechat.delete_agent_api_key(
                access_token=session.access_token, key_id=row.librechat_key_id, client_ip=ip
            )
        finally:
            librechat.logout(
                access_token=session.access_token,
                refresh_token=session.refresh_token,
                client_ip=ip,
            )
        logger.info(
            "librechat agent key %s user_id=%s key_id=%s",
            "deleted" if deleted else "already gone",
            user.pk,
            row.librechat_key_id,
        )
    except DecryptionError:
        logger.error("stored librechat password unreadable user_id=%s; key left", user.pk)
    except librechat.LibreChatError as exc:
        if not exc.permanent and not give_up:
            raise
        logger.warning(
            "librechat agent key not deleted user_id=%s key_id=%s: %s",
            user.pk,
            row.librechat_key_id,
            exc.message,
        )
    LibreChatAgentKey.objects.filter(pk=row.pk, librechat_key_id=row.librechat_key_id).delete()


def on_account_deactivated(
    sender: object, *, user: User, give_up: bool = False, **_: object
) -> None:
    agent_key_delete(user=user, give_up=give_up)


# -- key rotation (manage.py rotate_librechat_key) ----------------------------------------------


def agent_keys_count() -> int:
    return LibreChatAgentKey.objects.count()


def agent_keys_rotate(
    *, batch_size: int = 500, progress: Callable[[int], object] | None = None
) -> tuple[int, int]:
    """Re-encrypt every stored agent key under the first key; return (rotated, already_current)."""
    return encrypted_field_rotate(
        LibreChatAgentKey.objects.all(), "key_encrypted", batch_size=batch_size, progress=progress
    )
