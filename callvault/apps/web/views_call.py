"""The call page: header, player, tags, comments, timeline, stream figures and evidence data.

Every view fetches the call through ``access.get_call_for_user`` (404 for anything out of
reach). Audio goes through ``recordings.playback`` (ranges, AAC copy, peaks, playback
audit); tags and comments through ``calls.annotations``. Forms are plain POST forms with
CSRF that work without JavaScript; the player script sends the same forms with
``Accept: application/json`` and gets the re-rendered sections back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_http_methods, require_POST

from callvault.apps.accounts import access
from callvault.apps.accounts.models import Line
from callvault.apps.audit.models import Action, record
from callvault.apps.calls import annotations as notes
from callvault.apps.calls.models import Call, CallState, Comment, Direction, RecordingState, Tag
from callvault.apps.recordings import playback
from callvault.apps.recordings.models import Recording
from callvault.apps.web import format as fmt
from callvault.phone import PAYPHONE, WITHHELD

LOSS_WARNING = 0.01
MAX_TAG_CHOICES = 500

END_REASONS = {
    "bye": gettext_lazy("通話終了"),
    "cancel": gettext_lazy("不在着信"),
    "crash": gettext_lazy("中断 (サーバー停止)"),
    "shutdown": gettext_lazy("中断 (サーバー停止)"),
    "rtp_timeout": gettext_lazy("RTPタイムアウト (音声が途絶えたため終了)"),
    "ack_timeout": gettext_lazy("接続確認なし (ACKタイムアウト)"),
    "upload": gettext_lazy("録音ファイルのアップロード"),
}
# Badge colours of the design system (app.css: .badge-neutral/-info/-success/-warning/-danger/-live).
STATE_TONES = {
    CallState.RINGING: "info",
    CallState.ACTIVE: "live",
    CallState.CANCELLED: "warning",
    CallState.INTERRUPTED: "warning",
    CallState.FAILED: "danger",
}
RECORDING_TONES = {
    RecordingState.NONE: "neutral",
    RecordingState.RECORDING: "info",
    RecordingState.PENDING: "info",
    RecordingState.PROCESSING: "info",
    RecordingState.READY: "success",
    RecordingState.FAILED: "danger",
}
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_TAG_COLOR = "#6b7280"


# -- presentation -------------------------------------------------------------------------------


@dataclass
class Party:
    role: str  # 発信者 / 着信者
    side: str  # 顧客 / 担当者 / "" (internal or unknown direction)
    name: str
    number: str


@dataclass
class TimelineItem:
    kind: str
    label: str
    at: str = ""
    offset: float | None = None
    offset_text: str = ""
    detail: str = ""


@dataclass
class CallPage:
    call: Call
    recording: Recording | None
    caller: Party
    callee: Party
    badges: list[tuple[str, str]]
    direction_label: str
    facts: list[tuple[str, str]]
    can_manage: bool
    can_download: bool
    file_ok: bool
    player: dict[str, Any] | None
    timeline: list[TimelineItem]
    participants: list[dict[str, str]]
    streams: list[dict[str, Any]]
    dtmf: list[dict[str, Any]]
    integrity: list[tuple[str, str, str]]
    tags: list[dict[str, Any]]
    tag_choices: list[Tag]
    comments: list[dict[str, Any]]
    calls_url: str
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    js_text: dict[str, str] = field(default_factory=dict)
    live: bool = False


def _number(value: str) -> str:
    if not value:
        return _("番号不明")
    return fmt.number(value)


def _parties(call: Call) -> tuple[Party, Party]:
    if call.direction == Direction.INBOUND:
        sides = (_("顧客"), _("担当者"))
    elif call.direction == Direction.OUTBOUND:
        sides = (_("担当者"), _("顧客"))
    else:
        sides = ("", "")
    callee_name = call.callee_name
    if not callee_name and call.callee_number and call.callee_number not in (WITHHELD, PAYPHONE):
        line = Line.objects.filter(number=call.callee_number).only("label").first()
        callee_name = line.label if line else ""
    caller_name = call.caller_name
    if not caller_name and call.caller_number and call.caller_number not in (WITHHELD, PAYPHONE):
        line = Line.objects.filter(number=call.caller_number).only("label").first()
        caller_name = line.label if line else ""
    # The company's side is named after the agent the call is assigned to, as in the calls list,
    # rather than after whatever name the phone system put in its signalling.
    agent = fmt.user_label(call.agent) if call.agent_id else ""
    if agent and call.direction == Direction.INBOUND:
        callee_name = agent
    elif agent and call.direction == Direction.OUTBOUND:
        caller_name = agent
    return (
        Party(_("発信者"), sides[0], caller_name, _number(call.caller_number)),
        Party(_("着信者"), sides[1], callee_name, _number(call.callee_number)),
    )


def _clock(value: datetime | None) -> str:
    return fmt.local_datetime(value, seconds=True)[-8:] if value else ""


def _offset_of(call: Call, moment: datetime | None) -> float | None:
    base = call.answered_at or call.started_at
    if moment is None or base is None:
        return None
    return max(0.0, (moment - base).total_seconds())


def _timeline(call: Call, dtmf: list[dict[str, Any]]) -> list[TimelineItem]:
    start_label = (
        pgettext("timeline", "発信") if call.direction == Direction.OUTBOUND else pgettext("timeline", "着信")
    )
    items = [TimelineItem("start", start_label, at=_clock(call.started_at), detail=_("呼び出し開始"))]
    if call.answered_at:
        ring = (call.answered_at - call.started_at).total_seconds()
        items.append(
            TimelineItem(
                "answer",
                _("応答"),
                at=_clock(call.answered_at),
                offset=0.0,
                offset_text="00:00",
                detail=_("呼び出し %(s)s") % {"s": fmt.duration(ring)} if ring >= 1 else "",
            )
        )
    base = call.answered_at or call.started_at
    for hold in _holds(call):
        start, end = hold
        items.append(
            TimelineItem(
                "hold",
                _("保留"),
                at=_clock(base + timedelta(seconds=start)),
                offset=start,
                offset_text=notes.format_offset(start),
                detail=(_("%(d)s間") % {"d": fmt.duration(end - start)}) if end is not None else "",
            )
        )
        if end is not None:
            items.append(
                TimelineItem(
                    "resume",
                    _("保留解除"),
                    at=_clock(base + timedelta(seconds=end)),
                    offset=end,
                    offset_text=notes.format_offset(end),
                )
            )
    for d in dtmf:
        items.append(
            TimelineItem(
                "dtmf",
                _("ダイヤル入力 %(digit)s") % {"digit": d["digit"]},
                at=_clock(base + timedelta(seconds=d["offset"])),
                offset=d["offset"],
                offset_text=d["offset_text"],
                detail=d["side"],
            )
        )
    if call.ended_at:
        reason = call.end_reason
        label = str(END_REASONS.get(reason, reason or ""))
        if call.state == CallState.CANCELLED and reason in ("bye", "cancel", ""):
            label = END_REASONS["cancel"]
        items.append(
            TimelineItem(
                "end",
                pgettext("timeline", "終了"),
                at=_clock(call.ended_at),
                offset=_offset_of(call, call.ended_at) if call.answered_at else None,
                offset_text=notes.format_offset(_offset_of(call, call.ended_at) or 0)
                if call.answered_at
                else "",
                detail=label,
            )
        )
    items.sort(key=lambda item: (item.kind != "start", item.offset if item.offset is not None else 0.0))
    ends = [i for i in items if i.kind == "end"]
    return [i for i in items if i.kind != "end"] + ends


def _holds(call: Call) -> list[tuple[float, float | None]]:
    """Hold periods from ``metadata["holds"]``: [{"start": s, "end": s|null}] in recording seconds."""
    raw = (call.metadata or {}).get("holds") if isinstance(call.metadata, dict) else None
    out: list[tuple[float, float | None]] = []
    for h in raw if isinstance(raw, list) else []:
        if not isinstance(h, dict) or not isinstance(h.get("start"), int | float):
            continue
        end = h.get("end")
        out.append((float(h["start"]), float(end) if isinstance(end, int | float) else None))
    return out[:200]


def _side_of(role: str, parties: tuple[Party, Party]) -> str:
    caller, callee = parties
    if role == "caller":
        return caller.role + (f" ({caller.side})" if caller.side else "")
    if role in ("callee", "other", "unknown"):
        return callee.role + (f" ({callee.side})" if callee.side else "")
    if role == "mixed":
        return _("両者 (モノラル)")
    return role


def _streams(call: Call, parties: tuple[Party, Party]) -> list[dict[str, Any]]:
    rows = []
    for s in call.streams.all():
        expected = s.packets_received + s.packets_lost
        loss = s.packets_lost / expected if expected else 0.0
        rows.append(
            {
                "name": _side_of(s.role, parties),
                "label": s.label,
                "codec": s.codec or "—",
                "received": f"{s.packets_received:,}",
                "lost": f"{s.packets_lost:,}",
                "capture_lost": f"{s.packets_capture_lost:,}" if s.packets_capture_lost else "",
                "loss": f"{loss * 100:.1f}%" if expected else "—",
                "loss_warn": loss > LOSS_WARNING,
                "late": f"{s.packets_late:,}",
                "jitter": f"{s.jitter_ms:.1f} ms",
                "unsupported": s.unsupported,
            }
        )
    return rows


def _dtmf(call: Call, parties: tuple[Party, Party]) -> list[dict[str, Any]]:
    roles = {s.index: s.role for s in call.streams.all()}
    return [
        {
            "digit": d.digit,
            "offset": d.offset,
            "offset_text": notes.format_offset(d.offset),
            "duration": f"{d.duration_ms} ms" if d.duration_ms else "",
            "side": _side_of(roles.get(d.stream_index, "unknown"), parties),
        }
        for d in call.dtmf_events.all()[:500]
    ]


def _integrity(call: Call, rec: Recording | None) -> list[tuple[str, str, str]]:
    rows = [(_("通話ID"), str(call.pk), "mono")]
    if call.sip_call_id:
        rows.append((_("SIP Call-ID"), call.sip_call_id, "mono"))
    if rec is None:
        return rows
    names = {"opus": "Ogg Opus", "flac": "FLAC", "wav": "WAV (PCM)", "mp3": "MP3", "m4a": "M4A (AAC)"}
    names.update({"aac": "AAC", "amr": "AMR", "ogg": "Ogg Vorbis"})  # uploads keep their format
    channels = _("ステレオ (2ch)") if rec.channels == 2 else _("モノラル (1ch)")
    rows += [
        ("SHA-256", rec.sha256, "hash"),
        (
            _("ファイルサイズ"),
            _("%(n)s バイト (%(h)s)") % {"n": f"{rec.bytes:,}", "h": _human(rec.bytes)},
            "",
        ),
        (
            _("形式"),
            f"{names.get(rec.format, rec.format)} / {channels} / {rec.sample_rate / 1000:g} kHz",
            "",
        ),
        (_("録音の長さ"), f"{fmt.duration(rec.duration)} ({rec.duration:.2f} s)", ""),
        (_("保存日時"), fmt.local_datetime(rec.created_at, seconds=True), ""),
        (
            _("検証日時"),
            fmt.local_datetime(rec.verified_at, seconds=True) if rec.verified_at else _("未検証"),
            "",
        ),
    ]
    return rows


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _comments(call: Call, user: Any) -> list[dict[str, Any]]:
    out = []
    admin = access.is_admin(user)
    for c in Comment.objects.filter(call=call).select_related("author__profile").order_by("created_at", "id"):
        out.append(
            {
                "id": c.pk,
                "author": fmt.user_label(c.author) if c.author else _("削除されたユーザー"),
                "mine": c.author_id == user.pk,
                "created_at": fmt.local_datetime(c.created_at),
                "offset": c.offset,
                "offset_text": notes.format_offset(c.offset) if c.offset is not None else "",
                "text": c.text,
                "can_delete": admin or (c.author_id is not None and c.author_id == user.pk),
            }
        )
    return out


def _markers(comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": c["id"],
            "t": c["offset"],
            "label": c["offset_text"],
            "text": c["text"][:140],
            "who": c["author"],
        }
        for c in comments
        if c["offset"] is not None
    ]


def _player(request: HttpRequest, call: Call, rec: Recording, parties: tuple[Party, Party]) -> dict[str, Any]:
    ext = playback.stored_extension(rec)
    audio = reverse("web:call_audio", args=[call.pk])
    token = playback.issue_listen_token(request.user, call)
    original_format = "opus" if ext == "opus" else "original"
    caller, callee = parties
    left, right = caller.side or caller.role, callee.side or callee.role
    left_name, right_name = caller.name or caller.number, callee.name or callee.number
    sides = rec.channel_map or {}
    if sides.get("left") == "callee":  # an upload recorded with the callee on the left
        left, right, left_name, right_name = right, left, right_name, left_name
    elif sides.get("left") == "unknown":  # an upload that did not say: never guess who is where
        left, right, left_name, right_name = _("左チャンネル"), _("右チャンネル"), "", ""
    return {
        "duration": rec.duration,
        "duration_text": notes.format_offset(rec.duration),
        "channels": rec.channels,
        "stereo": rec.channels == 2,
        "left": left,
        "left_name": left_name,
        "right": right,
        "right_name": right_name,
        "sources": [
            {
                "url": f"{audio}?format={original_format}&listen={token}",
                "type": playback.PLAYABLE_TYPES.get(ext, ""),
                "format": original_format,
            },
            {
                "url": f"{audio}?format=m4a&listen={token}",
                "type": playback.PLAYABLE_TYPES["m4a"],
                "format": "m4a",
            },
        ],
        "peaks_url": reverse("web:call_peaks", args=[call.pk]),
    }


def build_page(request: HttpRequest, call: Call) -> CallPage:
    user = request.user
    rec = Recording.objects.filter(call=call).first()
    ready = rec is not None and call.recording_state == RecordingState.READY
    parties = _parties(call)
    dtmf = _dtmf(call, parties)
    comments = _comments(call, user)
    file_ok = playback.file_present(rec) if ready and rec else False
    direction = call.get_direction_display()
    badges = []
    if call.state in STATE_TONES:  # a completed call needs no badge: the timeline says how it ended
        badges.append((str(call.get_state_display()), STATE_TONES[call.state]))
    badges.append(
        (str(call.get_recording_state_display()), RECORDING_TONES.get(call.recording_state, "neutral"))
    )
    agent = fmt.user_label(call.agent) if call.agent_id else ""
    facts = [
        (_("日時"), fmt.local_datetime(call.started_at)),
        (_("通話時間"), _duration_text(call)),
        (_("チーム"), call.team.name if call.team_id and call.team else _("未割り当て")),
        (_("担当者"), agent or _("未割り当て")),
        (_("録音元"), str(call.get_source_display())),
    ]
    player = _player(request, call, rec, parties) if ready and rec and file_ok else None
    if player is not None:
        player["markers"] = _markers(comments)
        player["dtmf"] = [{"t": d["offset"], "digit": d["digit"]} for d in dtmf]
    try:
        calls_url = reverse("web:calls")
    except NoReverseMatch:
        calls_url = "/"
    return CallPage(
        call=call,
        recording=rec if ready else None,
        caller=parties[0],
        callee=parties[1],
        badges=badges,
        direction_label=str(direction),
        facts=facts,
        can_manage=access.can_manage_call(user, call),
        can_download=ready and file_ok and access.can_export(user, call),
        file_ok=file_ok,
        player=player,
        timeline=_timeline(call, dtmf),
        participants=[
            {
                "role": str(p.get_role_display()),
                "name": p.display_name,
                "number": _number(p.number) if p.number else "",
                "aor": p.aor,
            }
            for p in call.participants.all()[:50]
        ],
        streams=_streams(call, parties),
        dtmf=dtmf,
        integrity=_integrity(call, rec if ready else None),
        tags=[
            {
                "id": ct.tag_id,
                "name": ct.tag.name,
                "color": ct.tag.color if _COLOR.fullmatch(ct.tag.color or "") else DEFAULT_TAG_COLOR,
            }
            for ct in call.call_tags.select_related("tag").order_by("tag__name")
        ],
        tag_choices=list(Tag.objects.exclude(call_tags__call=call).order_by("name")[:MAX_TAG_CHOICES]),
        comments=comments,
        calls_url=calls_url,
        js_text=_js_text(),
        live=call.recording_state in LIVE_RECORDING_STATES,
    )


def _duration_text(call: Call) -> str:
    if call.ended_at is None:
        return _("通話中")
    if call.answered_at is None:
        return _("応答なし")
    return fmt.duration(call.duration or 0.0)


LIVE_RECORDING_STATES = (RecordingState.RECORDING, RecordingState.PENDING, RecordingState.PROCESSING)


def _js_text() -> dict[str, str]:
    """Messages of player.js in the page's language."""
    return {
        "audio_error": _("音声を読み込めませんでした。"),
        "gone": _("この録音は見つからないか、閲覧できなくなりました。"),
        "no_webaudio": _("このブラウザーでは話者ごとの再生に対応していません。"),
        "no_wave": _("波形を表示できません (再生はできます)。"),
        "speed": _("速度"),
        "ch_on": _(": 聞く"),
        "ch_off": _(": 消音"),
        "marker": _("コメント"),
        "media_title": _("通話録音"),
        "csrf": _("セッションの有効期限が切れました。ページを再読み込みしてください。"),
        "not_found": _("対象が見つからないか、操作する権限がありません。"),
        "login": _("ログインの有効期限が切れました。ページを再読み込みしてログインしてください。"),
        "save_failed": _("保存できませんでした。"),
        "network": _("通信に失敗しました。接続を確認してください。"),
        "live_ready": _("録音の準備ができました。"),
        "live_failed": _("録音の処理に失敗しました。"),
        "live_changed": _("この通話の状態が変わりました。"),
        "live_reload": _("表示を更新"),
    }


