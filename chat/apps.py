from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        # Imported here, where Django has loaded every app's models, as Django's docs advise.
        from chat import sessions
        from core import doctor
        from core.accounts import account_deactivated, account_erased

        # The LibreChat session this app keeps for a user ends with the account.
        account_deactivated.connect(sessions.on_account_deactivated, dispatch_uid="chat.session")
        account_erased.connect(sessions.on_account_erased, dispatch_uid="chat.session")
        doctor.register("chat.doctor.chat_checks", order=50)
