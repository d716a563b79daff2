"""The calls list: filters, keyset pagination, rows for the page, the live updates and CSV.

Everything starts from :func:`callvault.apps.accounts.access.visible_calls`; filters only
narrow it. Pages are cut with a keyset on ``(started_at, id)`` (newest first), never OFFSET,
so page 20,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import csv
import functools
import importlib
import io
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html import escape as html_escape
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.models import Exists, Max, Min, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from callvault import phone
from callvault.apps.accounts import access
from callvault.apps.accounts.models import Team, UserRole
from callvault.apps.calls.models import (
    Call,
    CallState,
    CallTag,
    Direction,
    RecordingState,
    Tag,
)
from callvault.apps.web import format as fmt

log = logging.getLogger("callvault.web")

PAGE_SIZE = 50
EXPORT_MAX_ROWS = 100_000
EXPORT_CHUNK = 1000
MAX_QUERY_STRING = 4096
MAX_TAGS = 20
FILTER_FIELDS = (
    "q",
    "date_from",
    "date_to",
    "direction",
    "team",
    "agent",
    "dur_min",
    "dur_max",
    "tag",
    "state",
    "recording",
)


class BadFilter(ValueError):
    """A filter or cursor value that cannot be understood (answered with 400 and the message)."""


# --- filters -------------------------------------------------------------------------------

_DASHES = dict.fromkeys(map(ord, "‐‑‒–—―ー−ｰ"), "-")
_PHONEISH = re.compile(r"^[0-9+\-() .*#]+$")
_DURATION = re.compile(
    r"^\s*(?:(?P<h>\d+(?:\.\d+)?)\s*(?:時間|h|hr|hours?)\s*)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)\s*(?:分|m|min|minutes?)\s*)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)\s*(?:秒|s|sec|seconds?)\s*)?$",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"^\s*(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d{1,2})\s*$")
MAX_DURATION = 7 * 24 * 3600


def normalize_text(value: str) -> str:
    """Full-width digits and letters to half-width, the many Japanese dashes to ``-``."""
    return unicodedata.normalize("NFKC", value).translate(_DASHES).strip()


def parse_duration(value: str) -> float:
    """Seconds from ``3`` (minutes), ``3分``, ``90秒``, ``1分30秒``, ``1:30``, ``2m``, ``45s``."""
    text = normalize_text(value).replace(" ", "")
    if not text:
        raise ValueError("empty")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text) * 60
    elif m := _CLOCK.match(text):
        seconds = int(m["h"] or 0) * 3600 + int(m["m"]) * 60 + int(m["s"])
    elif (m := _DURATION.match(text)) and any(m.groupdict().values()):
        seconds = float(m["h"] or 0) * 3600 + float(m["m"] or 0) * 60 + float(m["s"] or 0)
    else:
        raise ValueError(text)
    if seconds > MAX_DURATION:
        raise ValueError(text)
    return seconds


class DurationInput(forms.CharField):
    default_error_messages = {
        "invalid": gettext_lazy("通話時間は「3」(分)、「3分」、「90秒」、「1:30」のように入力してください。"),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=20, required=False, **kwargs)

    def clean(self, value: Any) -> float | None:
        text = super().clean(value)  # the text's own checks (length) first
        if not text:
            return None
        try:
            return parse_duration(text)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class TeamChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class AgentChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return fmt.user_label(obj)


_DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"]
_CHOICE_ERROR = gettext_lazy("「%(value)s」は選択できません。一覧から選んでください。")


class CallFilterForm(forms.Form):
    q = forms.CharField(
        label=gettext_lazy("電話番号・名前"),
        max_length=100,
        required=False,
        error_messages={"max_length": gettext_lazy("検索語は100文字以内で入力してください。")},
    )
    date_from = forms.DateField(
        label=gettext_lazy("開始日"),
        required=False,
        input_formats=_DATE_FORMATS,
        error_messages={"invalid": gettext_lazy("開始日は 2026/11/27 のような日付で入力してください。")},
    )
    date_to = forms.DateField(
        label=gettext_lazy("終了日"),
        required=False,
        input_formats=_DATE_FORMATS,
        error_messages={"invalid": gettext_lazy("終了日は 2026/11/27 のような日付で入力してください。")},
    )
    direction = forms.ChoiceField(
        label=gettext_lazy("方向"),
        required=False,
        choices=[("", gettext_lazy("すべて")), *Direction.choices],
        error_messages={"invalid_choice": _CHOICE_ERROR},
    )
    team = TeamChoice(
        label=gettext_lazy("チーム"),
        required=False,
        queryset=Team.objects.none(),
        empty_label=gettext_lazy("すべて"),
        error_messages={"invalid_choice": gettext_lazy("指定されたチームは選択できません。")},
    )
    agent = AgentChoice(
        label=gettext_lazy("担当者"),
        required=False,
        queryset=get_user_model().objects.none(),
        empty_label=gettext_lazy("すべて"),
        error_messages={"invalid_choice": gettext_lazy("指定された担当者は選択できません。")},
    )
    dur_min = DurationInput(label=gettext_lazy("通話時間 (以上)"))
    dur_max = DurationInput(label=gettext_lazy("通話時間 (以下)"))
    tag = forms.ModelMultipleChoiceField(
        label=gettext_lazy("タグ"),
        required=False,
        queryset=Tag.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": gettext_lazy("指定されたタグは存在しません。"),
            "invalid_pk_value": gettext_lazy("指定されたタグは存在しません。"),
        },
    )
    state = forms.ChoiceField(
        label=gettext_lazy("通話状態"),
        required=False,
        choices=[("", gettext_lazy("すべて")), *CallState.choices],
        error_messages={"invalid_choice": _CHOICE_ERROR},
    )
    recording = forms.ChoiceField(
        label=gettext_lazy("録音"),
        required=False,
        choices=[
            ("", gettext_lazy("すべて")),
            *RecordingState.choices,
            ("flagged", gettext_lazy("欠落チェックで要確認")),
        ],
        error_messages={"invalid_choice": _CHOICE_ERROR},
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        teams = filter_teams(user)
        self.fields["team"].queryset = teams
        self.fields["agent"].queryset = filter_agents(user, teams)

    def clean_tag(self) -> list[Tag]:
        tags = list(self.cleaned_data.get("tag") or [])
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(_("タグは%(n)d個までしか指定できません。") % {"n": MAX_TAGS})
        return tags

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        for name in ("date_from", "date_to"):
            value = data.get(name)
            if value is not None and not (1970 <= value.year <= 2100):
                self.add_error(name, _("日付は1970年から2100年の間で指定してください。"))
        if start and end and start > end:
            self.add_error("date_to", _("終了日は開始日以降の日付にしてください。"))
        low, high = data.get("dur_min"), data.get("dur_max")
        if low is not None and high is not None and low > high:
            self.add_error("dur_max", _("通話時間の上限は下限以上にしてください。"))
        return data

    def active_count(self) -> int:
        if not self.is_bound or not self.is_valid():
            return 0
        return sum(1 for name in FILTER_FIELDS if self.cleaned_data.get(name) not in (None, "", []))

    def error_messages_flat(self) -> list[str]:
        out: list[str] = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            for error in errors:
                out.append(f"{label}: {error}" if label else str(error))
        return out


def filter_teams(user: Any) -> QuerySet[Team]:
    """Teams the user may filter by: all for admins, their own teams for members."""
    role = access.role_of(user)
    if role == UserRole.ADMIN:
        return Team.objects.order_by("name")
    if role != UserRole.MEMBER:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).distinct().order_by("name")


def filter_agents(user: Any, teams: QuerySet[Team]) -> QuerySet[Any]:
    User = get_user_model()
    role = access.role_of(user)
    if role == UserRole.ADMIN:
        base = User.objects.filter(memberships__isnull=False)
    elif role == UserRole.MEMBER:
        base = User.objects.filter(Q(memberships__team__in=teams) | Q(pk=user.pk))
    else:
        return User.objects.none()
    ids = base.values("pk")
    return User.objects.filter(pk__in=ids, is_active=True).select_related("profile").order_by("username")


def number_terms(text: str) -> list[str]:
    """What to look for in stored numbers (E.164 or extensions) for what a person typed.

    ``03-1234-5678``, ``0312345678``, ``+81 3 1234 5678`` and ``０３－１２３４－５６７８`` all find
    ``+81312345678``; ``1234-5678`` finds it too (partial); ``非通知`` finds withheld numbers.
    """
    clean = normalize_text(text)
    special = phone.normalize(clean)
    if special in (phone.WITHHELD, phone.PAYPHONE):
        return [special]
    if not _PHONEISH.match(clean) or not any(ch.isdigit() for ch in clean):
        return []
    digits = "".join(ch for ch in clean if ch.isdigit() or ch in "*#")
    terms = {digits}
    if special.startswith("+"):
        terms.add(special)
    if digits.startswith("0") and not digits.startswith("00") and len(digits) > 2:
        terms.add(digits[1:])  # the national trunk prefix is not part of E.164
    return sorted(terms)


def complete_number(text: str) -> str | None:
    """The E.164 form when the text is a whole, valid phone number (03-1234-5678), else None."""
    import phonenumbers

    e164 = phone.normalize(normalize_text(text))
    if not e164.startswith("+"):
        return None
    try:
        return e164 if phonenumbers.is_valid_number(phonenumbers.parse(e164)) else None
    except phonenumbers.NumberParseException:
        return None


# The FTS5 trigram table of SQLite (migration calls 0008); PostgreSQL's pg_trgm indexes need no help.
NUMBER_FTS = "calls_call_numbers"
NUMBER_FTS_TRIGGERS = ("calls_call_numbers_ai", "calls_call_numbers_au", "calls_call_numbers_ad")
NUMBER_FTS_MIGRATION = "callvault.apps.calls.migrations.0008_call_number_search_index"
_fts_ready: dict[str, bool] = {}


def number_index_state(alias: str) -> str:
    """``ready``, ``absent`` (not SQLite, or no FTS5 trigram support) or ``broken`` (triggers gone).

    SQLite drops a table's triggers with the table, and Django rebuilds ``calls_call`` that way for
    some schema changes: the index would then silently miss new calls.
    """
    conn = connections[alias]
    if conn.vendor != "sqlite":
        return "absent"
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE name IN (%s, %s, %s, %s)",
            [NUMBER_FTS, *NUMBER_FTS_TRIGGERS],
        )
        names = {row[0] for row in cursor.fetchall()}
    if NUMBER_FTS not in names:
        return "absent"
    return "ready" if names >= set(NUMBER_FTS_TRIGGERS) else "broken"


def _number_fts_ready(alias: str) -> bool:
    if alias not in _fts_ready:
        state = number_index_state(alias)
        if state == "broken":
            log.warning("the phone number index lost its triggers; number search scans until `migrate` runs")
        _fts_ready[alias] = state == "ready"
    return _fts_ready[alias]


def repair_number_index(using: str = "default") -> bool:
    """Rebuild the SQLite number index when its triggers are gone (after ``migrate``); True if rebuilt."""
    if number_index_state(using) != "broken":
        return False
    migration = importlib.import_module(NUMBER_FTS_MIGRATION)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for sql in migration.SQLITE_DROP + migration.SQLITE_CREATE:
            cursor.execute(sql)
    _fts_ready.pop(using, None)
    log.warning("rebuilt the phone number index (its triggers were gone)")
    return True


def number_candidates(terms: list[str], alias: str) -> Q:
    """Calls that may hold one of ``terms`` in a number, from the trigram index; ``Q()`` if none helps.

    Only narrows: the exact ``contains`` conditions stay. Trigrams need 3 characters, so a shorter
    term ("56") reads every call, as does a database without the index.
    """
    if not all(len(t) >= 3 for t in terms) or not _number_fts_ready(alias):
        return Q()
    # a term holding another one only finds calls the shorter one finds too; and the longer ones
    # are the costly ones ("+8112345678" reads the "+81" trigram of every call)
    needed = [t for t in terms if not any(o != t and o in t for o in terms)]
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in needed)
    sql = (
        "SELECT call_id FROM calls_call_numbers_map WHERE rowid IN "
        "(SELECT rowid FROM calls_call_numbers WHERE calls_call_numbers MATCH %s)"
    )
    return Q(id__in=RawSQL(sql, [match]))  # noqa: S611 - constant SQL, the search text is a parameter


def is_number_search(data: dict[str, Any]) -> bool:
    """Whether the filters look for a phone number: few calls match, found through the number indexes."""
    q = (data.get("q") or "").strip()
    return bool(q) and bool(number_terms(q))


def local_day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def apply_filters(qs: QuerySet[Call], data: dict[str, Any]) -> QuerySet[Call]:
    q = (data.get("q") or "").strip()
    if q:
        terms = number_terms(q)
        cond = Q()
        full = complete_number(q)
        if full:
            # a whole number: exact matches use the number indexes instead of scanning every call
            cond = Q(caller_number=full) | Q(callee_number=full)
            terms = [full]
        else:
            for term in terms:
                cond |= Q(caller_number__contains=term) | Q(callee_number__contains=term)
            if terms:
                cond &= number_candidates(terms, qs.db)
        if not terms:
            name = normalize_text(q)
            cond = Q(caller_name__icontains=name) | Q(callee_name__icontains=name)
            if name != q:
                cond |= Q(caller_name__icontains=q) | Q(callee_name__icontains=q)
        qs = qs.filter(cond)
    if data.get("date_from"):
        qs = qs.filter(started_at__gte=local_day_start(data["date_from"]))
    if data.get("date_to"):
        qs = qs.filter(started_at__lt=local_day_start(data["date_to"] + timedelta(days=1)))
    if data.get("direction"):
        qs = qs.filter(direction=data["direction"])
    if data.get("team"):
        qs = qs.filter(team=data["team"])
    if data.get("agent"):
        qs = qs.filter(agent=data["agent"])
    if data.get("dur_min") is not None:
        qs = qs.filter(duration__gte=data["dur_min"])
    if data.get("dur_max") is not None:
        qs = qs.filter(duration__lte=data["dur_max"])
    if data.get("tag"):
        tagged = CallTag.objects.filter(call=OuterRef("pk"), tag__in=data["tag"])
        qs = qs.filter(Exists(tagged))
    if data.get("state"):
        qs = qs.filter(state=data["state"])
    if data.get("recording") == "flagged":  # the recording completeness check flagged it
        qs = qs.filter(completeness="flagged")
    elif data.get("recording"):
        qs = qs.filter(recording_state=data["recording"])
    return qs


def check_query_string(query_string: str) -> None:
    if len(query_string) > MAX_QUERY_STRING:
        raise BadFilter(_("検索条件が長すぎます。条件を減らしてもう一度お試しください。"))


# --- keyset pagination ---------------------------------------------------------------------


def bad_page_message() -> str:
    return _("ページの指定が正しくありません。最初のページから表示し直してください。")


@dataclass(frozen=True)
class Cursor:
    started_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.started_at.isoformat()}|{self.id.hex}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            if len(token) > 200:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, _sep, hex_id = raw.partition("|")
            started = parse_datetime(stamp)
            if started is None or started.tzinfo is None:
                raise ValueError("no time")
            return cls(started, uuid.UUID(hex=hex_id))
        except (ValueError, UnicodeDecodeError, TypeError):
            raise BadFilter(bad_page_message()) from None

    @classmethod
    def of(cls, call: Call | Mapping[str, Any]) -> Cursor:
        if isinstance(call, Mapping):
            return cls(call["started_at"], call["id"])
        return cls(call.started_at, call.id)


def older_than(cursor: Cursor) -> Q:
    """``(started_at, id) < cursor``, written so that the database seeks in the (started_at, id) index."""
    return Q(started_at__lte=cursor.started_at) & (Q(started_at__lt=cursor.started_at) | Q(id__lt=cursor.id))


def newer_than(cursor: Cursor) -> Q:
    """``(started_at, id) > cursor``."""
    return Q(started_at__gte=cursor.started_at) & (Q(started_at__gt=cursor.started_at) | Q(id__gt=cursor.id))


NEWEST_FIRST = ("-started_at", "-id")
OLDEST_FIRST = ("started_at", "id")


@dataclass
class Page:
    calls: list[dict[str, Any]]  # ROW_FIELDS of each call, with "tags"
    newer: Cursor | None = None  # show the page before (newer calls)
    older: Cursor | None = None  # show the page after (older calls)
    is_first: bool = True


# What a row shows, read as plain values: building model instances (a call, its team, its agent
# and the agent's profile per row) cost more CPU than the query itself.
ROW_FIELDS = (
    "id",
    "started_at",
    "ended_at",
    "direction",
    "caller_number",
    "caller_name",
    "callee_number",
    "callee_name",
    "duration",
    "state",
    "recording_state",
    "team_id",
    "team__name",
    "agent_id",
    "agent__username",
    "agent__profile__display_name",
)


def attach_tags(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's tags as ``(name, color)`` in name order, read in one query for all rows."""
    by_call: dict[Any, list[tuple[str, str]]] = {}
    for row in rows:
        row["tags"] = by_call.setdefault(row["id"], [])
    if rows:
        tagged = (
            CallTag.objects.filter(call_id__in=list(by_call))
            .order_by("tag__name", "tag_id")
            .values_list("call_id", "tag__name", "tag__color")
        )
        for call_id, name, color in tagged:
            by_call[call_id].append((name, color))
    return rows


