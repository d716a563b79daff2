from django.apps import AppConfig


class PbxConfig(AppConfig):
    name = "callvault.apps.pbx"
    label = "pbx"
    verbose_name = "PBX連携"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from callvault.apps.calls.models import Call
        from callvault.apps.pbx import link
        from callvault.apps.recordings.signals import recording_ready

        # A recorded call (SIPREC, capture, upload) that appears after the PBX told us about the
        # call is merged into it as soon as it is created, and again when its recording is ready.
        post_save.connect(link.on_call_saved, sender=Call, dispatch_uid="callvault.pbx.link_on_save")
        recording_ready.connect(link.on_recording_ready, dispatch_uid="callvault.pbx.link_on_ready")
        from callvault.apps.pbx import tasks  # noqa: F401  (periodic pruning of the event log)
