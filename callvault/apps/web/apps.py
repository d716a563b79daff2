from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "callvault.apps.web"
    label = "web"
    verbose_name = "Web"
