from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "callvault.apps.ops"
    label = "ops"
    verbose_name = "Operations"
