"""Background jobs of the webhooks app (huey; discovered by djhuey in the worker).

The jobs only nudge: the ``Delivery`` rows say what is due, so a lost or duplicated job is
harmless (a delivery is claimed before each attempt) and the sweep catches up after a restart.
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

log = logging.getLogger("callvault.webhooks")


@db_task()
def deliver_task(delivery_id: str) -> None:
    from callvault.apps.webhooks.services import deliver

    deliver(delivery_id, schedule=schedule_retry)


def enqueue(delivery_id: str) -> None:
    deliver_task(delivery_id)


def schedule_retry(delivery_id: str, delay: int) -> None:
    deliver_task.schedule((delivery_id,), delay=delay)


@db_periodic_task(crontab(minute="*"))
def sweep_deliveries_task() -> None:
    sweep()


def sweep() -> int:
    """Queue every delivery that is due (after a restart, a lost job, a resend)."""
    from callvault.apps.webhooks.services import due_ids

    ids = due_ids()
    for delivery_id in ids:
        enqueue(delivery_id)
    if ids:
        log.info("webhooks sweep: queued %d due delivery(ies)", len(ids))
    return len(ids)
