"""The periodic completeness check (every 5 minutes) and the storage scan (nightly)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task


@db_periodic_task(crontab(minute="*/5"))
@lock_task("completeness-check")
def check_recordings_task() -> None:
    from callvault.apps.completeness.services import run_check

    run_check()


@db_periodic_task(crontab(hour="2", minute="41"))
@lock_task("completeness-scan")
def scan_storage_task() -> None:
    from callvault.apps.completeness.services import run_check

    run_check(scan=True)
