"""Django's HTTP stack under ASGI, run the way a threaded WSGI server runs it.

Every callvault view is synchronous. Django's own ASGI handler then costs, per request:

- a thread switch for each process_request/process_response of every middleware that is not
  async-native (``MiddlewareMixin`` calls them through ``sync_to_async``) and one for the view:
  about 15 switches for callvault's stack;
- a new thread per request (``ThreadSensitiveContext``), hence a new database connection per
  request: ``CONN_MAX_AGE`` does nothing under ASGI. On PostgreSQL that is a connect, a
  forked backend and cold catalog caches for every page.

:class:`PooledSyncASGIHandler` loads the middleware synchronously and runs the whole stack
(middleware and view) in one hop to a small pool of long-lived threads. Each of those threads
keeps its database connection, checked before and after each request exactly as Django does
under WSGI (``close_old_connections``: ``CONN_MAX_AGE``, ``CONN_HEALTH_CHECKS``, broken
connections). Requests still run concurrently (up to the pool size; SQLite and psycopg release
the GIL while the database works). Streaming responses with async iterators (CSV export,
playback) are sent by Django's ASGI code as before.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections, connections
from django.http import HttpRequest, HttpResponseBase

from callvault.config import env_int

DEFAULT_THREADS = 8


class PooledSyncASGIHandler(ASGIHandler):
    def __init__(self, threads: int | None = None) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        size = threads or env_int("CALLVAULT_WEB_THREADS", DEFAULT_THREADS, minimum=1, maximum=256)
        self.threads = size
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="callvault-http")

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        run = sync_to_async(self._respond, thread_sensitive=False, executor=self.executor)
        response: HttpResponseBase = await run(request)
        return response

    def _respond(self, request: HttpRequest) -> HttpResponseBase:
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()

    def close(self) -> None:
        """Close every pool thread's database connections and stop the threads."""
        barrier = threading.Barrier(self.threads)

        def close_here() -> None:
            connections.close_all()
            barrier.wait(timeout=10)  # so that each thread runs exactly one of these

        for future in [self.executor.submit(close_here) for _ in range(self.threads)]:
            future.result()
        self.executor.shutdown()


def get_asgi_application(threads: int | None = None) -> Any:
    """Like ``django.core.asgi.get_asgi_application`` with :class:`PooledSyncASGIHandler`."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")
    django.setup(set_prefix=False)
    return PooledSyncASGIHandler(threads)
