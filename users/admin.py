from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest

from hestami_ai import dbos
from users.models import LibreChatAdmin, User
from users.provisioning import current_workflow_id, provisioning_start


class UserCreationAdminForm(AdminUserCreationForm[User]):
    class Meta:
        model = User
        fields = ("email", "name")


class UserChangeAdminForm(UserChangeForm[User]):
    class Meta:
        model = User
        fields = ("email", "name")


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    """The LibreChat password is never displayed: the field is excluded from every form and list."""

    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    ordering = ("-date_joined",)
    list_display = (
        "email",
        "name",
        "provisioning_state",
        "provisioning_attempts",
        "librechat_synced_at",
        "is_staff",
        "date_joined",
    )
    list_filter = ("provisioning_state", "is_staff", "is_superuser", "is_active")
    search_fields = ("email", "name")
    actions = ["reprovision"]
    readonly_fields = (
        "workflow_status",
        "librechat_user_id",
        "librechat_synced_at",
        "provisioning_state",
        "provisioning_error",
        "provisioning_attempts",
        "provisioning_updated_at",
        "last_login",
        "date_joined",
    )
    fieldsets = (
        (None, {"fields": ("email", "name", "password")}),
        (
            "LibreChat",
            {
                "fields": (
                    "provisioning_state",
                    "workflow_status",
                    "librechat_user_id",
                    "librechat_synced_at",
                    "provisioning_attempts",
                    "provisioning_error",
                    "provisioning_updated_at",
                )
            },
        ),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),
    )

    @admin.display(description="Workflow")
    def workflow_status(self, obj: User) -> str:
        wid = current_workflow_id(obj)
        if wid is None:
            return "not started"
        try:
            status = dbos.workflow_status(wid)
        except Exception as exc:  # the admin page must render even if DBOS's store is down
            return f"{wid}: unknown ({type(exc).__name__})"
        return f"{wid}: {status or 'not found'}"

    @admin.action(description="Re-provision in LibreChat")
    def reprovision(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        started = sum(
            1
            for pk in queryset.values_list("pk", flat=True)
            if provisioning_start(user_id=pk, new_run=True)
        )
        skipped = queryset.count() - started
        self.message_user(
            request,
            f"Provisioning started for {started} user(s); {skipped} already active.",
            messages.SUCCESS,
        )

    def save_model(self, request: Any, obj: User, form: Any, change: bool) -> None:
        from users.crypto import new_encrypted_librechat_password

        if not obj.librechat_password_encrypted:
            obj.librechat_password_encrypted = new_encrypted_librechat_password()
        super().save_model(request, obj, form, change)


@admin.register(LibreChatAdmin)
class LibreChatAdminAdmin(admin.ModelAdmin[LibreChatAdmin]):
    """Shown, never edited here: `manage.py librechat_bootstrap` creates it (docs/operations.md).
    Deleting it lets the command set up another; the password is never displayed."""

    list_display = ("email", "role", "verified_at", "librechat_user_id", "created_at")
    fields = ("email", "name", "role", "verified_at", "librechat_user_id", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
