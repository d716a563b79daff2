"""Filtering and keyset pagination of the call list.

Pagination is keyset ("cursor") pagination on ``(started_at, id)``, newest first, so pages stay
stable while calls keep arriving and cost the same at page 1 and page 10,000. The cursor is the
last row's ``(started_at, id)``, signed with the secret key: opaque to clients, and a tampered
or foreign cursor is a clear 400 rather than a surprise.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core import signing
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import ConfigDict

from callvault.apps.api.errors import bad_parameter
from callvault.apps.api.schemas import MAX_TAG
from callvault.apps.calls.models import Call, CallState, Direction, Participant, RecordingState
from callvault.phone import normalize

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_DURATION = 10_000_000.0
_CURSOR_SALT = "callvault.api.calls.cursor"
_NUMBER_CHARS = re.compile(r"[\s\-()./]")
_NUMBER = re.compile(r"\+?[0-9*#]+")
# ISO 8601 as people and programs write it: a date, or a date and time with optional seconds,
# fraction and offset (Z or ±hh:mm). Times without offset are in the installation's time zone.
ISO_MOMENT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}:?\d{2})?)?$"
CURSOR_PATTERN = r"^[A-Za-z0-9_:=-]+$"
# Text typed by people: no control characters (PostgreSQL cannot even compare a NUL).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
_DATE_HELP = "ISO 8601 の日付 (2026-11-27) または日時 (2026-11-27T14:05、2026-11-27T14:05:00+09:00)"


def _without_null(schema: dict[str, Any]) -> None:
    """An absent query parameter is absent, never ``null``: document each as its plain type."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            if len(rest) == 1:
                del prop["anyOf"]
                prop.update(rest[0])


class CallListParams(Schema):
    """Query parameters of ``GET /calls``; every one is optional."""

    model_config = ConfigDict(json_schema_extra=_without_null)

    from_: str | None = Field(
        None,
        alias="from",
        max_length=40,
        pattern=ISO_MOMENT,
        description=f"この日時以降に始まった通話。{_DATE_HELP}",
    )
    to: str | None = Field(
        None,
        max_length=40,
        pattern=ISO_MOMENT,
        description=f"この日時までに始まった通話。日付だけならその日の終わりまで。{_DATE_HELP}",
    )
    q: str | None = Field(
        None,
        max_length=100,
        pattern=PLAIN_TEXT,
        description="電話番号または名前。03-1234-5678、0312345678、+81312345678 は同じ番号として検索",
    )
    direction: Direction | None = None
    state: CallState | None = None
    recording_state: RecordingState | None = None
    team: int | None = Field(None, ge=1, le=2**53, description="チーム ID")
    agent: int | None = Field(None, ge=1, le=2**53, description="担当者のユーザー ID")
    tag: str | None = Field(None, max_length=MAX_TAG, pattern=PLAIN_TEXT, description="タグ名")
    min_duration: float | None = Field(
        None, ge=0, le=MAX_DURATION, allow_inf_nan=False, description="通話時間の下限 (秒)"
    )
    max_duration: float | None = Field(
        None, ge=0, le=MAX_DURATION, allow_inf_nan=False, description="通話時間の上限 (秒)"
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="1 ページの件数 (200 まで)")
    cursor: str | None = Field(
        None, max_length=300, pattern=CURSOR_PATTERN, description="前のページの next の値 (そのまま渡す)"
    )


@dataclass(frozen=True)
class Cursor:
    started_at: datetime
    id: uuid.UUID


def encode_cursor(call: Call) -> str:
    started = call.started_at.astimezone(UTC)
    return signing.Signer(salt=_CURSOR_SALT).sign_object([started.isoformat(), call.pk.hex])


def decode_cursor(value: str) -> Cursor:
    try:
        started, pk = signing.Signer(salt=_CURSOR_SALT).unsign_object(value)
        cursor = Cursor(datetime.fromisoformat(started), uuid.UUID(hex=pk))
    except (signing.BadSignature, ValueError, TypeError, AttributeError):
        raise bad_parameter(
            "cursor", _("cursor が正しくありません。前の応答の next の値をそのまま指定してください。")
        ) from None
    if cursor.started_at.tzinfo is None:
        raise bad_parameter("cursor", _("cursor が正しくありません。"))
    return cursor


