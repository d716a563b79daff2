"""Files in recording storage that no recording row claims (the per-call results live on Call)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Reason(models.TextChoices):
    MISSING = "missing", _("録音なし")
    FILE_MISSING = "file_missing", _("ファイル消失")
    EMPTY = "empty", _("録音が空")
    SHORT = "short", _("録音が短い")
    ONE_SIDED = "one_sided", _("片側のみ")


class OrphanFile(models.Model):
    """A file under the recordings directory without a ``Recording`` row: a bug to look at."""

    storage_key = models.CharField(max_length=512, unique=True)
    bytes = models.BigIntegerField(default=0)
    found_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["storage_key"]
