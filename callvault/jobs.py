"""The job worker: one task API (huey), embedded SQLite queue or Redis.

Tasks take ids, not objects, and are idempotent: each claims its work with a
conditional update, so a task delivered twice or retried after a crash does no
harm. A periodic sweep re-queues work that a crash left behind.
"""

from __future__ import annotations

import logging

log = logging.getLogger("callvault.jobs")


def run_worker() -> int:
    from django.conf import settings
    from django.utils.module_loading import autodiscover_modules
    from huey.contrib.djhuey import HUEY

    from callvault.apps.recordings import tasks

    autodiscover_modules("tasks")  # every app's tasks, so the worker can run them all
    tasks.sweep_pending()  # anything left behind by a previous crash
    from callvault.apps.webhooks.tasks import sweep as sweep_webhooks

    sweep_webhooks()
    options = dict(settings.HUEY.get("consumer", {}))
    consumer = HUEY.create_consumer(**options)
    log.info("worker started (%s queue, %s workers)", settings.JOBS_BACKEND, options.get("workers"))
    consumer.run()
    return 0
