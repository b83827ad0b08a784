from django.apps import AppConfig


class CodeInterpreterConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "code_interpreter"
    verbose_name = "Code interpreter"

    def ready(self) -> None:
        from code_interpreter import checks  # noqa: F401  (registers the system checks)
