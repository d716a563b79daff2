"""Turning an audio file plus metadata into a call: the one path for the API, tus and folder import.

``ingest(path, info, origin)``:

1. SHA-256 of the original bytes. The same bytes seen before (from any device, any way in)
   answer the existing call: replays and re-runs never make a second call. A client upload id
   already used by the same device/user for *different* bytes is a conflict.
2. Validate by decoding (:mod:`callvault.apps.uploads.media`); the name and type are never trusted.
3. Who the call belongs to (:func:`resolve_assignment`): the device's team/line/user, a user named
   in the metadata only if they belong to that team; then the usual line rules.
4. Store the original bytes as they are: an intent marker is written first (locked while in
   progress), the file goes to storage atomically (temp, fsync, rename), then one database
   transaction creates the call, participants, recording, origin row and audit entry. A crash
   in between leaves a marker whose file :func:`reconcile_pending` removes (no orphan files).
5. After the commit: the live event and ``recording_ready`` (webhooks ``call.completed``, waveform).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from callvault.apps.accounts.models import Membership, Team, TeamRole
from callvault.apps.accounts.services import assign_call
from callvault.apps.audit.models import record
from callvault.apps.calls.models import Call, CallState, Direction, Participant, RecordingState, Source
from callvault.apps.recordings.models import Recording
from callvault.apps.uploads.media import AudioInfo, AudioRejected, validate_audio
from callvault.apps.uploads.models import Device, UploadedFile
from callvault.phone import normalize
from callvault.storage import get_storage

log = logging.getLogger("callvault.uploads")

CHUNK = 1024 * 1024
MAX_TEXT = 255
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,100}")
DIRECTIONS = {
    "in": Direction.INBOUND,
    "inbound": Direction.INBOUND,
    "incoming": Direction.INBOUND,
    "着信": Direction.INBOUND,
    "受信": Direction.INBOUND,
    "out": Direction.OUTBOUND,
    "outbound": Direction.OUTBOUND,
    "outgoing": Direction.OUTBOUND,
    "発信": Direction.OUTBOUND,
    "internal": Direction.INTERNAL,
    "内線": Direction.INTERNAL,
    "unknown": Direction.UNKNOWN,
    "不明": Direction.UNKNOWN,
    "": Direction.UNKNOWN,
}
LAYOUTS = {"caller_left": ("caller", "callee"), "callee_left": ("callee", "caller")}


class UploadError(Exception):
    """Refused input: HTTP status, a stable code, the offending parameter and a message for people."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


def bad(param: str, message: str) -> UploadError:
    return UploadError(400, "invalid_parameter", message, param)


@dataclass
class CallInfo:
    """The metadata that comes with a file (form fields, tus Upload-Metadata, JSON sidecar, CSV row)."""

    started_at: datetime
    caller: str = ""
    callee: str = ""
    caller_name: str = ""
    callee_name: str = ""
    direction: str = str(Direction.UNKNOWN)
    duration: float | None = None
    user: str = ""
    team: str = ""
    layout: str = ""
    client_upload_id: str = ""
    original_name: str = ""


@dataclass
class Origin:
    """Who sends the file and how."""

    via: str  # api, tus, import
    device: Device | None = None
    user: Any = None  # the API token's user (admin or supervisor); None for devices and import
    ip: str | None = None
    operator: str = ""  # import: who ran the command (for the audit log)

    @property
    def scope(self) -> str:
        if self.device is not None:
            return f"device:{self.device.pk}"
        if self.user is not None:
            return f"user:{self.user.pk}"
        return "import"


@dataclass
class IngestResult:
    call: Call
    created: bool
    audio: AudioInfo | None = None
    warnings: list[str] = field(default_factory=list)


# --- metadata ---------------------------------------------------------------------------------


def _text(raw: dict[str, Any], *names: str, limit: int = MAX_TEXT) -> tuple[str, str]:
    """The first non-empty value among ``names`` (aliases), stripped; and which name it came from."""
    for name in names:
        value = raw.get(name)
        if value is None:
            continue
        text = str(value).strip()
        if not text:
            continue
        if len(text) > limit or any(ord(ch) < 32 for ch in text):
            raise bad(
                name,
                _("%(name)s の値が長すぎるか、制御文字を含んでいます (%(limit)s 文字まで)。")
                % {"name": name, "limit": limit},
            )
        return text, name
    return "", names[0]


