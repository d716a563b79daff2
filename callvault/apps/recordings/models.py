"""Recordings: the stored, hashed audio of a call."""

from __future__ import annotations

from django.db import models

from callvault.apps.calls.models import Call


class Recording(models.Model):
    call = models.OneToOneField(Call, on_delete=models.PROTECT, related_name="recording")
    storage_key = models.CharField(max_length=512, unique=True)
    format = models.CharField(max_length=16)
    codec = models.CharField(max_length=32)
    channels = models.PositiveSmallIntegerField()
    sample_rate = models.PositiveIntegerField()
    bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    duration = models.FloatField()
    channel_map = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"left": "caller", "right": "callee"}'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.storage_key} ({self.duration:.1f}s)"
