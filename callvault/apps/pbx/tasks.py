"""Periodic jobs of PBX integrations: the event log is kept for 30 days."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

KEEP_EVENTS = timedelta(days=30)


def prune_events() -> int:
    from callvault.apps.pbx.models import PbxEvent

    deleted, _ = PbxEvent.objects.filter(received_at__lt=timezone.now() - KEEP_EVENTS).delete()
    return int(deleted)


@db_periodic_task(crontab(hour="4", minute="11"))
def prune_events_task() -> None:
    prune_events()
