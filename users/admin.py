from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core import dbos
from users import lifecycle
from users.agent_keys import agent_key_exists
from users.models import EMAIL_CHANGE_REFUSED, LibreChatAdmin, User
from users.provisioning import current_workflow_id, provisioning_start


class UserCreationAdminForm(AdminUserCreationForm[User]):
    class Meta:
        model = User
        fields = ("email", "name")


class UserChangeAdminForm(UserChangeForm[User]):
    class Meta:
        model = User
        fields = ("email", "name")
        help_texts = {"email": EMAIL_CHANGE_REFUSED}


class BeingDeletedFilter(admin.SimpleListFilter):
    title = "deletion"
    parameter_name = "deletion"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("running", "Being deleted")]

    def queryset(self, request: Any, queryset: QuerySet[User]) -> QuerySet[User]:
        if self.value() == "running":
            return queryset.exclude(deletion_requested_at=None)
        return queryset


def _workflow(wid: str) -> str:
    try:
        status = dbos.workflow_status(wid)
    except Exception as exc:  # the admin page must render even if DBOS's store is down
        return f"{wid}: unknown ({type(exc).__name__})"
    return f"{wid}: {status or 'not found'}"


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    """The LibreChat password is never displayed: the field is excluded from every form and list.

    Deactivating (the Active box, or the action) and deleting go through users/lifecycle.py:
    a deletion shows here, with its workflow and what it waits for, until the row goes.
    """

    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    ordering = ("-date_joined",)
    list_display = (
        "email",
        "name",
        "provisioning_state",
        "provisioning_attempts",
        "librechat_synced_at",
        "account_status",
        "is_staff",
        "date_joined",
    )
    list_filter = (
        "provisioning_state",
        BeingDeletedFilter,
        "is_staff",
        "is_superuser",
        "is_active",
    )
    search_fields = ("email", "name")
    actions = ["reprovision", "deactivate", "reactivate", "delete_accounts"]
    readonly_fields = (
        "uuid",
        "workflow_status",
        "librechat_user_id",
        "librechat_synced_at",
        "provisioning_state",
        "provisioning_error",
        "provisioning_attempts",
        "provisioning_updated_at",
        "agent_key_status",
        "credentials_revoked_at",
        "deletion_status",
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
                    "agent_key_status",
                )
            },
        ),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Lifecycle", {"fields": ("uuid", "credentials_revoked_at", "deletion_status")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),
    )

    @admin.display(description="Workflow")
    def workflow_status(self, obj: User) -> str:
        wid = current_workflow_id(obj)
        return "not started" if wid is None else _workflow(wid)

    @admin.display(description="Agent API key")
    def agent_key_status(self, obj: User) -> str:
        # Whether one exists, never the key (docs/openai-api.md).
        if obj.pk and agent_key_exists(user_id=obj.pk):
            return "yes (for /api/v1; created on first use, deleted with deactivation)"
        return "none"

    @admin.display(description="Account")
    def account_status(self, obj: User) -> str:
        if obj.deletion_requested_at:
            return f"being deleted since {obj.deletion_requested_at:%Y-%m-%d %H:%M}"
        return "active" if obj.is_active else "deactivated"

    @admin.display(description="Deletion")
    def deletion_status(self, obj: User) -> str:
        if not obj.deletion_requested_at:
            return "not requested"
        waiting = f" Waiting: {obj.deletion_error}" if obj.deletion_error else ""
        return f"{_workflow(lifecycle.deletion_workflow_id(obj))}.{waiting}"

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
            f"Provisioning started for {started} user(s); {skipped} skipped (active or being "
            "deleted).",
            messages.SUCCESS,
        )

    @admin.action(description="Deactivate (sign out everywhere, end the LibreChat session)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset.filter(is_active=True))
        for user in users:
            lifecycle.account_deactivate(user=user)
        self.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)

    @admin.action(description="Reactivate")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset.filter(is_active=False, deletion_requested_at=None))
        for user in users:
            lifecycle.account_reactivate(user=user)
        skipped = queryset.count() - len(users)
        self.message_user(
            request,
            f"Reactivated {len(users)} user(s); {skipped} skipped (active or being deleted).",
            messages.SUCCESS,
        )

    @admin.action(description="Delete, with their LibreChat accounts", permissions=["delete"])
    def delete_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self.delete_queryset(request, queryset)
        self.message_user(request, DELETION_STARTED, messages.SUCCESS)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Django's would delete the rows at once and leave the LibreChat accounts behind.
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        lifecycle.account_delete(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            lifecycle.account_delete(user=user)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        self.message_user(request, f"{obj_display}: {DELETION_STARTED}", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:users_user_changelist"))


DELETION_STARTED = (
    "Deletion started: signed out everywhere at once; the account stays listed as 'being "
    "deleted' until its LibreChat account is gone, then disappears."
)


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