def display_values(qs: QuerySet[Call]) -> list[dict[str, Any]]:
    """What rows show of every call in ``qs`` (use it on small, already cut querysets)."""
    return attach_tags(list(qs.values(*ROW_FIELDS)))


def take_for_display(
    qs: QuerySet[Call],
    n: int,
    *,
    older: Cursor | None = None,
    newer: Cursor | None = None,
    windowed: bool = True,
) -> list[dict[str, Any]]:
    """:func:`take` with what rows show (ROW_FIELDS and the tags), as values, not model instances."""
    return attach_tags(take(qs.values(*ROW_FIELDS), n, older=older, newer=newer, windowed=windowed))


# Time windows tried before reading without a bound. With the (team, started_at, id) and
# (agent, started_at, id) indexes, a page of a team's calls reads about one window of that
# team's index instead of all its calls (SQLite sorts every row an OR of teams and agent matches).
WINDOWS = (timedelta(days=1), timedelta(days=8), timedelta(days=64), timedelta(days=512))


def take(
    qs: QuerySet[Any],
    n: int,
    *,
    older: Cursor | None = None,
    newer: Cursor | None = None,
    windowed: bool = True,
) -> list[Any]:
    """The first ``n`` calls of ``qs`` newest first (after ``older``), or oldest first (after ``newer``).

    ``windowed=False`` when few calls match through another index (a number search): a time window
    would only make the database read the newest calls one by one instead of using that index.
    """
    if not windowed:
        if newer is not None:
            return list(qs.filter(newer_than(newer)).order_by(*OLDEST_FIRST)[:n])
        return list((qs.filter(older_than(older)) if older else qs).order_by(*NEWEST_FIRST)[:n])
    if newer is not None:
        anchor: datetime | None = newer.started_at
        qs, order, sign = qs.filter(newer_than(newer)), OLDEST_FIRST, 1
    else:
        anchor = older.started_at if older is not None else Call.objects.aggregate(m=Max("started_at"))["m"]
        qs, order, sign = (qs.filter(older_than(older)) if older else qs), NEWEST_FIRST, -1
    if anchor is None:
        return []
    edge: datetime | None = None  # the oldest (or newest) call there is, looked up when needed
    for window in WINDOWS:
        limit = anchor + sign * window
        bound = {"started_at__lte" if sign > 0 else "started_at__gte": limit}
        rows = list(qs.filter(**bound).order_by(*order)[:n])
        if len(rows) >= n:  # every call outside the window comes after these
            return rows
        if edge is None:
            edge = Call.objects.aggregate(m=Max("started_at") if sign > 0 else Min("started_at"))["m"]
        if edge is None or (limit >= edge if sign > 0 else limit <= edge):
            return rows  # the window already reaches past every call
    return list(qs.order_by(*order)[:n])


