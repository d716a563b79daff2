"""Calls, their participants, media streams and DTMF events."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Direction(models.TextChoices):
    INBOUND = "in", _("着信")
    OUTBOUND = "out", _("発信")
    INTERNAL = "internal", _("内線")
    UNKNOWN = "unknown", _("不明")


class CallState(models.TextChoices):
    RINGING = "ringing", _("呼出中")
    ACTIVE = "active", _("通話中")
    COMPLETED = "completed", _("終了")
    CANCELLED = "cancelled", _("不在着信")
    INTERRUPTED = "interrupted", _("中断")
    FAILED = "failed", _("失敗")


class RecordingState(models.TextChoices):
    NONE = "none", _("録音なし")
    RECORDING = "recording", _("録音中")
    PENDING = "pending", _("処理待ち")
    PROCESSING = "processing", _("処理中")
    READY = "ready", _("録音あり")
    FAILED = "failed", _("処理失敗")


class Source(models.TextChoices):
    SIPREC = "siprec", "SIPREC"
    CAPTURE = "capture", _("パケットキャプチャ")
    UPLOAD = "upload", _("アップロード")
    PBX = "pbx", _("PBX連携")
    GATEWAY = "gateway", _("録音ゲートウェイ")


class Call(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SIPREC)
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.UNKNOWN)
    state = models.CharField(
        max_length=16, choices=CallState.choices, default=CallState.RINGING, db_index=True
    )
    recording_state = models.CharField(
        max_length=16, choices=RecordingState.choices, default=RecordingState.RECORDING, db_index=True
    )
    recording_error = models.TextField(blank=True, default="")
    finalize_attempts = models.PositiveIntegerField(default=0)
    finalize_owner = models.CharField(
        max_length=128, blank=True, default="", help_text="host:pid of the claiming worker"
    )

    started_at = models.DateTimeField(db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="seconds from answer (or start) to end")
    end_reason = models.CharField(max_length=32, blank=True, default="")

    sip_call_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    siprec_session_id = models.CharField(max_length=255, blank=True, default="")
    spool_key = models.CharField(max_length=64, unique=True, null=True, blank=True)

    caller_number = models.CharField(max_length=32, blank=True, default="", db_index=True)
    caller_name = models.CharField(max_length=255, blank=True, default="")
    callee_number = models.CharField(max_length=32, blank=True, default="", db_index=True)
    callee_name = models.CharField(max_length=255, blank=True, default="")

    packets_received = models.BigIntegerField(default=0)
    packets_lost = models.BigIntegerField(default=0)
    packets_late = models.BigIntegerField(default=0)
    packets_dropped = models.BigIntegerField(default=0)
    packets_capture_lost = models.BigIntegerField(
        default=0, help_text="gaps the capture missed (not network loss; passive capture only)"
    )

    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )

    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The recording completeness check (callvault.apps.completeness): "" not checked yet,
    # "ok", or "flagged" with the reasons [{"code": "short", "detail": {...}}, ...].
    completeness = models.CharField(max_length=16, blank=True, default="", db_index=True)
    completeness_reasons = models.JSONField(default=list, blank=True)
    completeness_codes = models.CharField(
        max_length=100, blank=True, default="", help_text=",short,one_sided,"
    )
    completeness_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="call_list_idx"),
            # what team members and agents see, newest first (keyset pagination)
            models.Index(fields=["team", "-started_at", "-id"], name="call_team_list_idx"),
            models.Index(fields=["agent", "-started_at", "-id"], name="call_agent_list_idx"),
            # the newest call with a number (customer カルテ, caller card): no sort, first visible row
            models.Index(fields=["caller_number", "-started_at"], name="call_caller_recent_idx"),
            models.Index(fields=["callee_number", "-started_at"], name="call_callee_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.caller_number or '?'} → {self.callee_number or '?'} ({self.started_at:%Y/%m/%d %H:%M})"

    @property
    def loss_ratio(self) -> float:
        expected = self.packets_received + self.packets_lost
        return self.packets_lost / expected if expected else 0.0


class Role(models.TextChoices):
    CALLER = "caller", _("発信者")
    CALLEE = "callee", _("着信者")
    OTHER = "other", _("その他")


class Participant(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    role = models.CharField(max_length=16, choices=Role.choices)
    participant_id = models.CharField(max_length=255, blank=True, default="")
    number = models.CharField(max_length=32, blank=True, default="", help_text="E.164 where it parses")
    number_raw = models.CharField(max_length=255, blank=True, default="")
    display_name = models.CharField(max_length=255, blank=True, default="")
    aor = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_role_display()} {self.display_name or self.number or self.aor}"


class Stream(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="streams")
    index = models.PositiveSmallIntegerField(help_text="m-line index in the SDP offer")
    label = models.CharField(max_length=64, blank=True, default="")
    stream_id = models.CharField(max_length=255, blank=True, default="")
    role = models.CharField(max_length=16, default="unknown")
    participant = models.ForeignKey(Participant, null=True, blank=True, on_delete=models.SET_NULL)
    codec = models.CharField(max_length=32, blank=True, default="")
    local_port = models.PositiveIntegerField(null=True, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True, default="")
    unsupported = models.BooleanField(default=False)
    packets_received = models.BigIntegerField(default=0)
    packets_lost = models.BigIntegerField(default=0)
    packets_late = models.BigIntegerField(default=0)
    packets_duplicate = models.BigIntegerField(default=0)
    packets_dropped = models.BigIntegerField(default=0)
    packets_capture_lost = models.BigIntegerField(default=0)
    ssrc_changes = models.PositiveIntegerField(default=0)
    jitter_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["call", "index"], name="stream_call_index_uniq")]


class DtmfEvent(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="dtmf_events")
    stream_index = models.PositiveSmallIntegerField()
    digit = models.CharField(max_length=8)
    offset = models.FloatField(help_text="seconds from the start of the recording")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["offset", "id"]


class Tag(models.Model):
    """A label for calls (クレーム, 要折り返し, 研修用 ...), chosen from a shared list."""

    name = models.CharField(_("タグ"), max_length=50, unique=True)
    color = models.CharField(max_length=7, default="#6b7280", help_text="#rrggbb")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CallTag(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="call_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="call_tags")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["call", "tag"], name="calltag_call_tag_uniq")]


class Comment(models.Model):
    """A note on a call that the team sees, optionally pinned to a time in the recording."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    offset = models.FloatField(_("再生位置(秒)"), null=True, blank=True)
    text = models.TextField(_("コメント"), max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["offset", "created_at"]
