from django.apps import AppConfig


class CompletenessConfig(AppConfig):
    name = "callvault.apps.completeness"
    label = "completeness"
    verbose_name = "録音の欠落チェック"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from callvault.apps.completeness import tasks  # noqa: F401  (the periodic check)
        from callvault.apps.recordings.signals import recording_ready

        recording_ready.connect(_recheck, dispatch_uid="callvault.completeness.recheck_on_ready")


def _recheck(sender: object, call: object, **kwargs: object) -> None:
    """A recording that becomes ready (a retry, a late worker) clears a flag the check had set."""
    from callvault.apps.calls.models import Call
    from callvault.apps.completeness.services import run_check

    pk = getattr(call, "pk", None)
    if pk is not None and Call.objects.filter(pk=pk).exclude(completeness="").exists():
        try:
            run_check(call_ids=[pk])
        except Exception:  # the check must never break finalizing
            import logging

            logging.getLogger("callvault.completeness").exception("x re-check of call %s failed", pk)
