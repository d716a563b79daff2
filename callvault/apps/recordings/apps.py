from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "callvault.apps.recordings"
    label = "recordings"
    verbose_name = "録音"