def parse_moment(param: str, value: str, *, end_of_day: bool) -> tuple[datetime, bool]:
    """A date or datetime in ISO 8601 -> (aware datetime, was_date_only).

    Times without an offset are in the installation's time zone. A date alone means the start of
    that day, or with ``end_of_day`` the start of the next day (so ``to=2026-11-27`` includes all
    of the 27th).
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            return timezone.make_aware(datetime.combine(day, time.min)), True
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        if moment.tzinfo is None:
            moment = timezone.make_aware(moment)
        return moment, False
    except (ValueError, OverflowError):
        raise bad_parameter(
            param,
            _("%(param)s は ISO 8601 の日付 (2026-11-27) または日時 (2026-11-27T14:05) で指定してください。")
            % {"param": param},
        ) from None


def number_variants(q: str) -> list[str] | None:
    """The stored forms a typed number can take, or None if ``q`` is not a number.

    ``03-1234-5678``, ``０３－１２３４－５６７８`` and ``0312345678`` all look for
    ``+81312345678``; a partial ``0312`` also finds ``+81312...``; ``201`` finds the extension.
    """
    compact = _NUMBER_CHARS.sub("", q)
    if not _NUMBER.fullmatch(compact):
        return None
    variants = {compact}
    e164 = normalize(compact)
    if e164:
        variants.add(e164)
    if compact.startswith("0") and not compact.startswith("00") and len(compact) > 1:
        variants.add("+81" + compact[1:])
    return sorted(variants)


def search_q(q: str) -> Q:
    text = unicodedata.normalize("NFKC", q).strip()
    if not text:
        return Q()
    variants = number_variants(text)
    if variants is not None:
        cond = Q()
        for v in variants:
            cond |= Q(caller_number__contains=v) | Q(callee_number__contains=v)
        participant_cond = Q()
        for v in variants:
            participant_cond |= Q(number__contains=v)
        cond |= Q(Exists(Participant.objects.filter(participant_cond, call=OuterRef("pk"))))
        return cond
    return (
        Q(caller_name__icontains=text)
        | Q(callee_name__icontains=text)
        | Q(Exists(Participant.objects.filter(call=OuterRef("pk"), display_name__icontains=text)))
    )


def apply_filters(qs: QuerySet[Call], params: CallListParams) -> QuerySet[Call]:
    """Narrow a list the user may see; raise a 400 ApiError naming the bad parameter."""
    start = end = None
    end_exclusive = False
    if params.from_:
        start, _date_only = parse_moment("from", params.from_, end_of_day=False)
        qs = qs.filter(started_at__gte=start)
    if params.to:
        end, end_exclusive = parse_moment("to", params.to, end_of_day=True)
        qs = qs.filter(started_at__lt=end) if end_exclusive else qs.filter(started_at__lte=end)
    if start is not None and end is not None and (start >= end if end_exclusive else start > end):
        raise bad_parameter("to", _("to は from 以降の日時にしてください。"))
    if params.q:
        qs = qs.filter(search_q(params.q))
    if params.direction:
        qs = qs.filter(direction=params.direction)
    if params.state:
        qs = qs.filter(state=params.state)
    if params.recording_state:
        qs = qs.filter(recording_state=params.recording_state)
    if params.team is not None:
        qs = qs.filter(team_id=params.team)
    if params.agent is not None:
        qs = qs.filter(agent_id=params.agent)
    if params.tag:
        qs = qs.filter(call_tags__tag__name=params.tag.strip())
    if (
        params.min_duration is not None
        and params.max_duration is not None
        and params.min_duration > params.max_duration
    ):
        raise bad_parameter("max_duration", _("max_duration は min_duration 以上にしてください。"))
    if params.min_duration is not None:
        qs = qs.filter(duration__gte=params.min_duration)
    if params.max_duration is not None:
        qs = qs.filter(duration__lte=params.max_duration)
    return qs


def page(qs: QuerySet[Call], params: CallListParams) -> tuple[list[Call], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last one)."""
    if params.cursor:
        cur = decode_cursor(params.cursor)
        qs = qs.filter(Q(started_at__lt=cur.started_at) | Q(started_at=cur.started_at, id__lt=cur.id))
    rows: list[Call] = list(qs.order_by("-started_at", "-id")[: params.limit + 1])
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return rows, encode_cursor(rows[-1]) if more and rows else None


def list_calls(base: QuerySet[Call], params: CallListParams) -> tuple[list[Call], str | None]:
    return page(apply_filters(base, params), params)
