from django.apps import AppConfig


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"

    def ready(self) -> None:
        # Imported here, where Django has loaded every app's models, as Django's docs advise.
        from core import dbos, doctor, health
        from librechat import readiness
        from users import checks, signals, workflows  # noqa: F401  (registers checks, receivers)

        # The durable workflows this app owns, for core.dbos to start by name.
        dbos.register_workflows(workflows.BY_NAME)
        # LibreChat, which holds the accounts this app provisions: its /readyz, and the doctor's
        # checks of LibreChat itself and of the admin account this app sets up.
        health.register_check("librechat", readiness.check_librechat)
        doctor.register("librechat.doctor.librechat_checks", order=10)
        doctor.register("users.doctor.operator_admin_checks", order=40)
        doctor.register("librechat.doctor.clock_checks", order=70)
