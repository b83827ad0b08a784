from django.apps import AppConfig


class CodeInterpreterConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "code_interpreter"
    verbose_name = "Code interpreter"

    def ready(self) -> None:
        # Imported here, where Django has loaded every app's models, as Django's docs advise.
        from code_interpreter import checks, readiness  # noqa: F401  (checks: registers them)
        from code_interpreter.cleanup import on_account_erased
        from core import doctor, health
        from core.accounts import account_erased

        # A deleted account's sessions and files go with it.
        account_erased.connect(on_account_erased, dispatch_uid="code_interpreter.sessions")
        health.register_check("sandbox", readiness.check_sandbox)
        health.register_startup_report(readiness.log_sandbox_status)
        doctor.register("code_interpreter.doctor.code_api_checks", order=80)
