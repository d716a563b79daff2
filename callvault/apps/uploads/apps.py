from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "callvault.apps.uploads"
    label = "uploads"
    verbose_name = "アップロード"