# -- views ----------------------------------------------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _render_page(request: HttpRequest, page: CallPage, status: int = 200) -> HttpResponse:
    return render(request, "web/call_detail.html", {"page": page, "call": page.call}, status=status)


@login_required
@require_http_methods(["GET", "HEAD"])
def call_detail(request: HttpRequest, call_id: Any) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    response = _render_page(request, build_page(request, call))
    response["Cache-Control"] = "private, no-store"
    return response


_FORMATS = ("opus", "original", "m4a")


@login_required
@require_http_methods(["GET", "HEAD"])
def call_audio(request: HttpRequest, call_id: Any) -> HttpResponse:
    """The recording for the player: ``?format=opus`` (as stored), ``original`` or ``m4a``."""
    call = access.get_call_for_user(request.user, call_id)
    fmt_name = request.GET.get("format", "original")
    if fmt_name not in _FORMATS:
        return _plain(_("format には opus、original、m4a のいずれかを指定してください。"), 400)
    rec = _ready_recording(call)
    try:
        if fmt_name == "m4a":
            path = playback.m4a_path(rec)
            content_type, etag = playback.CONTENT_TYPES["m4a"], f"{rec.sha256}-m4a"
        else:
            ext = playback.stored_extension(rec)
            if fmt_name == "opus" and ext != "opus":
                return _plain(
                    _("この録音は Ogg Opus ではありません。format=original を指定してください。"), 400
                )
            path = playback.recording_path(rec)
            content_type, etag = playback.CONTENT_TYPES.get(ext, "application/octet-stream"), rec.sha256
    except playback.PlaybackError as exc:
        return _plain(str(exc), 503)
    if request.method == "GET":
        playback.audit_playback(
            request.user,
            call,
            token=request.GET.get("listen"),
            ip=playback.client_ip(request),
            fmt=fmt_name,
        )
    return playback.file_response(request, path, content_type=content_type, etag=etag)


