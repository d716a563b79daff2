"""Webhooks: where to POST call events, and the log of every delivery and attempt.

The ``Delivery`` row is the source of truth for sending: a delivery is ``pending`` until a
2xx answer (``succeeded``) or until its retries run out (``failed``); ``next_attempt_at`` says
when it is due. Queued jobs only nudge; a periodic sweep sends whatever is due, so a worker
restart loses nothing.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

SECRET_PREFIX = "whsec_"  # noqa: S105  (the public prefix of generated secrets)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class Event(models.TextChoices):
    CALL_COMPLETED = "call.completed", _("録音の完成 (call.completed)")


PING = "ping"


class Webhook(models.Model):
    name = models.CharField(_("名前"), max_length=100)
    url = models.URLField(_("送信先 URL"), max_length=500)
    # Kept to sign every delivery; shown once when created or re-issued, never again.
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    events = models.JSONField(_("イベント"), default=list)
    team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("チーム"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text=_("指定すると、そのチームの通話だけを送ります。"),
    )
    active = models.BooleanField(_("有効"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("Webhook")
        verbose_name_plural = _("Webhook")

    def __str__(self) -> str:
        return self.name

    @property
    def display_url(self) -> str:
        """The URL without its query string, which may carry the receiver's own token."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" + (
            "?…" if parts.query else ""
        )

    @property
    def secret_hint(self) -> str:
        """Enough to tell secrets apart, far too little to use one."""
        return self.secret[: len(SECRET_PREFIX) + 4] + "…"

    def wants(self, event: str, team_id: int | None) -> bool:
        return (
            self.active and event in (self.events or []) and (self.team_id is None or self.team_id == team_id)
        )


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("送信待ち")
    SUCCEEDED = "succeeded", _("成功")
    FAILED = "failed", _("失敗")


class Delivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=50)
    # Deleting a call (retention, privacy request) also deletes the copies of it sent here.
    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker sending this delivery holds it until then (a crashed worker's claim expires).
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "event", "call"],
                condition=Q(call__isnull=False),
                name="delivery_once_per_call_event",
            )
        ]
        verbose_name = _("配信")
        verbose_name_plural = _("配信")


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]

    @property
    def ok(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300
