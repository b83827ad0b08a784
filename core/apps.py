from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    # The label the project's own model (WorkflowExecutor) and its migrations were created under.
    label = "hestami_ai"
    verbose_name = "Hestami AI"