def page_of(
    qs: QuerySet[Call], *, after: str = "", before: str = "", size: int = PAGE_SIZE, windowed: bool = True
) -> Page:
    """One page of ``qs`` newest first: after a cursor (older calls), or before one (newer)."""
    if after and before:
        raise BadFilter(bad_page_message())
    if before:
        rows = take_for_display(qs, size + 1, newer=Cursor.decode(before), windowed=windowed)
        if len(rows) <= size:  # back at the top: the first page, full and with the newest calls
            return page_of(qs, size=size, windowed=windowed)
        rows = rows[:size]
        rows.reverse()
        return Page(calls=rows, newer=Cursor.of(rows[0]), older=Cursor.of(rows[-1]), is_first=False)
    cursor = Cursor.decode(after) if after else None
    rows = take_for_display(qs, size + 1, older=cursor, windowed=windowed)
    more_older = len(rows) > size
    rows = rows[:size]
    return Page(
        calls=rows,
        newer=Cursor.of(rows[0]) if cursor is not None and rows else None,
        older=Cursor.of(rows[-1]) if more_older else None,
        is_first=cursor is None,
    )


# --- rows ------------------------------------------------------------------------------------

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SVG = (
    '<svg width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" '
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{}</svg>'
)
DIRECTION_ICONS = {
    "in": _SVG.format('<path d="M17 7 7 17"/><path d="M16 17H7V8"/>'),
    "out": _SVG.format('<path d="M7 17 17 7"/><path d="M8 7h9v9"/>'),
    "internal": _SVG.format(
        '<path d="M4 8h14"/><path d="m14 4 4 4-4 4"/><path d="M20 16H6"/><path d="m10 12-4 4 4 4"/>'
    ),
    "unknown": _SVG.format('<circle cx="12" cy="12" r="8"/>'),
}
STATE_BADGES = {
    "ringing": "badge-info badge-pulse",
    "active": "badge-live",
    "cancelled": "badge-warning",
    "interrupted": "badge-warning",
    "failed": "badge-danger",
}
RECORDING_BADGES = {
    "ready": "badge-success",
    "recording": "badge-info",
    "pending": "badge-info",
    "processing": "badge-info",
    "failed": "badge-danger",
    "none": "badge-neutral",
}
_ZERO_ID = str(uuid.UUID(int=0))


