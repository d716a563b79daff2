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
    _children_die_with_their_parent()
    if settings.PRE_ENCODE:
        _start_preencoder()
    consumer = HUEY.create_consumer(**options)
    log.info(
        "worker started (%s queue, %s %s workers)",
        settings.JOBS_BACKEND,
        options.get("workers"),
        options.get("worker_type"),
    )
    consumer.run()
    return 0


def _children_die_with_their_parent() -> None:
    """Every process this worker forks from now on exits when its parent dies, even by SIGKILL.

    Huey's job workers and its periodic scheduler, and the pre-encoders, are forked processes.
    Orphaned, they would go on taking jobs nobody supervises, or (the scheduler) queue the
    periodic sweeps again every minute for ever, beside the worker that replaced them. Linux's
    parent-death signal does it for every fork (``os.register_at_fork``); a parent that died
    between the fork and the ``prctl`` is caught by comparing the parent's pid.
    """
    import os
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # not Linux: nothing to do
        return
    if not hasattr(libc, "prctl"):
        return
    forker = [0]

    def before() -> None:
        forker[0] = os.getpid()

    def in_child() -> None:
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != forker[0]:  # re-parented already (to init or a subreaper)
            os._exit(1)

    os.register_at_fork(before=before, after_in_child=in_child)


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
        from callvault.apps.recordings.preencode import run_preencoder

        run_preencoder(shard=shard, shards=shards)

    context = multiprocessing.get_context("fork")
    for shard in range(shards):
        process = context.Process(target=main, args=(shard,), name=f"preencoder-{shard}", daemon=True)
        process.start()
