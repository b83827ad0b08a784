# The operator's LibreChat admin account (users/librechat_admin.py, manage.py librechat_bootstrap).

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="LibreChatAdmin",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(
                        default=1, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("email", models.EmailField(max_length=254, verbose_name="e-mail address")),
                ("name", models.CharField(max_length=80)),
                ("password_encrypted", models.TextField(editable=False)),
                ("librechat_user_id", models.CharField(blank=True, default="", max_length=64)),
                ("role", models.CharField(blank=True, default="", max_length=32)),
                ("verified_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "LibreChat operator admin",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("id", 1)), name="users_librechatadmin_one_row"
                    )
                ],
            },
        ),
    ]
