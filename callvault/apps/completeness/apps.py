from django.apps import AppConfig


class CompletenessConfig(AppConfig):
    name = "callvault.apps.completeness"
    label = "completeness"
    verbose_name = "録音の欠落チェック"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from callvault.apps.completeness import tasks  # noqa: F401  (the periodic check)
