"""The audit log browser: filters, keyset pagination, chain verification, CSV export.

For admins and auditors (:func:`access.can_view_audit`); everyone else gets 404. Browsing is
not audited (it would flood the log); exports and chain verifications are.
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from callvault.apps.accounts.access import can_manage_customers, is_admin, visible_calls, visible_customers
from callvault.apps.accounts.models import TeamRole, UserRole
from callvault.apps.audit.models import Action, AuditEntry, ChainReport, record, verify_chain
from callvault.apps.web.views_admin import audit_viewer_required, client_ip
from callvault.phone import display

PAGE_SIZE = 50
MAX_PROBLEMS_SHOWN = 100
MAX_ID = 2**63 - 1
DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"]

# --- How entries read in Japanese -------------------------------------------------------------

OBJECT_LABELS = {
    "call": gettext_lazy("通話"),
    "user": gettext_lazy("ユーザー"),
    "team": gettext_lazy("チーム"),
    "line": gettext_lazy("回線"),
    "apitoken": gettext_lazy("APIトークン"),
    "recording": gettext_lazy("録音"),
    "comment": gettext_lazy("コメント"),
    "tag": gettext_lazy("タグ"),
    "auditentry": gettext_lazy("監査ログ"),
    "customer": gettext_lazy("顧客"),
    "numberlistentry": gettext_lazy("迷惑電話・要注意リスト"),
    "customfield": gettext_lazy("顧客のカスタム項目"),
    "customertag": gettext_lazy("顧客タグ"),
}
KEY_LABELS = {
    "change": gettext_lazy("内容"),
    "target": gettext_lazy("対象ユーザー"),
    "from": gettext_lazy("変更前"),
    "to": gettext_lazy("変更後"),
    "team": gettext_lazy("チーム"),
    "name": gettext_lazy("名前"),
    "owner": gettext_lazy("所有者"),
    "via": gettext_lazy("経路"),
    "count": gettext_lazy("件数"),
    "number": gettext_lazy("番号"),
    "label": gettext_lazy("名前"),
    "agent": gettext_lazy("担当者"),
    "fields": gettext_lazy("変更"),
    "share_calls": gettext_lazy("通話の共有"),
    "active": gettext_lazy("有効"),
    "tokens_revoked": gettext_lazy("無効にしたトークン"),
    "calls": gettext_lazy("通話数"),
    "rows": gettext_lazy("行数"),
    "filters": gettext_lazy("条件"),
    "kind": gettext_lazy("種類"),
    "ok": gettext_lazy("結果"),
    "entries": gettext_lazy("件数"),
    "problems": gettext_lazy("問題"),
    "display_name": gettext_lazy("表示名"),
    "extension": gettext_lazy("内線番号"),
    "seconds": gettext_lazy("秒"),
    "offset": gettext_lazy("位置(秒)"),
    "format": gettext_lazy("形式"),
    "reason": gettext_lazy("理由"),
    "username": gettext_lazy("ユーザー名"),
    "date_from": gettext_lazy("開始日"),
    "date_to": gettext_lazy("終了日"),
    "action": gettext_lazy("操作"),
    "object": gettext_lazy("対象ID"),
    "ip": gettext_lazy("IP"),
    "merged": gettext_lazy("統合した顧客"),
    "file": gettext_lazy("ファイル"),
    "encoding": gettext_lazy("文字コード"),
    "created": gettext_lazy("新規"),
    "updated": gettext_lazy("更新"),
    "unchanged": gettext_lazy("変更なし"),
    "numbers": gettext_lazy("電話番号"),
    "note": gettext_lazy("メモ"),
    "tags": gettext_lazy("タグ"),
    "page": gettext_lazy("ページ"),
}
HIDDEN_KEYS = {"team_id"}
CHANGE_LABELS = {
    "user_created": gettext_lazy("ユーザー作成"),
    "user_role": gettext_lazy("権限の変更"),
    "user_deactivated": gettext_lazy("ユーザーの無効化"),
    "user_reactivated": gettext_lazy("ユーザーの再有効化"),
    "user_updated": gettext_lazy("ユーザー情報の変更"),
    "password_reset": gettext_lazy("パスワードの再発行"),
    "password_changed": gettext_lazy("パスワードの変更"),
    "token_created": gettext_lazy("トークンの発行"),
    "token_revoked": gettext_lazy("トークンの無効化"),
    "team_created": gettext_lazy("チーム作成"),
    "team_updated": gettext_lazy("チームの変更"),
    "team_deleted": gettext_lazy("チーム削除"),
    "membership_added": gettext_lazy("チームに追加"),
    "membership_role": gettext_lazy("チームでの役割の変更"),
    "membership_removed": gettext_lazy("チームから外す"),
    "line_created": gettext_lazy("回線の登録"),
    "line_updated": gettext_lazy("回線の変更"),
    "line_deleted": gettext_lazy("回線の削除"),
    "calls_assigned": gettext_lazy("通話の割り当て"),
    "chain_verified": gettext_lazy("ハッシュチェーンの検証"),
    "audit_log": gettext_lazy("監査ログ"),
    "web": gettext_lazy("画面"),
    "command": gettext_lazy("コマンド"),
    "customer_created": gettext_lazy("顧客の登録"),
    "customer_updated": gettext_lazy("顧客情報の変更"),
    "customer_deleted": gettext_lazy("顧客の削除"),
    "customer_viewed": gettext_lazy("顧客カルテの閲覧"),
    "customer_list": gettext_lazy("顧客一覧・検索"),
    "customers_merged": gettext_lazy("顧客の統合"),
    "customers_imported": gettext_lazy("顧客のCSV取り込み"),
    "customers_exported": gettext_lazy("顧客のCSV出力"),
    "customer_note_added": gettext_lazy("対応メモの追加"),
    "customer_note_edited": gettext_lazy("対応メモの編集"),
    "number_list_added": gettext_lazy("迷惑電話・要注意リストに追加"),
    "number_list_removed": gettext_lazy("迷惑電話・要注意リストから削除"),
    "custom_field_created": gettext_lazy("カスタム項目の追加"),
    "custom_field_deleted": gettext_lazy("カスタム項目の削除"),
    "customer_tags_updated": gettext_lazy("警告タグの変更"),
    "caller_lookup": gettext_lazy("着信番号の照会"),
    "customer_notes_viewed": gettext_lazy("対応メモの閲覧"),
    "api": gettext_lazy("API"),
    "nuisance": gettext_lazy("迷惑電話"),
    "caution": gettext_lazy("要注意"),
}
ROLE_LABELS = {**dict(UserRole.choices), **dict(TeamRole.choices)}
MAX_VALUE = 200


def _value(key: str, value: Any) -> str:
    if key == "ok" and isinstance(value, bool):
        return _("OK (改ざんなし)") if value else _("問題あり")
    if value is None:
        return "—"
    if value is True:
        return _("はい")
    if value is False:
        return _("いいえ")
    if isinstance(value, str):
        if key in ("change", "kind", "via") and value in CHANGE_LABELS:
            return str(CHANGE_LABELS[value])
        if key in ("from", "to") and value in ROLE_LABELS:
            return str(ROLE_LABELS[value])
        text = value
    elif isinstance(value, list) and len(value) == 2 and key not in ("problems",):
        return f"{_value(key, value[0])} → {_value(key, value[1])}"
    elif isinstance(value, dict):
        text = "、".join(f"{KEY_LABELS.get(k, k)}: {_value(k, v)}" for k, v in value.items())
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"


def describe_detail(detail: Any) -> list[tuple[str, str]]:
    """The detail of an entry as (label, value) pairs in Japanese, known keys first."""
    if not isinstance(detail, dict):
        return [("", _value("", detail))] if detail else []
    pairs = []
    for key, value in detail.items():
        if key in HIDDEN_KEYS:
            continue
        pairs.append((str(KEY_LABELS.get(key, key)), _value(key, value)))
    return pairs


_PROBLEMS = [
    (
        re.compile(r"^entry (\d+): previous-hash link broken"),
        gettext_lazy(
            "記録 #%(a)s: 直前の記録とのつながりが壊れています (それより前の記録が削除・変更されています)"
        ),
    ),
    (
        re.compile(r"^entry (\d+): content does not match its hash"),
        gettext_lazy("記録 #%(a)s: 内容がハッシュ値と一致しません (記録が書き換えられています)"),
    ),
    (
        re.compile(r"^the newest entries after id (\d+) are missing \(head expects entry (\d+)\)"),
        gettext_lazy("記録 #%(a)s より新しい記録が失われています (最新は #%(b)s のはずです)"),
    ),
    (re.compile(r"^the chain head is missing"), gettext_lazy("チェーンの最新位置 (head) の記録がありません")),
]


def describe_problem(problem: str) -> str:
    """A problem reported by :func:`verify_chain`, in Japanese (the original when unknown)."""
    for pattern, text in _PROBLEMS:
        m = pattern.match(problem)
        if m:
            groups = m.groups()
            return str(text) % {"a": groups[0] if groups else "", "b": groups[1] if len(groups) > 1 else ""}
    return problem


# --- Filters and pages ------------------------------------------------------------------------


class AuditFilterForm(forms.Form):
    date_from = forms.DateField(
        label=gettext_lazy("開始日"),
        required=False,
        input_formats=DATE_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    date_to = forms.DateField(
        label=gettext_lazy("終了日"),
        required=False,
        input_formats=DATE_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    user = forms.CharField(
        label=gettext_lazy("ユーザー"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"list": "audit-users", "autocomplete": "off"}),
    )
    action = forms.ChoiceField(
        label=gettext_lazy("操作"), required=False, choices=[("", gettext_lazy("すべて")), *Action.choices]
    )
    object = forms.CharField(
        label=gettext_lazy("対象ID (通話IDなど)"),
        max_length=64,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    ip = forms.GenericIPAddressField(label=gettext_lazy("IPアドレス"), required=False, unpack_ipv4=True)
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID, widget=forms.HiddenInput)

    FILTERS = ("date_from", "date_to", "user", "action", "object", "ip")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["date_from"].error_messages["invalid"] = _("日付は 2026/11/27 の形で入力してください。")
        self.fields["date_to"].error_messages["invalid"] = _("日付は 2026/11/27 の形で入力してください。")
        self.fields["ip"].error_messages["invalid"] = _(
            "IPアドレスの形式が正しくありません (例: 192.0.2.10)。"
        )
        self.fields["action"].error_messages["invalid_choice"] = _("操作の種類が正しくありません。")

    def clean_object(self) -> str:
        value = str(self.cleaned_data["object"]).strip()
        try:
            return str(uuid.UUID(value))  # a call id typed without or with dashes, any case
        except ValueError:
            return value

    def clean_user(self) -> str:
        return str(self.cleaned_data["user"]).strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("終了日は開始日以降の日付にしてください。"))
        return data

    def active_filters(self) -> dict[str, str]:
        """The filters in use, as text (for links, the export form and the audit detail)."""
        out: dict[str, str] = {}
        for name in self.FILTERS:
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                out[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return out


def filtered(form: AuditFilterForm) -> QuerySet[AuditEntry]:
    data = form.cleaned_data
    qs = AuditEntry.objects.all()
    tz = timezone.get_current_timezone()
    if data.get("date_from"):
        qs = qs.filter(at__gte=datetime.combine(data["date_from"], time.min, tzinfo=tz))
    if data.get("date_to"):
        qs = qs.filter(at__lt=datetime.combine(data["date_to"] + timedelta(days=1), time.min, tzinfo=tz))
    if data.get("user"):
        qs = qs.filter(username__iexact=data["user"])
    if data.get("action"):
        qs = qs.filter(action=data["action"])
    if data.get("object"):
        qs = qs.filter(object_id=data["object"])
    if data.get("ip"):
        qs = qs.filter(ip=data["ip"])
    return qs


@dataclass
class Row:
    entry: AuditEntry
    action_label: str
    object_label: str
    object_url: str
    object_title: str = ""
    detail: list[tuple[str, str]] = field(default_factory=list)


def _call_url(call_id: str) -> str:
    try:
        return reverse("web:call", args=[call_id])
    except NoReverseMatch:  # the call page is another UI area; its path is fixed
        return f"/calls/{call_id}/"


@dataclass
class _Lookups:
    """What a page of rows needs to name its objects, fetched once per page."""

    viewer_is_admin: bool
    usernames: dict[str, str]
    calls: dict[str, str]  # call id -> "2026/11/27 14:05 03-1234-5678 → 201", only calls the viewer may see
    customers: dict[str, str] = field(default_factory=dict)  # customer id -> name, only visible ones
    sees_customer_data: bool = False  # lists, imports, exports, number lists: admins and supervisors


def _lookups(entries: list[AuditEntry], viewer: Any) -> _Lookups:
    user_ids = {e.object_id for e in entries if e.object_type == "user" and e.object_id.isdigit()}
    call_ids = set()
    for e in entries:
        if e.object_type == "call":
            try:
                call_ids.add(uuid.UUID(e.object_id))
            except ValueError:
                continue
    usernames = {
        str(pk): name
        for pk, name in get_user_model()
        .objects.filter(pk__in=[int(i) for i in user_ids if len(i) <= 18])
        .values_list("pk", "username")
    }
    calls = {}
    for call in (
        visible_calls(viewer)
        .filter(pk__in=call_ids)
        .only("id", "started_at", "caller_number", "callee_number")
    ):
        when = timezone.localtime(call.started_at).strftime("%Y/%m/%d %H:%M")
        parties = f"{display(call.caller_number) or '?'} → {display(call.callee_number) or '?'}"
        calls[str(call.pk)] = f"{when} {parties}"
    customer_ids = [
        int(e.object_id)
        for e in entries
        if e.object_type == "customer" and e.object_id.isdigit() and len(e.object_id) <= 18
    ]
    customers = {
        str(pk): name
        for pk, name in visible_customers(viewer).filter(pk__in=customer_ids).values_list("pk", "name")
    }
    return _Lookups(
        viewer_is_admin=is_admin(viewer),
        usernames=usernames,
        calls=calls,
        customers=customers,
        sees_customer_data=can_manage_customers(viewer),
    )


# Detail keys that never carry personal data; for a call the viewer may not open, only these
# are shown (older entries may hold numbers, e.g. download file names, and cannot be rewritten).
SAFE_CALL_DETAIL_KEYS = frozenset(
    {"format", "sha256", "bytes", "range", "seconds", "reason", "count", "rows", "kind", "status"}
)
REDACTED = "[非表示]"


def redact_call_detail(detail: Any) -> Any:
    if not isinstance(detail, dict):
        return REDACTED if detail else detail
    return {k: (v if k in SAFE_CALL_DETAIL_KEYS else REDACTED) for k, v in detail.items()}


# Customer entries: the detail may hold names, numbers, note text and search words; viewers who may
# not see the customer (auditors, other teams) get only these keys.
SAFE_CUSTOMER_DETAIL_KEYS = (SAFE_CALL_DETAIL_KEYS - {"reason"}) | {
    "change", "via", "created", "updated", "unchanged", "encoding", "page", "fields", "note",
}  # fmt: skip
CUSTOMER_OBJECTS = frozenset({"customer", "numberlistentry"})


def redact_customer_detail(detail: Any) -> Any:
    if not isinstance(detail, dict):
        return REDACTED if detail else detail
    return {k: (v if k in SAFE_CUSTOMER_DETAIL_KEYS else REDACTED) for k, v in detail.items()}


def _customer_hidden(entry: AuditEntry, lookups: _Lookups) -> bool:
    if entry.object_type not in CUSTOMER_OBJECTS or lookups.viewer_is_admin:
        return False
    if entry.object_type == "customer" and entry.object_id:
        return entry.object_id not in lookups.customers
    return not lookups.sees_customer_data


def _row(entry: AuditEntry, lookups: _Lookups) -> Row:
    labels = dict(Action.choices)
    kind = entry.object_type
    label = url = title = ""
    if kind:
        name = str(OBJECT_LABELS.get(kind, kind))
        detail = entry.detail if isinstance(entry.detail, dict) else {}
        if kind == "call":
            title = entry.object_id
            seen = lookups.calls.get(entry.object_id)
            if seen is not None:  # only calls the viewer may open: auditors see ids, never numbers
                label, url = f"{name} {seen}", _call_url(entry.object_id)
            else:
                label = f"{name} {entry.object_id[:8]}…"
        elif kind == "user":
            who = lookups.usernames.get(entry.object_id) or detail.get("target") or f"#{entry.object_id}"
            label = f"{name} {who}"
            if lookups.viewer_is_admin and entry.object_id in lookups.usernames:
                url = reverse("web:admin_user", args=[int(entry.object_id)])
        elif kind in CUSTOMER_OBJECTS:
            seen = lookups.customers.get(entry.object_id)
            if seen is not None:
                label, url = f"{name} {seen}", reverse("customers:detail", args=[int(entry.object_id)])
            elif _customer_hidden(entry, lookups) or not entry.object_id:
                label = f"{name} #{entry.object_id}" if entry.object_id else name
            else:
                extra = detail.get("name") or detail.get("number") or ""
                label = f"{name} {extra}" if extra else f"{name} #{entry.object_id}"
        else:
            extra = detail.get("name") or detail.get("number") or ""
            label = (
                f"{name} {extra}" if extra else (f"{name} #{entry.object_id}" if entry.object_id else name)
            )
            if (
                kind == "team"
                and lookups.viewer_is_admin
                and entry.object_id.isdigit()
                and len(entry.object_id) <= 18
            ):
                url = reverse("web:admin_team", args=[int(entry.object_id)])
    return Row(
        entry=entry,
        action_label=str(labels.get(entry.action, entry.action)),
        object_label=label,
        object_url=url,
        object_title=title,
        detail=describe_detail(
            redact_call_detail(entry.detail)
            if kind == "call" and entry.object_id not in lookups.calls
            else redact_customer_detail(entry.detail)
            if _customer_hidden(entry, lookups)
            else entry.detail
        ),
    )


@dataclass
class Page:
    rows: list[Row]
    newer: int | None  # "after" cursor for the newer page, None on the newest page
    older: int | None  # "before" cursor for the older page, None on the oldest page


def page_of(base: QuerySet[AuditEntry], *, before: int | None, after: int | None, viewer: Any) -> Page:
    """One page, newest first, by id (keyset: stable while new entries arrive)."""
    entries: list[AuditEntry] = []
    has_newer = has_older = False
    if after is not None and before is None:
        entries = list(base.filter(id__gt=after).order_by("id")[: PAGE_SIZE + 1])
        has_newer = len(entries) > PAGE_SIZE
        entries = entries[:PAGE_SIZE][::-1]
        has_older = bool(entries) and base.filter(id__lt=entries[-1].pk).exists()
    if not entries:
        qs = base.filter(id__lt=before) if before is not None else base
        entries = list(qs.order_by("-id")[: PAGE_SIZE + 1])
        has_older = len(entries) > PAGE_SIZE
        entries = entries[:PAGE_SIZE]
        has_newer = bool(entries) and base.filter(id__gt=entries[0].pk).exists()
    lookups = _lookups(entries, viewer)
    return Page(
        rows=[_row(e, lookups) for e in entries],
        newer=entries[0].pk if entries and has_newer else None,
        older=entries[-1].pk if entries and has_older else None,
    )


def _usernames() -> list[str]:
    return list(get_user_model().objects.order_by("username").values_list("username", flat=True)[:500])


def _render_log(
    request: HttpRequest, form: AuditFilterForm, *, report: ChainReport | None = None, status: int = 200
) -> HttpResponse:
    page: Page | None = None
    filters: dict[str, str] = {}
    if form.is_valid():
        filters = form.active_filters()
        page = page_of(
            filtered(form),
            before=form.cleaned_data.get("before"),
            after=form.cleaned_data.get("after"),
            viewer=request.user,
        )
    else:
        status = 400
    problems = [describe_problem(p) for p in report.problems[:MAX_PROBLEMS_SHOWN]] if report else []
    return render(
        request,
        "web/audit/log.html",
        {
            "section": "audit",
            "perms_admin": is_admin(request.user),
            "form": form,
            "page": page,
            "filters": filters,
            "filter_query": urlencode(filters),
            "paged": bool(
                form.is_valid() and (form.cleaned_data.get("before") or form.cleaned_data.get("after"))
            ),
            "usernames": _usernames(),
            "report": report,
            "problems": problems,
            "more_problems": max(0, len(report.problems) - MAX_PROBLEMS_SHOWN) if report else 0,
        },
        status=status,
    )


@audit_viewer_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    return _render_log(request, AuditFilterForm(request.GET))


@audit_viewer_required
@require_POST
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Recompute the whole chain and show the result plainly (the check itself is recorded)."""
    report = verify_chain()
    record(
        "view",
        user=request.user,
        ip=client_ip(request),
        object_type="auditentry",
        kind="chain_verified",
        ok=report.ok,
        entries=report.entries,
        problems=len(report.problems),
    )
    return _render_log(request, AuditFilterForm(request.POST), report=report)


