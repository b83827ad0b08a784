from __future__ import annotations

from django.contrib import admin

from code_interpreter.models import CodeFile, CodeSession


class CodeFileInline(admin.TabularInline[CodeFile, CodeSession]):
    model = CodeFile
    fields = ("id", "name", "content_type", "size", "origin", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(CodeSession)
class CodeSessionAdmin(admin.ModelAdmin[CodeSession]):
    list_display = ("id", "owner", "caller", "origin", "disk_bytes", "last_used_at", "expires_at")
    list_filter = ("origin",)
    search_fields = ("=id", "=owner", "=caller")
    readonly_fields = (
        "id",
        "owner",
        "caller",
        "origin",
        "disk_bytes",
        "uid",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    inlines = (CodeFileInline,)
