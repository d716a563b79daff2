"""Tags and time-pinned comments on calls: the rules, the input checks and the audit trail.

Anyone who can see a call may tag it and comment on it; a comment may be deleted by its
author or an administrator. Callers (views, API) must have fetched the call through
``access.get_call_for_user`` first: these functions do not widen or check call access.
Input problems raise :class:`AnnotationError` with a message for people (Japanese).
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext as _

from callvault.apps.accounts.access import is_admin
from callvault.apps.audit.models import Action, record
from callvault.apps.calls.models import Call, CallTag, Comment, RecordingState, Tag

MAX_COMMENT = 4000
MAX_TAG = 50
MAX_OFFSET_INPUT = 32
# A comment pinned a hair past the end (the player's clock runs a little ahead) is still fine.
OFFSET_SLACK = 0.5

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CLOCK = re.compile(r"(?:(\d{1,3}):)?(\d{1,3}):(\d{1,2}(?:\.\d{1,6})?)")
_SECONDS = re.compile(r"\d{1,6}(?:\.\d{1,6})?")


MAX_DB_ID = 2**63 - 1


def db_id(value: Any) -> int:
    """A positive id that fits a database integer; ValueError for anything else (including 10**30)."""
    number = int(str(value).strip())
    if not 0 < number <= MAX_DB_ID:
        raise ValueError(f"id out of range: {value!r}")
    return number


class AnnotationError(Exception):
    """Bad input for a tag or comment; ``str(exc)`` is shown to the user."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def clean_text(text: Any) -> str:
    """Normalised line ends, no control characters (PostgreSQL refuses NUL), trimmed."""
    value = str(text or "").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", value).strip()


def format_offset(seconds: float) -> str:
    """02:13, or 1:02:13 from an hour on."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def recording_duration(call: Call) -> float | None:
    rec = getattr(call, "recording", None) if hasattr(call, "recording") else None
    if rec is None or call.recording_state != RecordingState.READY:
        return None
    return float(rec.duration)


def parse_offset(raw: Any, duration: float | None) -> float | None:
    """A time in the recording from "02:13", "1:02:13" or seconds ("133.5"); None if blank."""
    text = unicodedata.normalize("NFKC", str(raw or "")).strip()
    if not text:
        return None
    if len(text) > MAX_OFFSET_INPUT:
        raise AnnotationError(_("再生位置は「02:13」のように分:秒で入力してください。"), field="offset")
    if text.startswith("-"):
        raise AnnotationError(_("再生位置は 00:00 以降を指定してください。"), field="offset")
    clock = _CLOCK.fullmatch(text)
    if clock:
        hours, minutes, secs = clock.groups()
        if float(secs) >= 60 or (hours is not None and int(minutes) >= 60):
            raise AnnotationError(_("再生位置の秒・分は 59 までで入力してください。"), field="offset")
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    elif _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        raise AnnotationError(_("再生位置は「02:13」のように分:秒で入力してください。"), field="offset")
    if not math.isfinite(seconds):
        raise AnnotationError(_("再生位置が正しくありません。"), field="offset")
    if duration is None:
        raise AnnotationError(
            _("この通話には再生できる録音がないため、再生位置は指定できません。"), field="offset"
        )
    if seconds > duration + OFFSET_SLACK:
        raise AnnotationError(
            _("再生位置 %(at)s が録音の長さ (%(length)s) を超えています。")
            % {"at": format_offset(seconds), "length": format_offset(duration)},
            field="offset",
        )
    return round(min(seconds, duration), 2)


def add_comment(call: Call, user: Any, text: Any, offset: Any = None, *, ip: str | None = None) -> Comment:
    body = clean_text(text)
    if not body:
        raise AnnotationError(_("コメントを入力してください。"), field="text")
    if len(body) > MAX_COMMENT:
        raise AnnotationError(
            _("コメントは %(max)s 文字以内で入力してください (現在 %(n)s 文字)。")
            % {"max": f"{MAX_COMMENT:,}", "n": f"{len(body):,}"},
            field="text",
        )
    seconds = parse_offset(offset, recording_duration(call))
    with transaction.atomic():
        comment = Comment.objects.create(call=call, author=user, text=body, offset=seconds)
        record(str(Action.COMMENT), user=user, obj=call, ip=ip, op="add", comment=comment.pk, offset=seconds)
    return comment


def can_delete_comment(user: Any, comment: Comment) -> bool:
    return (comment.author_id is not None and comment.author_id == user.pk) or is_admin(user)


def delete_comment(call: Call, user: Any, comment_id: Any, *, ip: str | None = None) -> None:
    """Delete a comment of this call; Http404 if there is none or the user may not delete it."""
    try:
        comment = Comment.objects.get(call=call, pk=db_id(comment_id))
    except (Comment.DoesNotExist, ValueError, TypeError):
        raise Http404("comment not found") from None
    if not can_delete_comment(user, comment):
        raise Http404("comment not found")
    with transaction.atomic():
        record(
            str(Action.DELETE),
            user=user,
            obj=call,
            ip=ip,
            what="comment",
            comment=comment.pk,
            author=comment.author.get_username() if comment.author else "",
            created_at=comment.created_at.isoformat(),
            offset=comment.offset,
        )
        comment.delete()


def clean_tag_name(raw: Any) -> str:
    """NFKC (full-width Latin and half-width kana become one form), single spaces, bounded."""
    name = " ".join(unicodedata.normalize("NFKC", clean_text(raw)).split())
    if not name:
        raise AnnotationError(_("タグ名を入力してください。"), field="name")
    if len(name) > MAX_TAG:
        raise AnnotationError(
            _("タグ名は %(max)d 文字以内で入力してください。") % {"max": MAX_TAG}, field="name"
        )
    return name


def add_tag(
    call: Call, user: Any, *, tag_id: Any = None, name: Any = None, ip: str | None = None
) -> tuple[Tag, bool]:
    """Put a tag on the call, by id from the shared list or by name (created if new).

    Returns the tag and whether it was newly put on this call.
    """
    created_tag = False
    if name is not None and str(name).strip():
        clean = clean_tag_name(name)
        tag = Tag.objects.filter(name__iexact=clean).first()
        if tag is None:
            try:
                with transaction.atomic():
                    tag = Tag.objects.create(name=clean)
                    created_tag = True
            except IntegrityError:  # created by someone else a moment ago
                tag = Tag.objects.get(name=clean)
    elif tag_id is not None and str(tag_id).strip():
        try:
            tag = Tag.objects.get(pk=db_id(tag_id))
        except (Tag.DoesNotExist, ValueError):
            raise AnnotationError(_("指定されたタグが見つかりません。"), field="tag") from None
    else:
        raise AnnotationError(_("追加するタグを選ぶか、新しいタグ名を入力してください。"), field="name")
    with transaction.atomic():
        _link, added = CallTag.objects.get_or_create(call=call, tag=tag, defaults={"added_by": user})
        if added:
            record(str(Action.TAG), user=user, obj=call, ip=ip, op="add", tag=tag.name, new_tag=created_tag)
    return tag, added


def remove_tag(call: Call, user: Any, tag_id: Any, *, ip: str | None = None) -> Tag:
    try:
        link = CallTag.objects.select_related("tag").get(call=call, tag_id=db_id(tag_id))
    except (CallTag.DoesNotExist, ValueError, TypeError):
        raise AnnotationError(_("このタグは通話に付いていません。"), field="tag") from None
    with transaction.atomic():
        record(str(Action.TAG), user=user, obj=call, ip=ip, op="remove", tag=link.tag.name)
        link.delete()
    return link.tag