@dataclass
class TagView:
    name: str
    color: str


@dataclass
class Row:
    """A call as the list shows it (also the live row and a CSV line)."""

    id: str
    url: str
    started: str
    started_iso: str
    direction: str
    direction_label: str
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str
    agent: str
    team: str
    duration: str
    duration_seconds: float | None
    state: str
    state_label: str
    recording_state: str
    recording_label: str
    tags: list[TagView] = field(default_factory=list)

    @property
    def is_live(self) -> bool:
        return self.state in (CallState.RINGING, CallState.ACTIVE)

    @property
    def direction_icon(self) -> str:
        return DIRECTION_ICONS.get(self.direction, DIRECTION_ICONS["unknown"])

    @property
    def badges(self) -> list[tuple[str, str]]:
        """(css class, label) of the state badges: the call's state unless plainly finished, the recording."""
        out: list[tuple[str, str]] = []
        state_class = STATE_BADGES.get(self.state)
        if state_class:
            out.append((state_class, self.state_label))
        if not (self.recording_state == RecordingState.RECORDING and self.is_live):
            out.append((RECORDING_BADGES.get(self.recording_state, "badge-neutral"), self.recording_label))
        return out

    @property
    def _outbound(self) -> bool:
        return self.direction == Direction.OUTBOUND

    @property
    def other_name(self) -> str:
        """The party on the other side (the customer): the caller, or the callee of outbound calls."""
        return self.callee_name if self._outbound else self.caller_name

    @property
    def other_number(self) -> str:
        return self.callee_number if self._outbound else self.caller_number

    @property
    def own_name(self) -> str:
        """Our side: the agent, else the name the PBX gave for the extension."""
        return self.agent or (self.caller_name if self._outbound else self.callee_name)

    @property
    def own_number(self) -> str:
        return self.caller_number if self._outbound else self.callee_number