def parse_started_at(text: str, param: str = "started_at") -> datetime:
    """ISO 8601 or the forms Japanese recorders write (2026/11/27 14:05:00); naive = local time."""
    value = text.strip().replace("/", "-")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad(
            param,
            _(
                "%(param)s は日時 (例: 2026-11-27T14:05:00+09:00 または 2026/11/27 14:05:00) "
                "で指定してください。"
            )
            % {"param": param},
        ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    now = timezone.now()
    if parsed > now + timedelta(days=1):
        raise bad(param, _("%(param)s が未来の日時です。端末の時計を確認してください。") % {"param": param})
    if parsed.year < 1990:
        raise bad(param, _("%(param)s が古すぎます (1990 年以降)。") % {"param": param})
    return parsed


def parse_info(raw: dict[str, Any], *, default_started_at: datetime | None = None) -> CallInfo:
    """Validate metadata given as strings (API form, tus header, sidecar); UploadError(400) if wrong.

    Accepts the column names recorder boxes export (日時, 発信者番号, 相手番号, 方向 ...).
    """
    started_text, started_name = _text(
        raw,
        "started_at",
        "start",
        "start_time",
        "datetime",
        "date",
        "開始日時",
        "日時",
        "通話開始",
        "録音日時",
    )
    if started_text:
        started_at = parse_started_at(started_text, started_name)
    elif default_started_at is not None:
        started_at = default_started_at
    else:
        raise bad("started_at", _("started_at (通話の開始日時) は必須です。"))
    direction_text, direction_name = _text(raw, "direction", "方向", "発着信", "種別", "発着")
    direction = DIRECTIONS.get(direction_text.lower())
    if direction is None:
        raise bad(
            direction_name, _("direction は in (着信)、out (発信)、internal (内線)、unknown のいずれかです。")
        )
    duration_text, duration_name = _text(raw, "duration", "通話時間", "秒数", limit=20)
    duration: float | None = None
    if duration_text:
        try:
            duration = _parse_duration(duration_text)
        except ValueError:
            raise bad(
                duration_name, _("duration は秒数 (例: 65.2) または 時:分:秒 で指定してください。")
            ) from None
        if not 0 <= duration <= settings.UPLOAD_MAX_SECONDS:
            raise bad(
                duration_name, _("duration は 0〜%(max)s 秒です。") % {"max": settings.UPLOAD_MAX_SECONDS}
            )
    layout, layout_name = _text(raw, "layout", "channel_layout", limit=20)
    if layout and layout not in LAYOUTS:
        raise bad(layout_name, _("layout は caller_left (左 = 発信者) か callee_left (左 = 着信者) です。"))
    client_id, client_name = _text(raw, "client_upload_id", "upload_id", limit=100)
    if client_id and not CLIENT_ID_RE.fullmatch(client_id):
        raise bad(client_name, _("client_upload_id は英数字と ._:@/+=- だけの 100 文字以内です。"))
    caller, _n = _text(raw, "caller", "from", "caller_number", "発信者番号", "発信元", "発信番号", limit=64)
    callee, _n = _text(
        raw, "callee", "to", "callee_number", "着信者番号", "着信先", "相手番号", "着信番号", limit=64
    )
    return CallInfo(
        started_at=started_at,
        caller=caller,
        callee=callee,
        caller_name=_text(raw, "caller_name", "発信者名", limit=100)[0],
        callee_name=_text(raw, "callee_name", "着信者名", "相手先名", limit=100)[0],
        direction=str(direction),
        duration=duration,
        user=_text(raw, "user", "username", "担当者", "ユーザー", limit=150)[0],
        team=_text(raw, "team", "チーム", limit=100)[0],
        layout=layout,
        client_upload_id=client_id,
        original_name=_text(raw, "filename", "name", limit=255)[0],
    )


def _parse_duration(text: str) -> float:
    if ":" in text:
        parts = [float(p) for p in text.split(":")]
        if len(parts) > 3:
            raise ValueError(text)
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    return float(text)


# --- who the call belongs to ---------------------------------------------------------------------


def _user_by_name(name: str, param: str = "user") -> Any:
    user = get_user_model().objects.filter(username=name, is_active=True).first()
    if user is None:
        raise bad(param, _("指定されたユーザーは、このアップロードの割り当て先として使えません。"))
    return user


def _team_by_name(name: str) -> Team:
    team = Team.objects.filter(name=name).first()
    if team is None and name.isdigit():
        team = Team.objects.filter(pk=int(name)).first()
    if team is None:
        raise bad("team", _("指定されたチームは、このアップロードの割り当て先として使えません。"))
    return team


def _member_of(user: Any, team: Team) -> bool:
    return Membership.objects.filter(user=user, team=team).exists()


def resolve_assignment(call: Call, info: CallInfo, origin: Origin) -> None:
    """Set the call's team and agent; UploadError(400) naming ``user``/``team`` if out of reach.

    - A device's calls belong to its team; its line's user or its own user is the agent. A
      ``user`` in the metadata must be a member of that team (anyone else: refused).
    - A supervisor's token: only teams they supervise (``team`` names one; their only team by
      default); ``user`` must be a member of that team.
    - An admin's token and the folder import (run by the operator): any team and user.
    - Without a team from these, the configured lines decide (``assign_call``).
    """
    from callvault.apps.accounts.access import is_admin

    team: Team | None = None
    agent: Any = None
    if origin.device is not None:
        device = origin.device
        team = device.team
        agent = device.user
        if device.line is not None:
            team = device.line.team
            agent = device.line.user or agent
        if info.team and info.team not in (team.name, str(team.pk)):
            raise bad("team", _("この端末はほかのチームの通話をアップロードできません。"))
    elif origin.user is not None and not is_admin(origin.user):
        supervised = list(
            Team.objects.filter(
                memberships__user=origin.user, memberships__role=TeamRole.SUPERVISOR
            ).order_by("name")
        )
        if info.team:
            team = next((t for t in supervised if info.team in (t.name, str(t.pk))), None)
            if team is None:
                raise bad("team", _("指定されたチームは、このアップロードの割り当て先として使えません。"))
        elif len(supervised) == 1:
            team = supervised[0]
        else:
            raise bad("team", _("複数のチームを担当しているため、team (チーム名) を指定してください。"))
    elif info.team:
        team = _team_by_name(info.team)
    if info.user:
        user = _user_by_name(info.user)
        if team is not None and not _member_of(user, team):
            raise bad("user", _("指定されたユーザーは、このアップロードの割り当て先として使えません。"))
        if team is None:
            teams = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
            if len(teams) == 1:
                call.team_id = teams[0]
        agent = user
    if team is not None:
        call.team_id = team.pk
    if agent is not None:
        call.agent_id = agent.pk


# --- files ---------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def pending_dir() -> Path:
    path = Path(settings.UPLOADS_DIR) / "pending"
    path.mkdir(parents=True, exist_ok=True)
    return path


def staging_dir() -> Path:
    path = Path(settings.UPLOADS_DIR) / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _intent(call_id: uuid.UUID, key: str) -> Iterator[Path]:
    """A marker naming the storage key, locked while this process stores and commits.

    Removed after the commit (or after cleaning up a failure). One left behind means the process
    died in between: :func:`reconcile_pending` then deletes the file if no recording row has it.
    """
    marker = pending_dir() / f"{call_id}.json"
    fd = os.open(marker, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"key": key}).encode())
        os.fsync(fd)
        try:
            yield marker
        except BaseException:
            if not get_storage().exists(key):  # the failure was cleaned up: nothing to reconcile
                marker.unlink(missing_ok=True)
            raise
        marker.unlink(missing_ok=True)
    finally:
        os.close(fd)


