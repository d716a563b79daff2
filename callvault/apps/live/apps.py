from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "callvault.apps.live"
    label = "live"
    verbose_name = "Live events"
    default_auto_field = "django.db.models.BigAutoField"
