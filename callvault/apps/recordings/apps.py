from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "callvault.apps.recordings"
    label = "recordings"
    verbose_name = "録音"

    def ready(self) -> None:
        from callvault.apps.recordings.playback import warm_cache
        from callvault.apps.recordings.signals import recording_ready

        # Compute the waveform as soon as a recording is ready, so the call page opens instantly.
        recording_ready.connect(
            lambda sender, call, **kw: warm_cache(call), weak=False, dispatch_uid="callvault.warm_peaks"
        )
