from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        from chat import sessions
        from users.lifecycle import account_deactivated, account_erased

        # The LibreChat session this app keeps for a user ends with the account.
        account_deactivated.connect(sessions.on_account_deactivated, dispatch_uid="chat.session")
        account_erased.connect(sessions.on_account_erased, dispatch_uid="chat.session")
