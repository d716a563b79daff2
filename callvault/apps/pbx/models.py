"""PBX integrations and the call events they send (``POST /api/v1/events``).

- ``Integration``: one PBX (or phone fleet) allowed to send events, with its secret and how it
  authenticates: an HMAC-SHA256 signature (recommended) or, for PBXs and phones that cannot sign
  (3CX, Yealink action URLs, Asterisk dialplan ``CURL()``), the secret itself as a token.
- ``PbxCall``: the PBX's call id within one integration → our ``Call``. Events of one PBX call
  always land on the same row, whatever order they arrive in; after linking with a recording the
  row points at the recorded call (see :mod:`callvault.apps.pbx.link`).
- ``PbxEvent``: every accepted event (the log on the integration page) and the replay store:
  ``(integration, dedupe_key)`` is unique, so an event sent twice is applied once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

SECRET_PREFIX = "pbxsec_"  # noqa: S105  (the public prefix of generated secrets)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key() -> str:
    return "pbx_" + secrets.token_hex(6)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AuthMode(models.TextChoices):
    SIGNATURE = "signature", _("署名 (HMAC-SHA256、推奨)")
    TOKEN = "token", _("トークン (署名できない PBX・電話機用)")


class Integration(models.Model):
    name = models.CharField(_("名前"), max_length=100)
    key = models.CharField(max_length=32, unique=True, default=new_key, editable=False)
    # Kept in clear to verify signatures; shown once when created or re-issued, never again.
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    auth_mode = models.CharField(
        _("認証方式"), max_length=16, choices=AuthMode.choices, default=AuthMode.SIGNATURE
    )
    team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("既定のチーム"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("回線の設定で担当が決まらない通話をこのチームに割り当てます。"),
    )
    enabled = models.BooleanField(_("有効"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    rejected_count = models.PositiveIntegerField(default=0)
    last_rejected_at = models.DateTimeField(null=True, blank=True)
    last_rejected_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("PBX連携")
        verbose_name_plural = _("PBX連携")

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        self.secret_hash = hash_secret(self.secret)
        super().save(*args, **kwargs)

    @property
    def secret_hint(self) -> str:
        return self.secret[: len(SECRET_PREFIX) + 4] + "…"


class PbxCall(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="calls")
    pbx_call_id = models.CharField(max_length=255)
    call = models.ForeignKey("calls.Call", on_delete=models.CASCADE, related_name="pbx_links")
    extension = models.CharField(max_length=32, blank=True, default="")
    sip_call_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    ringing_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    not_answered = models.BooleanField(default=False, help_text="the PBX said the call was never answered")
    end_reason = models.CharField(max_length=64, blank=True, default="")
    linked_at = models.DateTimeField(null=True, blank=True, help_text="merged with a recorded call")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "pbx_call_id"], name="pbxcall_integration_id_uniq")
        ]

    @property
    def started_at(self) -> datetime | None:
        times = [t for t in (self.ringing_at, self.answered_at, self.ended_at) if t is not None]
        return min(times) if times else None


class PbxEvent(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="events")
    dedupe_key = models.CharField(max_length=128)
    kind = models.CharField(max_length=16)
    pbx_call_id = models.CharField(max_length=255, blank=True, default="")
    event_time = models.DateTimeField()
    received_at = models.DateTimeField(db_index=True)
    # Deleting a call (retention, a privacy request) deletes the events that named its numbers too.
    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    auth = models.CharField(max_length=16, help_text="signature, header token or url token")
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "dedupe_key"], name="pbxevent_dedupe_uniq")
        ]
