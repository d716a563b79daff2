"""Background housekeeping of uploads: expire unfinished tus uploads, remove orphan files."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

log = logging.getLogger("callvault.uploads")


@db_periodic_task(crontab(minute="*/10"))
def sweep_uploads_task() -> None:
    sweep_uploads()


def sweep_uploads() -> tuple[int, int]:
    """(expired uploads, orphan files removed). Safe to run any time, in any process."""
    from callvault.apps.uploads.services import reconcile_pending
    from callvault.apps.uploads.tus import expire_uploads

    orphans = reconcile_pending()
    expired = expire_uploads()
    if expired or orphans:
        log.info("uploads sweep: %d expired, %d orphan file(s) removed", expired, orphans)
    return expired, orphans