def call_url_pattern() -> str:
    """The call page URL with ``00000000-0000-0000-0000-000000000000`` in place of the id."""
    zero = uuid.UUID(int=0)
    try:
        return reverse("web:call", args=[zero])
    except NoReverseMatch:  # the call page is not there (yet)
        return f"/calls/{zero}/"


@functools.lru_cache(maxsize=16)
def _labels(language: str | None) -> dict[str, dict[str, str]]:
    """The choice labels in one language (translating them per row is slow for big exports)."""
    with translation.override(language):
        return {
            "direction": {str(v): str(label) for v, label in Direction.choices},
            "state": {str(v): str(label) for v, label in CallState.choices},
            "recording": {str(v): str(label) for v, label in RecordingState.choices},
            "text": {"unknown": _("不明")},
        }


class RowMaker:
    """Turns :data:`ROW_FIELDS` values into :class:`Row` s, with what every row shares looked up once."""

    def __init__(self, url_pattern: str | None = None) -> None:
        self.language = translation.get_language()
        self.labels = _labels(self.language)
        self.pattern = url_pattern or call_url_pattern()
        self.tz = timezone.get_current_timezone()

    def __call__(self, call: Mapping[str, Any]) -> Row:
        labels = self.labels
        call_id = str(call["id"])
        started = call["started_at"].astimezone(self.tz)
        agent = ""
        if call["agent_id"]:
            agent = call["agent__profile__display_name"] or call["agent__username"] or ""
        direction, state, rstate = call["direction"], call["state"], call["recording_state"]
        return Row(
            id=call_id,
            url=self.pattern.replace(_ZERO_ID, call_id),
            started=started.strftime("%Y/%m/%d %H:%M"),
            started_iso=started.isoformat(),
            direction=direction,
            direction_label=labels["direction"].get(direction, direction),
            caller_number=fmt.number(call["caller_number"], self.language),
            caller_name=call["caller_name"],
            callee_number=fmt.number(call["callee_number"], self.language),
            callee_name=call["callee_name"],
            agent=agent,
            team=(call["team__name"] or "") if call["team_id"] else "",
            duration="" if state == CallState.CANCELLED else fmt.duration(call["duration"], self.language),
            duration_seconds=call["duration"],
            state=state,
            state_label=labels["state"].get(state, state),
            recording_state=rstate,
            recording_label=labels["recording"].get(rstate, rstate),
            tags=[
                TagView(name, color if _HEX_COLOR.match(color or "") else "#6b7280")
                for name, color in call.get("tags", ())
            ],
        )

    def html(self, row: Row) -> str:
        """The row's ``<tr>``: the list page's rows and the live row endpoint.

        Written here rather than as a template included per row: a Django template costs a few
        microseconds per node, and 50 rows of ~40 nodes were a third of the page's CPU.
        Every value is escaped; only the fixed icons are markup.
        """
        e = html_escape
        url = e(row.url)
        other_name, other_number = row.other_name, row.other_number
        if other_name:
            other = f'<strong>{e(other_name)}</strong><span class="num">{e(other_number or "—")}</span>'
        else:
            shown = e(other_number) if other_number else e(self.labels["text"]["unknown"])
            other = f'<strong class="num">{shown}</strong>'
        own_name, own_number = row.own_name, row.own_number
        if own_name:
            own = f"<strong>{e(own_name)}</strong>"
            if own_number:
                own += f'<span class="num">{e(own_number)}</span>'
        else:
            own = f'<strong class="num">{e(own_number or "—")}</strong>'
        duration = e(row.duration) if row.duration else '<span class="muted">—</span>'
        badges = "".join(f'<span class="badge {css}">{e(label)}</span>' for css, label in row.badges)
        tags = ""
        if row.tags:
            tags = (
                '<span class="cluster">'
                + "".join(
                    f'<span class="tag" style="--tag-color: {e(t.color)}">{e(t.name)}</span>'
                    for t in row.tags
                )
                + "</span>"
            )
        return (
            f'<tr data-call-id="{e(row.id)}" data-href="{url}" data-state="{e(row.state)}">\n'
            f'  <td class="c-time num"><a href="{url}"><time datetime="{e(row.started_iso)}">'
            f"{e(row.started)}</time></a></td>\n"
            f'  <td class="c-dir"><span class="dir dir-{e(row.direction)}">{row.direction_icon}'
            f"{e(row.direction_label)}</span></td>\n"
            f'  <td class="c-from"><span class="party">{other}</span></td>\n'
            f'  <td class="c-to"><span class="party">{own}</span></td>\n'
            f'  <td class="c-dur num">{duration}</td>\n'
            f'  <td class="c-team">{e(row.team or "—")}</td>\n'
            f'  <td class="c-state"><span class="cluster">{badges}</span></td>\n'
            f'  <td class="c-tags">{tags}</td>\n'
            "</tr>\n"
        )


