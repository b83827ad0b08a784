from __future__ import annotations

from typing import Any

from rest_framework import serializers

from users.models import User


class LibreChatStateSerializer(serializers.Serializer[User]):
    state = serializers.CharField(source="provisioning_state")
    user_id = serializers.CharField(source="librechat_user_id")
    synced_at = serializers.DateTimeField(source="librechat_synced_at", allow_null=True)
    last_error = serializers.CharField(source="provisioning_error")
    attempts = serializers.IntegerField(source="provisioning_attempts")


class UserSerializer(serializers.ModelSerializer[User]):
    librechat = LibreChatStateSerializer(source="*", read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "date_joined", "librechat"]
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
