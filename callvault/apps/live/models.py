"""Short-lived state shared by every process of one installation, kept in the database.

- :class:`LiveEvent`: call events written by the recorder and the worker, tailed by each web
  process on the embedded default (no Redis) and forwarded to WebSocket clients.
  Rows are trimmed after :data:`LIVE_EVENT_TTL`.
- :class:`LoginThrottle`: failed-login counters per user name and per client address, so that
  password guessing is refused by every web process alike.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models

LIVE_EVENT_TTL = timedelta(minutes=10)


class LiveEvent(models.Model):
    kind = models.CharField(max_length=32)
    call_id = models.UUIDField()
    team_id = models.BigIntegerField(null=True, blank=True)
    agent_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.call_id}"


class LoginThrottle(models.Model):
    """Failures of one key (``user:<name>`` or ``ip:<address>``) within the current window."""

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures}"
