"""The job queue as /metrics and /readyz see it: reachable, and how many jobs wait in it.

Redis is asked through a client of our own with short timeouts (huey's pool has
none, and a health check must not hang on a blackholed host); the embedded
SQLite queue through huey's storage.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings

TIMEOUT = 2.0


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)


def backend() -> str:
    return str(settings.JOBS_BACKEND)


def queue_key() -> str:
    """The Redis list huey pushes jobs onto (``huey.redis.<queue name>``)."""
    import re

    from huey.contrib.djhuey import HUEY

    key = getattr(HUEY.storage, "queue_key", None)
    if isinstance(key, str) and key.startswith("huey.redis."):
        return key
    return "huey.redis." + re.sub("[^A-Za-z0-9_]", "", str(settings.HUEY.get("name", "huey")))


def ping() -> None:
    """Raise if the queue cannot be reached."""
    if backend() == "redis":
        _redis(settings.REDIS_URL).ping()
        return
    queue_length()


def queue_length() -> int:
    """Jobs waiting in the queue (not yet taken by a worker)."""
    if backend() == "redis":
        return int(_redis(settings.REDIS_URL).llen(queue_key()))
    from huey.contrib.djhuey import HUEY

    return int(HUEY.pending_count())


def redact(text: str) -> str:
    """Remove passwords of the configured URLs from an error message."""
    from urllib.parse import unquote, urlparse

    for url in (getattr(settings, "REDIS_URL", ""), getattr(settings, "DATABASE_URL", "")):
        if not url:
            continue
        password = urlparse(url).password
        if password:
            text = text.replace(password, "***").replace(unquote(password), "***")
    return text
