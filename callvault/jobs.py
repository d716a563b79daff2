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
    from callvault.apps.uploads.tasks import sweep_uploads

    sweep_uploads()  # orphan files of uploads that died before their commit, expired staging
    options = dict(settings.HUEY.get("consumer", {}))
    # Worker processes are forked: they must not share the database connections opened above.
    from django.db import connections

    connections.close_all()
    if settings.PRE_ENCODE:
        _start_preencoder()
    HUEY.on_startup()(_die_with_the_consumer)
    consumer = HUEY.create_consumer(**options)
    log.info(
        "worker started (%s queue, %s %s workers)",
        settings.JOBS_BACKEND,
        options.get("workers"),
        options.get("worker_type"),
    )
    consumer.run()
    return 0


def _die_with_the_consumer() -> None:
    """In a forked worker process: exit when the consumer process dies, even by SIGKILL.

    Otherwise orphaned workers would go on taking jobs nobody supervises.
    """
    import multiprocessing
    import os
    import signal

    if multiprocessing.current_process().name == "MainProcess":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: nothing to do
        return
    parent = multiprocessing.parent_process()
    # the consumer died before we asked: we were re-parented (to init or to a subreaper)
    if os.getppid() == 1 or (parent is not None and os.getppid() != parent.pid):
        os._exit(1)


def _start_preencoder() -> None:
    """Fork the pre-encoders (they follow active calls, see recordings/preencode.py).

    One process per job worker, each following its share of the calls. Forked before the
    consumer starts any thread. They die with this process; if one dies alone, finalize
    jobs simply do its calls' work in one go (its spool locks are released).
    """
    import multiprocessing

    from django.conf import settings

    shards = settings.JOB_WORKERS

    def main(shard: int) -> None:
        _die_with_the_consumer()
        from callvault.apps.recordings.preencode import run_preencoder

        run_preencoder(shard=shard, shards=shards)

    context = multiprocessing.get_context("fork")
    for shard in range(shards):
        process = context.Process(target=main, args=(shard,), name=f"preencoder-{shard}", daemon=True)
        process.start()