@login_required
@require_http_methods(["GET", "HEAD"])
def call_download(request: HttpRequest, call_id: Any) -> HttpResponse:
    """The original file as an attachment, for those who may export (supervisors, admins); audited."""
    call = access.get_call_for_user(request.user, call_id)
    if not access.can_export(request.user, call):
        raise Http404("call not found")
    rec = _ready_recording(call)
    try:
        path = playback.recording_path(rec)
    except playback.PlaybackError as exc:
        return _plain(str(exc), 503)
    name = download_name(call, rec)
    if request.method == "GET":
        record(
            str(Action.DOWNLOAD),
            user=request.user,
            obj=call,
            ip=playback.client_ip(request),
            # not the file name: it carries phone numbers, and auditors read this log
            format=playback.stored_extension(rec),
            sha256=rec.sha256,
            bytes=rec.bytes,
            range=(request.headers.get("Range") or "")[:100],
        )
    ext = playback.stored_extension(rec)
    return playback.file_response(
        request,
        path,
        content_type=playback.CONTENT_TYPES.get(ext, "application/octet-stream"),
        etag=rec.sha256,
        filename=name,
        digest=playback.sha_digest_header(rec.sha256),
    )


@login_required
@require_http_methods(["GET", "HEAD"])
def call_peaks(request: HttpRequest, call_id: Any) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    rec = _ready_recording(call)
    try:
        data = playback.peaks_for(rec)
    except playback.PlaybackError as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    response = JsonResponse(data)
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def call_retry(request: HttpRequest, call_id: Any) -> HttpResponse:
    """Queue the recording's processing again (supervisors of the team, admins)."""
    from callvault.apps.recordings.finalize import request_retry

    call = access.get_call_for_user(request.user, call_id)
    if not access.can_manage_call(request.user, call):
        raise Http404("call not found")
    if call.recording_state not in (RecordingState.FAILED, RecordingState.PENDING):
        messages.info(request, _("この通話の録音は再処理の対象ではありません。"))
    else:
        request_retry(str(call.pk))
        messages.success(
            request, _("録音の再処理を受け付けました。数十秒後にページを再読み込みしてください。")
        )
    return redirect("web:call", call_id=call.pk)


