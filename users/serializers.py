from __future__ import annotations

from typing import Any

from rest_framework import serializers

from users.models import User
from users.selectors import chat_account_status


class LibreChatStateSerializer(serializers.Serializer[User]):
    state = serializers.CharField(source="provisioning_state")
    user_id = serializers.CharField(source="librechat_user_id")
    synced_at = serializers.DateTimeField(source="librechat_synced_at", allow_null=True)
    last_error = serializers.CharField(source="provisioning_error")
    attempts = serializers.IntegerField(source="provisioning_attempts")
    retrying = serializers.SerializerMethodField(
        help_text="Whether setting the account up goes on by itself (pending, or failed with "
        "another attempt coming); false for states only an administrator can change."
    )
    message = serializers.SerializerMethodField(
        help_text="What is true and what to do, for the user; empty when the account is ready."
    )

    def get_retrying(self, user: User) -> bool:
        return chat_account_status(user).retrying

    def get_message(self, user: User) -> str:
        return chat_account_status(user).message


class UserSerializer(serializers.ModelSerializer[User]):
    librechat = LibreChatStateSerializer(source="*", read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "date_joined", "is_active", "librechat"]
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    name = serializers.CharField(min_length=3, max_length=80)


class TokenPairSerializer(serializers.Serializer[Any]):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisterResponseSerializer(serializers.Serializer[Any]):
    user = UserSerializer()
    tokens = TokenPairSerializer()


class LogoutSerializer(serializers.Serializer[Any]):
    refresh = serializers.CharField()


class LibreChatPasswordSerializer(serializers.Serializer[Any]):
    password = serializers.CharField()


class AccountDeleteSerializer(serializers.Serializer[Any]):
    password = serializers.CharField(
        max_length=128, write_only=True, trim_whitespace=False, help_text="The current password."
    )


class AccountDeletionSerializer(serializers.Serializer[Any]):
    status = serializers.CharField(help_text="`deleting`: the account goes once LibreChat's does.")
    message = serializers.CharField()
