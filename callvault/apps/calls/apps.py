from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "callvault.apps.calls"
    label = "calls"
    verbose_name = "通話"