@login_required
@require_POST
def comment_add(request: HttpRequest, call_id: Any) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    try:
        notes.add_comment(
            call,
            request.user,
            request.POST.get("text", ""),
            request.POST.get("offset", ""),
            ip=playback.client_ip(request),
        )
    except notes.AnnotationError as exc:
        return _form_error(request, call, exc, "comment")
    return _form_done(request, call, _("コメントを追加しました。"), "comments")


@login_required
@require_POST
def comment_delete(request: HttpRequest, call_id: Any, comment_id: int) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    notes.delete_comment(call, request.user, comment_id, ip=playback.client_ip(request))
    return _form_done(request, call, _("コメントを削除しました。"), "comments")


@login_required
@require_POST
def tag_add(request: HttpRequest, call_id: Any) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    try:
        tag, added = notes.add_tag(
            call,
            request.user,
            tag_id=request.POST.get("tag"),
            name=request.POST.get("name"),
            ip=playback.client_ip(request),
        )
    except notes.AnnotationError as exc:
        return _form_error(request, call, exc, "tag")
    message = (
        _("タグ「%(t)s」を付けました。") % {"t": tag.name}
        if added
        else _("タグ「%(t)s」はすでに付いています。") % {"t": tag.name}
    )
    return _form_done(request, call, message, "tags")


