from django.apps import AppConfig


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"

    def ready(self) -> None:
        # Imported here, where Django has loaded every app's models, as Django's docs advise.
        from core import dbos, doctor, health
        from core.accounts import account_deactivated
        from librechat import readiness
        from users import agent_keys, checks, signals, workflows  # noqa: F401  (checks, receivers)

        # The durable workflows this app owns, for core.dbos to start by name.
        dbos.register_workflows(workflows.BY_NAME)
        # LibreChat, which holds the accounts this app provisions: its /readyz, and the doctor's
        # checks of LibreChat itself, of the admin account this app sets up and of the USER role
        # the agent API keys need (read during the admin's log-in).
        health.register_check("librechat", readiness.check_librechat)
        doctor.register("librechat.doctor.librechat_checks", order=10)
        doctor.register("librechat.doctor_releases.release_checks", order=15)
        doctor.register("users.doctor.operator_admin_checks", order=40)
        doctor.register("users.doctor_remote_agents.remote_agents_checks", order=45)
        doctor.register("librechat.doctor.clock_checks", order=70)
        # The user's LibreChat agent API key is deleted in LibreChat with the account's end.
        account_deactivated.connect(
            agent_keys.on_account_deactivated, dispatch_uid="users.agent_key"
        )
