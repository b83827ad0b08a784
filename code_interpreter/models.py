"""Sessions and their files: what LibreChat's 21-character ids point to, across restarts."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SessionOrigin(models.TextChoices):
    EXEC = "exec", "Execution"
    UPLOAD = "upload", "Upload"


class FileOrigin(models.TextChoices):
    UPLOAD = "upload", "Uploaded"
    OUTPUT = "output", "Written by code"


class CodeSession(models.Model):
    """A /mnt/data: an execution's working directory, or the bucket an upload went to.

    ``owner`` is who may use it: ``user:<LibreChat user id>``, ``agent:<id>`` or ``skill:<id>``
    (shared by everyone who names that resource), or empty when the request named no caller, in
    which case the ids alone are the capability.
    """

    id = models.CharField(primary_key=True, max_length=21, editable=False)
    owner = models.CharField(max_length=160, blank=True, default="")
    # Whose budget it counts against (``Caller.budget_key``): the JWT's user, or the API key.
    caller = models.CharField(max_length=200, blank=True, default="")
    origin = models.CharField(max_length=8, choices=SessionOrigin.choices)
    # Bytes its directory held after its last execution (on the host that ran it).
    disk_bytes = models.BigIntegerField(default=0)
    # Root-run sandboxes: the host uid its code runs as, its own while the session lives.
    uid = models.PositiveIntegerField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["caller", "expires_at"], name="code_session_caller")]

    def __str__(self) -> str:
        return self.id


class CodeFile(models.Model):
    """A stored file; its bytes are in the ``code_interpreter`` storage, at ``storage_name``."""

    id = models.CharField(primary_key=True, max_length=21, editable=False)
    session = models.ForeignKey(CodeSession, on_delete=models.CASCADE, related_name="files")
    # Its path below /mnt/data, as LibreChat names it (may hold "/" for nested artifacts).
    name = models.CharField(max_length=512)
    storage_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    origin = models.CharField(max_length=8, choices=FileOrigin.choices)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["session", "name"], name="code_file_session_name"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.id} {self.name}"

    @property
    def path(self) -> str:
        return f"/mnt/data/{self.name}"


class ExecutionLease(models.Model):
    """A caller's running execution (or upload), for the per-caller budgets when there is no
    Redis: counted across web processes, and holding the disk it may still fill."""

    id = models.CharField(primary_key=True, max_length=32, editable=False)
    caller = models.CharField(max_length=200, db_index=True)
    running = models.BooleanField(default=True)  # an execution, not an upload
    reserved_bytes = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField()  # a crashed process's leases lapse

    def __str__(self) -> str:
        return f"{self.caller} {self.id}"