@login_required
@require_POST
def tag_remove(request: HttpRequest, call_id: Any, tag_id: int) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    try:
        tag = notes.remove_tag(call, request.user, tag_id, ip=playback.client_ip(request))
    except notes.AnnotationError as exc:
        return _form_error(request, call, exc, "tag")
    return _form_done(request, call, _("タグ「%(t)s」を外しました。") % {"t": tag.name}, "tags")


# -- helpers ----------------------------------------------------------------------------------------


def _plain(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _ready_recording(call: Call) -> Recording:
    rec = Recording.objects.filter(call=call).first()
    if rec is None or call.recording_state != RecordingState.READY:
        raise Http404("no recording")
    return rec


def download_name(call: Call, rec: Recording) -> str:
    """``20261127-1405_0312345678_201.opus``: local start time, caller, callee (ASCII only)."""

    def digits(number: str) -> str:
        if number == WITHHELD:
            return "anonymous"
        if number == PAYPHONE:
            return "payphone"
        shown = re.sub(r"[^0-9]", "", fmt.number(number) if number else "")
        return shown[:20] or "unknown"

    started = fmt.local_datetime(call.started_at).replace("/", "").replace(":", "").replace(" ", "-")
    ext = playback.stored_extension(rec)
    return f"{started}_{digits(call.caller_number)}_{digits(call.callee_number)}.{ext}"


def _sections(request: HttpRequest, page: CallPage, which: str) -> dict[str, str]:
    context = {"page": page, "call": page.call}
    names = {"comments": "web/call/comments.html", "tags": "web/call/tags.html"}
    return {which: render_to_string(names[which], context, request=request)}


def _form_done(request: HttpRequest, call: Call, message: str, which: str) -> HttpResponse:
    if _wants_json(request):
        page = build_page(request, call)
        return JsonResponse(
            {
                "ok": True,
                "message": message,
                "html": _sections(request, page, which),
                "markers": page.player["markers"] if page.player else [],
            }
        )
    messages.success(request, message)
    return redirect(reverse("web:call", args=[call.pk]) + f"#{which}")


def _form_error(request: HttpRequest, call: Call, exc: notes.AnnotationError, form: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"ok": False, "error": str(exc), "field": exc.field}, status=400)
    page = build_page(request, call)
    page.errors = {form: str(exc)}
    page.values = {
        "text": str(request.POST.get("text", ""))[: notes.MAX_COMMENT + 100],
        "offset": str(request.POST.get("offset", ""))[:32],
        "name": str(request.POST.get("name", ""))[:100],
    }
    return _render_page(request, page, status=400)
