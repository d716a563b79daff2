"""What the API endpoints do, apart from HTTP: access, changes, audit.

Every call is fetched through the access helper (``get_call_for_user`` -> 404 for anything out
of reach); every change and every download is written to the audit chain with user, IP and
object (never a token or other secret).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _

from callvault.apps.accounts.access import can_manage_call as _can_manage_call
from callvault.apps.accounts.access import get_call_for_user, is_admin
from callvault.apps.api.auth import client_ip, token_of
from callvault.apps.api.errors import ApiError, bad_parameter, forbidden, not_found
from callvault.apps.api.ranges import ByteRange
from callvault.apps.audit.models import Action, record
from callvault.apps.calls.models import Call, CallTag, Comment, RecordingState, Tag
from callvault.apps.recordings.models import Recording
from callvault.storage import StorageError, get_storage

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTENT_TYPES = {"opus": "audio/ogg", "flac": "audio/flac", "wav": "audio/wav"}
# Uploaded recordings are kept in the format they were sent in (callvault/apps/uploads).
CONTENT_TYPES.update(
    {"mp3": "audio/mpeg", "m4a": "audio/mp4", "aac": "audio/aac", "amr": "audio/amr", "ogg": "audio/ogg"}
)


def audit(request: HttpRequest, action: str, obj: Any = None, **detail: Any) -> None:
    token = token_of(request)
    via = {"via": "api"}
    if token is not None:
        via["token_id"] = token.pk  # which token, never the token itself
    record(action, user=request.user, obj=obj, ip=client_ip(request), **via, **detail)


def call_for(request: HttpRequest, call_id: Any) -> Call:
    try:
        return get_call_for_user(request.user, call_id)
    except Http404:
        raise not_found(_("通話が見つかりません。")) from None


def clean_text(value: str) -> str:
    """Text people typed: normalized line ends, no control characters, trimmed."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


# --- comments ------------------------------------------------------------------------------


def add_comment(request: HttpRequest, call: Call, text: str, offset: float | None) -> Comment:
    text = clean_text(text)
    if not text:
        raise bad_parameter("text", _("コメントを入力してください。"))
    if offset is not None:
        rec = Recording.objects.filter(call=call).only("duration").first()
        if rec is None:
            raise bad_parameter("offset", _("録音がない通話では再生位置を指定できません。"))
        if offset > rec.duration:
            raise bad_parameter(
                "offset",
                _("再生位置は録音の長さ (%(seconds).1f 秒) 以内で指定してください。")
                % {"seconds": rec.duration},
            )
    with transaction.atomic():
        comment = Comment.objects.create(call=call, author=request.user, offset=offset, text=text)
        audit(request, str(Action.COMMENT), comment, op="add", call=str(call.pk), length=len(text))
    return Comment.objects.select_related("author", "author__profile").get(pk=comment.pk)


def delete_comment(request: HttpRequest, call: Call, comment_id: int) -> None:
    comment = Comment.objects.filter(call=call, pk=comment_id).first()
    if comment is None:
        raise not_found(_("コメントが見つかりません。"))
    if comment.author_id != request.user.pk and not is_admin(request.user):
        raise forbidden(_("他の人のコメントは削除できません(管理者のみ削除できます)。"))
    with transaction.atomic():
        audit(
            request,
            str(Action.DELETE),
            comment,
            call=str(call.pk),
            author_id=comment.author_id,
            offset=comment.offset,
            length=len(comment.text),
        )
        comment.delete()


# --- tags ----------------------------------------------------------------------------------


def tag_name(value: str) -> str:
    name = unicodedata.normalize("NFKC", clean_text(value)).replace("\n", " ")
    name = " ".join(name.split())
    if not name:
        raise bad_parameter("tag", _("タグ名を入力してください。"))
    if len(name) > 50:
        raise bad_parameter("tag", _("タグ名は 50 文字以内にしてください。"))
    return name


def check_can_tag(request: HttpRequest, call: Call) -> None:
    if not _can_manage_call(request.user, call):
        raise forbidden(_("この通話のタグを変更する権限がありません(チームのスーパーバイザーと管理者のみ)。"))


def add_tag(request: HttpRequest, call: Call, raw: str) -> bool:
    """Tag the call (creating the tag if new); False if it already had it."""
    check_can_tag(request, call)
    name = tag_name(raw)
    with transaction.atomic():
        tag, created = Tag.objects.get_or_create(name=name)
        try:
            with transaction.atomic():
                CallTag.objects.create(call=call, tag=tag, added_by=request.user)
        except IntegrityError:
            return False
        audit(request, str(Action.TAG), call, op="add", tag=name, tag_created=created)
    return True


def remove_tag(request: HttpRequest, call: Call, raw: str) -> bool:
    check_can_tag(request, call)
    name = tag_name(raw)
    with transaction.atomic():
        deleted, _rows = CallTag.objects.filter(call=call, tag__name=name).delete()
        if deleted:
            audit(request, str(Action.TAG), call, op="remove", tag=name)
    return bool(deleted)


def tags_of_call(call: Call) -> list[dict[str, Any]]:
    links = CallTag.objects.filter(call=call).select_related("tag").order_by("tag__name")
    return [{"id": ct.tag.pk, "name": ct.tag.name, "color": ct.tag.color} for ct in links]


# --- recordings ----------------------------------------------------------------------------


@dataclass
class RecordingFile:
    recording: Recording
    size: int
    content_type: str
    filename: str


def recording_file(call: Call) -> RecordingFile:
    rec = Recording.objects.filter(call=call).first()
    if rec is None or call.recording_state != RecordingState.READY:
        raise not_found(_("この通話の録音はまだありません。"))
    try:
        size = get_storage().size(rec.storage_key)
    except (OSError, StorageError):
        raise ApiError(
            404, "recording_missing", _("録音ファイルが保存先に見つかりません。管理者に連絡してください。")
        ) from None
    from django.utils import timezone

    stamp = timezone.localtime(call.started_at).strftime("%Y%m%d-%H%M%S")
    ext = rec.format if rec.format in CONTENT_TYPES else "bin"
    return RecordingFile(
        recording=rec,
        size=size,
        content_type=CONTENT_TYPES.get(rec.format, "application/octet-stream"),
        filename=f"callvault-{stamp}-{str(call.pk)[:8]}.{ext}",
    )


def audit_download(request: HttpRequest, call: Call, rng: ByteRange | None, size: int) -> bool:
    """Record a ``download`` for a request that starts at byte 0 (or has no range).

    A player streams one recording as many range requests; only the one that starts the file
    is logged, so the audit trail says "downloaded once" instead of a hundred times.
    """
    if rng is not None and rng.start != 0:
        return False
    audit(
        request,
        str(Action.DOWNLOAD),
        call,
        range=None if rng is None else f"{rng.start}-{rng.end}",
        bytes=size if rng is None else rng.length,
    )
    return True