def reconcile_pending() -> int:
    """Delete stored files of ingests that died before their database commit; returns how many."""
    removed = 0
    for marker in sorted(pending_dir().glob("*.json")):
        try:
            fd = os.open(marker, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # an ingest in progress
            try:
                key = json.loads(marker.read_text(encoding="utf-8"))["key"]
            except (ValueError, KeyError, OSError):
                key = None
            if key and not Recording.objects.filter(storage_key=key).exists():
                storage = get_storage()
                if storage.exists(key):
                    storage.delete(key)
                    removed += 1
                    log.warning("x removed orphan upload file %s (no database row)", key)
            marker.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


# --- ingest --------------------------------------------------------------------------------------


def _existing(sha: str, info: CallInfo, origin: Origin) -> Call | None:
    """The call already made from these bytes (or from this client upload id, with the same bytes)."""
    if info.client_upload_id:
        same_id = UploadedFile.objects.filter(
            scope=origin.scope, client_upload_id=info.client_upload_id
        ).first()
        if same_id is not None and same_id.sha256 != sha:
            raise UploadError(
                409,
                "upload_id_conflict",
                _("この client_upload_id は別の内容のファイルですでに使われています。"),
                "client_upload_id",
            )
        if same_id is not None:
            return same_id.call
    found = UploadedFile.objects.filter(sha256=sha).select_related("call").first()
    return found.call if found is not None else None


def check_duplicate(path: Path, info: CallInfo, origin: Origin) -> tuple[str, Call | None]:
    sha = sha256_of(path)
    return sha, _existing(sha, info, origin)


def ingest(path: Path, info: CallInfo, origin: Origin, *, sha: str | None = None) -> IngestResult:
    """Validate and store ``path`` (a private copy: staging or temp) as a call. See the module doc."""
    sha = sha or sha256_of(path)
    existing = _existing(sha, info, origin)
    if existing is not None:
        _audit_duplicate(existing, sha, origin)
        return IngestResult(existing, created=False)
    try:
        audio = validate_audio(
            path,
            max_seconds=settings.UPLOAD_MAX_SECONDS,
            min_bytes_per_second=settings.UPLOAD_MIN_BYTES_PER_SECOND,
        )
    except AudioRejected as exc:
        log.warning("x upload refused via=%s scope=%s sha256=%s: %s", origin.via, origin.scope, sha, exc.code)
        raise UploadError(422, exc.code, exc.message, "file") from None
    duration = info.duration if info.duration is not None else audio.duration
    call = Call(
        id=uuid.uuid4(),
        source=Source.UPLOAD,
        direction=info.direction,
        state=CallState.COMPLETED,
        recording_state=RecordingState.READY,
        started_at=info.started_at,
        answered_at=info.started_at,
        ended_at=info.started_at + timedelta(seconds=duration),
        duration=duration,
        end_reason="upload",
        caller_number=normalize(info.caller),
        caller_name=info.caller_name,
        callee_number=normalize(info.callee),
        callee_name=info.callee_name,
        spool_key=None,
        metadata={"upload": {"via": origin.via, "single_channel": audio.channels == 1}},
    )
    resolve_assignment(call, info, origin)
    key = f"{timezone.localtime(info.started_at):%Y/%m/%d}/{call.pk}.{audio.ext}"
    storage = get_storage()
    with _intent(call.pk, key):
        storage.put_file(key, path)
        try:
            local = storage.local_path(key)
            if local is not None and sha256_of(local) != sha:
                raise UploadError(500, "storage_mismatch", _("保存したファイルのハッシュが一致しません。"))
            with transaction.atomic():
                _save(call, info, origin, audio, key, sha)
        except IntegrityError:
            storage.delete(key)
            again = _existing(sha, info, origin)
            if again is None:
                raise
            return IngestResult(again, created=False)
        except BaseException:
            storage.delete(key)
            raise
    announce(call.pk)
    log.info(
        "< upload via=%s scope=%s call=%s %s %dch %.1fs %d bytes",
        origin.via,
        origin.scope,
        call.pk,
        audio.ext,
        audio.channels,
        audio.duration,
        audio.bytes,
    )
    return IngestResult(Call.objects.get(pk=call.pk), created=True, audio=audio)


def _save(call: Call, info: CallInfo, origin: Origin, audio: AudioInfo, key: str, sha: str) -> None:
    call.save(force_insert=True)
    for role, number, raw, name in (
        ("caller", call.caller_number, info.caller, info.caller_name),
        ("callee", call.callee_number, info.callee, info.callee_name),
    ):
        Participant.objects.create(
            call=call, role=role, number=number, number_raw=raw[:255], display_name=name
        )
    if call.team_id is None:  # nothing above decided: the configured lines do
        agent = call.agent_id
        assign_call(call)
        call.agent_id = agent or call.agent_id
        call.save(update_fields=["team", "agent"])
    if audio.channels == 1:
        channel_map = {"mono": "mixed"}
    else:
        left, right = LAYOUTS.get(info.layout, ("unknown", "unknown"))
        channel_map = {"left": left, "right": right}
    Recording.objects.create(
        call=call,
        storage_key=key,
        format=audio.ext,
        codec=audio.codec,
        channels=audio.channels,
        sample_rate=audio.sample_rate,
        bytes=audio.bytes,
        sha256=sha,
        duration=audio.duration,
        channel_map=channel_map,
        verified_at=timezone.now(),
    )
    UploadedFile.objects.create(
        call=call,
        sha256=sha,
        device=origin.device,
        user=origin.user,
        scope=origin.scope,
        client_upload_id=info.client_upload_id,
        original_name=info.original_name[:255],
        via=origin.via,
    )
    if origin.device is not None:
        Device.objects.filter(pk=origin.device.pk).update(last_seen_at=timezone.now())
    _audit(
        call,
        origin,
        result="created",
        sha256=sha,
        bytes=audio.bytes,
        format=audio.ext,
        codec=audio.codec,
        channels=audio.channels,
        duration=audio.duration,
    )


def _audit(call: Call, origin: Origin, **detail: Any) -> None:
    extra: dict[str, Any] = {"via": origin.via}
    if origin.device is not None:
        extra["device_id"] = origin.device.pk
        extra["username"] = f"端末: {origin.device.name}"[:150]
    elif origin.user is None and origin.operator:
        extra["username"] = origin.operator[:150]
    record("upload", user=origin.user, obj=call, ip=origin.ip, **extra, **detail)


def _audit_duplicate(call: Call, sha: str, origin: Origin) -> None:
    _audit(call, origin, result="duplicate", sha256=sha)


def announce(call_id: Any) -> None:
    """The same notifications as a finalized SIPREC recording: live event, then ``recording_ready``."""
    from callvault.apps.recordings.signals import recording_ready
    from callvault.live import CALL_COMPLETED, publish

    call = Call.objects.select_related("recording").get(pk=call_id)
    publish(CALL_COMPLETED, call)
    for receiver, response in recording_ready.send_robust(sender=Recording, call=call):
        if isinstance(response, Exception):
            log.error("x recording_ready receiver %s failed: %s", receiver, response)
