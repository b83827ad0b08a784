"""A uuid per user (workflow ids and inputs), and the deactivation and deletion fields.

The uuid is added empty, filled row by row (a column default would give every existing row the
same value), then made unique and required.
"""

import uuid
from typing import Any

from django.db import migrations, models


def fill_uuids(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("users", "User")
    for pk in User.objects.using(schema_editor.connection.alias).values_list("pk", flat=True):
        User.objects.using(schema_editor.connection.alias).filter(pk=pk).update(uuid=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="uuid",
            field=models.UUIDField(editable=False, null=True, verbose_name="identity"),
        ),
        migrations.RunPython(fill_uuids, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="user",
            name="uuid",
            field=models.UUIDField(
                default=uuid.uuid4, editable=False, unique=True, verbose_name="identity"
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="credentials_revoked_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="user",
            name="deletion_requested_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="user",
            name="deletion_error",
            field=models.TextField(blank=True, default="", editable=False),
        ),
    ]
