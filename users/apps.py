from django.apps import AppConfig


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"

    def ready(self) -> None:
        from users import agent_keys, checks, signals  # noqa: F401  (registers checks, receivers)
        from users.lifecycle import account_deactivated

        # The user's LibreChat agent API key is deleted in LibreChat with the account's end.
        account_deactivated.connect(
            agent_keys.on_account_deactivated, dispatch_uid="users.agent_key"
        )
