"""Recording devices (phone apps, recorder boxes), resumable uploads and where each call came from.

- ``Device``: something that uploads recordings with its own bearer token (``cvd_...``); only
  the token's SHA-256 is stored, as for API tokens. It belongs to a team, and may be tied to a
  user (a smartphone) or a line (a recorder box on one number).
- ``Upload``: a resumable (tus) upload in progress: its bytes live in the staging area
  (``DATA_DIR/uploads/staging/<id>.part``) and never show up as a call until complete and valid.
- ``UploadedFile``: the origin of a call made from a file (upload or folder import): the SHA-256
  of the original bytes (unique: the same file twice makes one call) and the client's upload id.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from callvault.apps.accounts.models import hash_token


class Device(models.Model):
    PREFIX = "cvd_"

    name = models.CharField(_("端末名"), max_length=100)
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.PROTECT, related_name="devices", verbose_name=_("チーム")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="devices",
        verbose_name=_("担当者"),
    )
    line = models.ForeignKey(
        "accounts.Line",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="devices",
        verbose_name=_("回線"),
    )
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("録音端末")
        verbose_name_plural = _("録音端末")

    def __str__(self) -> str:
        return self.name

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def new_token() -> str:
        return Device.PREFIX + secrets.token_urlsafe(32)

    @classmethod
    def create_with_token(cls, **fields: Any) -> tuple[Device, str]:
        """Create a device; the clear-text token is returned once and never stored."""
        token = cls.new_token()
        device = cls.objects.create(token_hash=hash_token(token), prefix=token[:10], **fields)
        return device, token


class UploadState(models.TextChoices):
    RECEIVING = "receiving", _("受信中")
    COMPLETE = "complete", _("完了")
    FAILED = "failed", _("失敗")
    CANCELLED = "cancelled", _("中止")
    EXPIRED = "expired", _("期限切れ")


class Upload(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    client_upload_id = models.CharField(max_length=100, blank=True, default="")
    state = models.CharField(max_length=16, choices=UploadState.choices, default=UploadState.RECEIVING)
    error = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=40, blank=True, default="")
    call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]


class UploadedFile(models.Model):
    call = models.OneToOneField("calls.Call", on_delete=models.CASCADE, related_name="uploaded_file")
    sha256 = models.CharField(max_length=64, unique=True)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scope = models.CharField(max_length=40, help_text="device:<id>, user:<id> or import")
    client_upload_id = models.CharField(max_length=100, blank=True, default="")
    original_name = models.CharField(max_length=255, blank=True, default="")
    via = models.CharField(max_length=16, help_text="api, tus or import")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "client_upload_id"],
                condition=~Q(client_upload_id=""),
                name="uploadedfile_scope_client_id_uniq",
            )
        ]