def row_of(call: Mapping[str, Any], url_pattern: str | None = None) -> Row:
    """One row from :data:`ROW_FIELDS` values (see :func:`display_values`)."""
    return RowMaker(url_pattern)(call)


def rows_of(calls: list[dict[str, Any]]) -> list[Row]:
    make = RowMaker()
    return [make(c) for c in calls]


def rows_html(rows: list[Row]) -> SafeString:
    """The ``<tr>`` s of ``rows`` (escaped values), ready for the page."""
    make = RowMaker()
    return mark_safe("".join(make.html(r) for r in rows))  # noqa: S308 - built from escaped values


# --- export --------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
EXPORT_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "cp932": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
}


def exportable_calls(user: Any) -> QuerySet[Call]:
    """The calls a user may export: all for admins, the supervised teams' calls for supervisors."""
    qs = access.visible_calls(user)
    if access.is_admin(user):
        return qs
    if not access.can_export(user):
        return qs.none()
    return qs.filter(team_id__in=access.supervised_team_ids(user))


def safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas: text starting with = + - @ tab or CR gets an apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_header() -> list[str]:
    return [
        _("通話ID"),
        _("開始日時"),
        _("終了日時"),
        _("方向"),
        _("発信者番号"),
        _("発信者名"),
        _("着信者番号"),
        _("着信者名"),
        _("担当者"),
        _("チーム"),
        _("通話時間(秒)"),
        _("通話時間"),
        _("通話状態"),
        _("録音"),
        _("タグ"),
    ]


