"""An append-only audit trail whose entries are chained by hashes.

Every entry stores the SHA-256 of its own content together with the previous
entry's hash, and a one-row head keeps the hash of the newest entry. Editing,
removing or reordering entries, or cutting off the newest ones, breaks the chain
and is reported by :func:`verify_chain` (``callvault audit verify``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

GENESIS = "0" * 64


class Action(models.TextChoices):
    LOGIN = "login", _("ログイン")
    LOGIN_FAILED = "login_failed", _("ログイン失敗")
    LOGOUT = "logout", _("ログアウト")
    PLAYBACK = "playback", _("再生")
    DOWNLOAD = "download", _("ダウンロード")
    EXPORT = "export", _("エクスポート")
    SHARE = "share", _("共有")
    ROLE_CHANGE = "role_change", _("権限変更")
    DELETE = "delete", _("削除")
    COMMENT = "comment", _("コメント")
    TAG = "tag", _("タグ")
    TOKEN = "token", _("APIトークン")
    SETTINGS = "settings", _("設定変更")
    VIEW = "view", _("閲覧")
    UPLOAD = "upload", _("アップロード")


class AuditError(Exception):
    pass


class AuditEntry(models.Model):
    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=32, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("監査ログ")
        verbose_name_plural = _("監査ログ")

    def content(self) -> bytes:
        """The canonical bytes the hash covers (everything but the hash itself)."""
        data = {
            "id": self.pk,
            "at": self.at.isoformat(),
            "user_id": self.user_id,
            "username": self.username,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "ip": self.ip,
            "detail": self.detail,
            "prev": self.prev_hash,
        }
        return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.content()).hexdigest()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and AuditEntry.objects.filter(pk=self.pk).exists():
            raise AuditError("audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditError("audit entries cannot be deleted")


class AuditHead(models.Model):
    """One row: the hash of the newest entry, and the lock that serialises appends."""

    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS)


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings that differ, as ``{name: {"from": old, "to": new}}`` for an audit detail."""
    return {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}


def record(
    action: str,
    *,
    user: Any = None,
    obj: Any = None,
    object_type: str = "",
    object_id: str = "",
    ip: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Append one entry to the chain (in its own transaction, or the caller's)."""
    from django.utils import timezone

    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or str(obj.pk)
    username = ""
    if user is not None and getattr(user, "is_authenticated", False):
        username = user.get_username()
    else:
        username = str(detail.pop("username", "") or "")
        user = None
    with transaction.atomic():
        head, _created = AuditHead.objects.select_for_update().get_or_create(pk=1)
        entry = AuditEntry(
            at=timezone.now(),
            user=user,
            username=username[:150],
            action=action,
            object_type=object_type[:32],
            object_id=str(object_id)[:64],
            ip=ip,
            detail=detail,
            prev_hash=head.last_hash,
            hash=f"pending-{head.last_id + 1}-{id(detail)}",
        )
        super(AuditEntry, entry).save()  # the id is part of the hashed content
        entry.hash = entry.compute_hash()
        AuditEntry.objects.filter(pk=entry.pk).update(hash=entry.hash)
        head.last_id = entry.pk
        head.last_hash = entry.hash
        head.save()
    return entry


@dataclass
class ChainReport:
    entries: int
    ok: bool
    problems: list[str]


def verify_chain() -> ChainReport:
    """Recompute every hash and link; report each break with the entry id."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    last_id = 0
    for entry in AuditEntry.objects.order_by("id").iterator(chunk_size=2000):
        count += 1
        if entry.prev_hash != prev:
            problems.append(
                f"entry {entry.pk}: previous-hash link broken (an entry before it was removed or changed)"
            )
        if entry.compute_hash() != entry.hash:
            problems.append(f"entry {entry.pk}: content does not match its hash (the entry was edited)")
        prev = entry.hash
        last_id = entry.pk
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.last_hash != prev or head.last_id != last_id):
        problems.append(
            f"the newest entries after id {last_id} are missing (head expects entry {head.last_id})"
        )
    if head is None and count:
        problems.append("the chain head is missing")
    return ChainReport(entries=count, ok=not problems, problems=problems)
