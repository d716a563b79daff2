from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "callvault.apps.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from callvault.apps.recordings.signals import recording_ready
        from callvault.apps.webhooks.services import on_recording_ready

        recording_ready.connect(on_recording_ready, dispatch_uid="callvault.webhooks.recording_ready")
        # Register the delivery job and the periodic sweep with huey in every process, so that
        # `callvault worker` (which does not autodiscover task modules) runs them from its start.
        from callvault.apps.webhooks import tasks  # noqa: F401