def export_line(call: Mapping[str, Any], make: RowMaker | None = None) -> list[Any]:
    row = (make or RowMaker("/"))(call)
    return [
        row.id,
        fmt.local_datetime(call["started_at"], seconds=True),
        fmt.local_datetime(call["ended_at"], seconds=True),
        row.direction_label,
        row.caller_number,
        row.caller_name,
        row.callee_number,
        row.callee_name,
        row.agent,
        row.team,
        round(call["duration"]) if call["duration"] is not None else "",
        row.duration,
        row.state_label,
        row.recording_label,
        " / ".join(t.name for t in row.tags),
    ]


def csv_text(lines: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for line in lines:
        writer.writerow([safe_cell(v) for v in line])
    return buf.getvalue()


@dataclass
class Export:
    """A bounded export of ``qs``: counted first (for the audit), then read in keyset chunks."""

    qs: QuerySet[Call]
    encoding: str = "utf-8"
    limit: int = EXPORT_MAX_ROWS
    chunk: int = EXPORT_CHUNK
    rows: int = 0
    truncated: bool = False
    _cursor: Cursor | None = None
    _sent: int = 0
    _started: bool = False
    _done: bool = False

    def __post_init__(self) -> None:
        # Newer calls arriving while the file is written are not part of it: the count the
        # audit log records and the lines written stay the same.
        self.qs = self.qs.filter(started_at__lte=timezone.now())

    def count(self) -> int:
        total = self.qs.order_by()[: self.limit + 1].count()
        self.truncated = total > self.limit
        self.rows = min(total, self.limit)
        return self.rows

    def next_block(self) -> bytes | None:
        """The next piece of the file (header first, a note last if truncated); None when done."""
        if self._done:
            return None
        if not self._started:
            self._started = True
            text = csv_text([export_header()])
            if self.encoding == "utf-8":
                text = "\ufeff" + text
            return self._encode(text)
        want = min(self.chunk, self.limit - self._sent)
        calls = take_for_display(self.qs, want, older=self._cursor) if want > 0 else []
        if not calls:
            self._done = True
            if self.truncated:
                note = _(
                    "※ %(limit)s件を超えるため、新しい順に%(limit)s件だけを出力しました。"
                    "期間などの条件を絞り込んで、残りを出力してください。"
                ) % {"limit": f"{self.limit:,}"}
                return self._encode(csv_text([[note]]))
            return None
        self._cursor = Cursor.of(calls[-1])
        self._sent += len(calls)
        make = RowMaker("/")
        return self._encode(csv_text([export_line(c, make) for c in calls]))

    def _encode(self, text: str) -> bytes:
        return text.encode(self.encoding, errors="replace")

    def __iter__(self) -> Iterator[bytes]:
        while (block := self.next_block()) is not None:
            yield block


# --- the filter form's controls ----------------------------------------------------------------


def _select_html(name: str, choices: list[tuple[Any, Any]], value: str, invalid: bool) -> str:
    """A ``<select>`` as Django's Select widget writes it, without a template per option."""
    e = html_escape
    attrs = f' aria-invalid="true" aria-describedby="id_{name}_error"' if invalid else ""
    parts = [f'<select name="{name}"{attrs} id="id_{name}">\n']
    chosen = False
    for key, label in choices:
        key = "" if key is None else str(key)
        selected = not chosen and key == value
        chosen = chosen or selected
        parts.append(
            f'  <option value="{e(key)}"{" selected" if selected else ""}>{e(str(label))}</option>\n\n'
        )
    parts.append("</select>")
    return "".join(parts)


def _checkboxes_html(name: str, choices: list[tuple[Any, Any]], values: set[str]) -> str:
    e = html_escape
    return "".join(
        f'<label class="check"><input type="checkbox" name="{name}" value="{e(str(key))}" id="id_{name}_{i}"'
        f"{' checked' if str(key) in values else ''}>{e(str(label))}</label>"
        for i, (key, label) in enumerate(choices)
    )


def filter_controls(form: CallFilterForm) -> dict[str, Any]:
    """The filter form's select boxes and tag check boxes as HTML.

    Django renders a widget option by option through templates: with a few hundred agents to
    choose from that was a third of the list page's CPU. The choices are read as plain values
    (``values_list``) and written here the way Django's widgets write them.
    """
    data = form.data if form.is_bound else None
    errors = form.errors if form.is_bound else {}

    def value(name: str) -> str:
        v = data.get(name) if data is not None else None
        return "" if v is None else str(v)

    fields = form.fields
    out: dict[str, Any] = {}
    for name in ("direction", "state", "recording"):
        choices = [(k, label) for k, label in fields[name].choices]
        out[name] = mark_safe(_select_html(name, choices, value(name), name in errors))  # noqa: S308
    teams = [("", fields["team"].empty_label), *fields["team"].queryset.values_list("pk", "name")]
    out["team"] = mark_safe(_select_html("team", teams, value("team"), "team" in errors))  # noqa: S308
    agents = [("", fields["agent"].empty_label)] + [
        (pk, display or username)
        for pk, username, display in fields["agent"].queryset.values_list(
            "pk", "username", "profile__display_name"
        )
    ]
    out["agent"] = mark_safe(_select_html("agent", agents, value("agent"), "agent" in errors))  # noqa: S308
    chosen = {str(v) for v in data.getlist("tag")} if data is not None and hasattr(data, "getlist") else set()
    tags = list(fields["tag"].queryset.values_list("pk", "name"))
    out["tags"] = mark_safe(_checkboxes_html("tag", tags, chosen)) if tags else ""  # noqa: S308
    # the "more conditions" fold is open when one of its filters is given
    out["more_open"] = any(
        value(n) for n in ("team", "agent", "dur_min", "dur_max", "state", "recording")
    ) or bool(chosen)
    return out
