"""Background tasks of the recordings app."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

log = logging.getLogger("callvault.jobs")


@db_task(retries=3, retry_delay=5)
def finalize_call_task(call_id: str) -> None:
    from callvault.apps.recordings.finalize import finalize_call

    finalize_call(call_id)


def enqueue_finalize(call_id: str) -> None:
    finalize_call_task(str(call_id))


@db_periodic_task(crontab(minute="*"))
def sweep_pending_task() -> None:
    sweep_pending()


@db_periodic_task(crontab(hour="3", minute="17"))
def prune_playback_cache_task() -> None:
    """Keep the transcode/waveform cache under 2 GiB (it can always be rebuilt)."""
    from callvault.apps.recordings.playback import prune_cache

    prune_cache(2 * 1024**3)


def sweep_pending() -> int:
    """Queue every call whose recording still waits for processing (after a crash, lost job...)."""
    from callvault.apps.recordings.finalize import calls_needing_finalize, release_dead_claims

    release_dead_claims()
    ids = calls_needing_finalize()
    for call_id in ids:
        enqueue_finalize(call_id)
    if ids:
        log.info("sweep: queued %d call(s) for finalize", len(ids))
    return len(ids)