CSV_HEADER = [
    "ID",
    "日時",
    "ユーザー",
    "操作",
    "操作コード",
    "対象種別",
    "対象ID",
    "IP",
    "詳細",
    "ハッシュ",
    "直前のハッシュ",
]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (user names can be typed by anyone)."""
    text = "" if value is None else str(value)
    if text[:1] in FORMULA_START:
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(qs: QuerySet[AuditEntry], viewer: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    labels = dict(Action.choices)
    tz = timezone.get_current_timezone()
    yield "\ufeff"  # BOM: Excel opens UTF-8 Japanese correctly
    yield writer.writerow(CSV_HEADER)
    admin = is_admin(viewer)
    for e in qs.order_by("-id").iterator(chunk_size=2000):
        # non-admins (auditors) see no call data: the detail of call entries is redacted,
        # so it no longer matches the entry's hash; admins get the raw, verifiable detail
        detail = e.detail if admin or e.object_type != "call" else redact_call_detail(e.detail)
        if not admin and e.object_type in CUSTOMER_OBJECTS:
            detail = redact_customer_detail(e.detail)  # auditors: no names, numbers or note text
        yield writer.writerow(
            [
                _cell(e.pk),
                _cell(e.at.astimezone(tz).strftime("%Y/%m/%d %H:%M:%S")),
                _cell(e.username),
                _cell(labels.get(e.action, e.action)),
                _cell(e.action),
                _cell(e.object_type),
                _cell(e.object_id),
                _cell(e.ip),
                _cell(json.dumps(detail, ensure_ascii=False, sort_keys=True)),
                _cell(e.hash),
                _cell(e.prev_hash),
            ]
        )


@audit_viewer_required
@require_POST
def audit_export(request: HttpRequest) -> HttpResponseBase:
    """The filtered log as CSV (UTF-8 with BOM); the export is audited with its filters."""
    form = AuditFilterForm(request.POST)
    if not form.is_valid():
        return _render_log(request, form)
    qs = filtered(form)
    rows = qs.count()
    record(
        "export",
        user=request.user,
        ip=client_ip(request),
        object_type="auditentry",
        kind="audit_log",
        format="csv",
        rows=rows,
        filters=form.active_filters(),
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(_csv_lines(qs, request.user), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="callvault-audit-{stamp}.csv"'
    return response
