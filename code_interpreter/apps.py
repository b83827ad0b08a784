from django.apps import AppConfig


class CodeInterpreterConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "code_interpreter"
    verbose_name = "Code interpreter"

    def ready(self) -> None:
        from code_interpreter import checks  # noqa: F401  (registers the system checks)
        from code_interpreter.services import on_account_erased
        from users.lifecycle import account_erased

        # A deleted account's sessions and files go with it.
        account_erased.connect(on_account_erased, dispatch_uid="code_interpreter.sessions")
