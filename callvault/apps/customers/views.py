"""Customer pages (顧客): list and search, カルテ, forms, notes, merge, CSV, number lists, fields.

Thin views: every customer is fetched through ``accounts.access`` (404 outside the viewer's
reach), behaviour and audit entries are in ``customers.services`` and ``customers.csvio``.
Viewing a カルテ, searching the list and exporting are audited too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from callvault import phone
from callvault.apps.accounts import access
from callvault.apps.accounts.models import Team
from callvault.apps.audit.models import Action, record
from callvault.apps.audit.request import client_ip
from callvault.apps.calls.models import Call
from callvault.apps.customers import csvio, lookup, services
from callvault.apps.customers.forms import (
    CustomerForm,
    CustomFieldForm,
    ImportForm,
    NumberListForm,
    initial_for,
    phones_from_post,
)
from callvault.apps.customers.models import (
    Customer,
    CustomerImport,
    CustomerNote,
    CustomerTag,
    CustomField,
    ImportState,
    NumberListEntry,
    PhoneLabel,
)
from callvault.apps.customers.services import CustomerError, PhoneInput
from callvault.apps.customers.text import fold, looks_like_number, number_digits
from callvault.apps.web import format as fmt
from callvault.apps.web.views_admin import login_required

PAGE_SIZE = 50
CALLS_PAGE = 50
MAX_QUERY = 100
PREVIEW_ROWS = 500
EMPTY_PHONE_ROWS = 2
UPLOAD_OVERHEAD = 64 * 1024  # multipart headers and the other form fields


def _render(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """Render with what the customer sub-navigation needs."""
    user = request.user
    full = {"can_manage": access.can_manage_customers(user), "is_admin": access.is_admin(user), **context}
    return render(request, template, full, status=status)


def _team_in_reach(request: HttpRequest, key: str, team_ids: list[int] | None) -> None:
    """A posted team outside the user's teams is out of reach: 404, like any other object."""
    raw = str(request.POST.get(key, "")).strip()
    if raw and team_ids is not None and (not raw.isdigit() or int(raw) not in team_ids):
        raise Http404("team out of reach")


def _ip(request: HttpRequest) -> str | None:
    return client_ip(request)


def _page_number(request: HttpRequest, key: str = "page") -> int:
    try:
        return max(1, min(int(request.GET.get(key, "1")), 100_000))
    except ValueError:
        return 1


# --- list and search ------------------------------------------------------------------------------


def search(qs: QuerySet[Customer], q: str) -> QuerySet[Customer]:
    """Name, kana, company, email, address (NFKC, kana-folded substring) or a phone number."""
    if not q:
        return qs
    if looks_like_number(q):
        digits = number_digits(q)
        caller = phone.classify(q)
        by_number = Q(search_text__contains=digits)
        if caller.kind == phone.NORMAL and caller.number.startswith("+"):
            by_number |= Q(phones__number=caller.number)
        return qs.filter(by_number).distinct()
    return qs.filter(search_text__contains=fold(q))


@login_required
@require_http_methods(["GET"])
def customer_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    q = request.GET.get("q", "").strip()[:MAX_QUERY]
    team_ids = access.customer_team_ids(user)
    qs = search(access.visible_customers(user), q)
    team = request.GET.get("team", "")
    if team.isdigit():
        qs = qs.filter(owner_team_id=int(team))
    tag = request.GET.get("tag", "")
    if tag.isdigit():
        qs = qs.filter(tags__id=int(tag))
    page = _page_number(request)
    start = (page - 1) * PAGE_SIZE
    rows = list(
        qs.select_related("owner_team")
        .prefetch_related("phones", "tags")
        .order_by("kana", "name", "id")[start : start + PAGE_SIZE + 1]
    )
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    record(
        str(Action.VIEW),
        user=user,
        ip=_ip(request),
        object_type="customer",
        change="customer_list",
        filters={k: v for k, v in (("q", q), ("team", team), ("tag", tag)) if v},
        page=page,
        count=len(rows),
    )
    params = {k: v for k, v in (("q", q), ("team", team), ("tag", tag)) if v}
    return _render(
        request,
        "customers/list.html",
        {
            "rows": rows,
            "q": q,
            "team": team,
            "tag": tag,
            "teams": Team.objects.order_by("name")
            if team_ids is None
            else Team.objects.filter(pk__in=team_ids),
            "tags": CustomerTag.objects.order_by("name"),
            "page": page,
            "has_next": has_next,
            "params": params,
            "query": urlencode(params),
            "can_create": team_ids is None or bool(team_ids),
            "can_manage": access.can_manage_customers(user),
            "is_admin": access.is_admin(user),
            "sees_none": team_ids == [],
        },
    )


# --- the カルテ -------------------------------------------------------------------------------------


@dataclass
class CallRow:
    call: Call
    number: str
    direction_label: str
    agent: str
    team: str
    duration: str
    started: str
    tags: list[Any]
    comments: int
    summary: str


@dataclass
class Karte:
    customer: Customer
    phones: list[Any]
    warnings: list[dict[str, Any]]
    notes: list[Any]
    calls: list[CallRow]
    calls_total: int
    calls_more: bool
    custom: list[tuple[str, str]]
    can_edit: bool
    can_note: bool
    tags: list[Any] = field(default_factory=list)


def customer_calls(user: Any, numbers: list[str]) -> QuerySet[Call]:
    """Every call with one of the numbers, on any line and team, that the viewer may see."""
    if not numbers:
        return Call.objects.none()
    return access.visible_calls(user).filter(Q(caller_number__in=numbers) | Q(callee_number__in=numbers))


def _call_rows(calls: list[Call], numbers: set[str]) -> list[CallRow]:
    rows = []
    for c in calls:
        number = c.caller_number if c.caller_number in numbers else c.callee_number
        rows.append(
            CallRow(
                call=c,
                number=fmt.number(number),
                direction_label=c.get_direction_display(),
                agent=fmt.user_label(c.agent),
                team=c.team.name if c.team else "",
                duration=fmt.duration(c.duration),
                started=fmt.local_datetime(c.started_at),
                tags=[ct.tag for ct in c.call_tags.all()],
                comments=getattr(c, "n_comments", 0),
                summary=str(getattr(c, "summary", "") or ""),  # transcripts fill this later
            )
        )
    return rows


def _custom_display(customer: Customer) -> list[tuple[str, str]]:
    out = []
    values = customer.custom or {}
    for f in CustomField.objects.all():
        if f.key in values:
            value = values[f.key]
            if isinstance(value, bool):
                text = _("はい") if value else _("いいえ")
            elif f.field_type == "date":
                text = str(value).replace("-", "/")
            else:
                text = str(value)
            out.append((f.label, text))
    return out


def build_karte(user: Any, customer: Customer, *, calls_page: int = 1) -> Karte:
    phones = list(customer.phones.all())
    numbers = [p.number for p in phones]
    team_ids = access.customer_team_ids(user)
    warnings: list[dict[str, Any]] = []
    seen: set[int] = set()
    for p in phones:
        for f in lookup.number_flags(p.number, team_ids=team_ids):
            if f["id"] not in seen:
                seen.add(f["id"])
                warnings.append({**f, "number": phone.display(p.number)})
    base = customer_calls(user, numbers)
    limit = CALLS_PAGE * calls_page
    calls = list(
        base.select_related("agent__profile", "team")
        .prefetch_related("call_tags__tag")
        .annotate(n_comments=Count("comments"))
        .order_by("-started_at", "-id")[: limit + 1]
    )
    more = len(calls) > limit
    calls = calls[:limit]
    total = base.order_by().count() if more else len(calls)
    return Karte(
        customer=customer,
        phones=phones,
        warnings=warnings,
        notes=list(CustomerNote.objects.filter(customer=customer).select_related("author__profile")[:200]),
        calls=_call_rows(calls, set(numbers)),
        calls_total=total,
        calls_more=more,
        custom=_custom_display(customer),
        can_edit=access.can_edit_customer(user, customer),
        can_note=True,
        tags=list(customer.tags.all()),
    )


@login_required
@require_http_methods(["GET"])
def customer_detail(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = access.get_customer_for_user(request.user, customer_id)
    karte = build_karte(request.user, customer, calls_page=_page_number(request, "calls"))
    record(str(Action.VIEW), user=request.user, ip=_ip(request), obj=customer, change="customer_viewed")
    return _render(
        request,
        "customers/detail.html",
        {
            "k": karte,
            "customer": customer,
            "note_error": "",
            "next_calls": _page_number(request, "calls") + 1,
        },
    )


# --- create / edit / delete -----------------------------------------------------------------------


def _phone_rows(phones: list[PhoneInput]) -> list[dict[str, str]]:
    rows = [{"number": p.number, "label": p.label} for p in phones]
    rows += [
        {"number": "", "label": str(PhoneLabel.MOBILE if not rows else PhoneLabel.WORK)}
    ] * EMPTY_PHONE_ROWS
    return rows


def _form_page(
    request: HttpRequest,
    form: CustomerForm,
    phones: list[PhoneInput],
    *,
    customer: Customer | None,
    phone_error: str = "",
    from_call: str = "",
) -> HttpResponse:
    return _render(
        request,
        "customers/form.html",
        {
            "form": form,
            "customer": customer,
            "phone_rows": _phone_rows(phones),
            "phone_labels": PhoneLabel.choices,
            "phone_error": phone_error,
            "from_call": from_call,
        },
        status=400 if form.is_bound and (form.errors or phone_error) else 200,
    )


def _apply_error(form: CustomerForm, exc: CustomerError) -> str:
    """Put a service error on its field; phone errors are shown under the phone rows."""
    if exc.field == "phones":
        return exc.message
    target = exc.field if exc.field in form.fields else None
    form.add_error(target, exc.message)
    return ""


@login_required
@require_http_methods(["GET", "POST"])
def customer_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    team_ids = access.customer_team_ids(user)
    if team_ids == []:
        raise Http404("no team")
    custom_fields = list(CustomField.objects.all())
    kwargs: dict[str, Any] = {
        "team_ids": team_ids,
        "custom_fields": custom_fields,
        "team_required": team_ids is not None,
    }
    from_call = request.POST.get("from_call") or request.GET.get("call", "")
    if request.method == "POST":
        _team_in_reach(request, "owner_team", team_ids)
        form = CustomerForm(request.POST, **kwargs)
        phones = phones_from_post(request.POST)
        phone_error = ""
        if form.is_valid():
            try:
                inp = form.to_input(phones)
                if not access.can_create_customer(user, inp.owner_team_id):
                    raise Http404("team out of reach")
                customer = services.create_customer(inp, user=user, ip=_ip(request))
            except CustomerError as exc:
                phone_error = _apply_error(form, exc)
            else:
                messages.success(request, _("顧客「%(name)s」を登録しました。") % {"name": customer.name})
                return redirect("customers:detail", customer.pk)
        return _form_page(request, form, phones, customer=None, phone_error=phone_error, from_call=from_call)
    initial: dict[str, Any] = {}
    phones = []
    if from_call:
        call = access.get_call_for_user(user, from_call)
        party = _remote_party(call)
        if party is not None:
            number, name = party
            phones = [PhoneInput(phone.display(number), str(PhoneLabel.WORK))]
            initial["name"] = name
        if call.team_id is not None and (team_ids is None or call.team_id in team_ids):
            initial["owner_team"] = call.team_id
    else:
        raw = request.GET.get("number", "").strip()[:40]
        if raw:
            phones = [PhoneInput(raw, str(PhoneLabel.WORK))]
        initial["name"] = request.GET.get("name", "").strip()[:200]
    if "owner_team" not in initial and team_ids:
        initial["owner_team"] = team_ids[0]
    form = CustomerForm(initial=initial, **kwargs)
    return _form_page(request, form, phones, customer=None, from_call=from_call)


def _remote_party(call: Call) -> tuple[str, str] | None:
    """The outside party of a call (number, name): the caller of inbound calls, else the callee."""
    if call.direction == "out":
        number, name = call.callee_number, call.callee_name
    else:
        number, name = call.caller_number, call.caller_name
    caller = phone.classify(number)
    if caller.kind != phone.NORMAL or not caller.number.startswith("+"):
        return None
    return caller.number, name


def _editable(request: HttpRequest, customer_id: int) -> Customer:
    customer = access.get_customer_for_user(request.user, customer_id)
    if not access.can_edit_customer(request.user, customer):
        raise Http404("not editable")
    return customer


@login_required
@require_http_methods(["GET", "POST"])
def customer_edit(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = _editable(request, customer_id)
    user = request.user
    team_ids = access.customer_edit_team_ids(user)
    custom_fields = list(CustomField.objects.all())
    kwargs: dict[str, Any] = {
        "team_ids": team_ids,
        "custom_fields": custom_fields,
        "team_required": team_ids is not None,
    }
    if request.method == "POST":
        _team_in_reach(request, "owner_team", team_ids)
        form = CustomerForm(request.POST, **kwargs)
        phones = phones_from_post(request.POST)
        phone_error = ""
        if form.is_valid():
            try:
                services.update_customer(customer, form.to_input(phones), user=user, ip=_ip(request))
            except CustomerError as exc:
                phone_error = _apply_error(form, exc)
            else:
                messages.success(request, _("顧客情報を保存しました。"))
                return redirect("customers:detail", customer.pk)
        return _form_page(request, form, phones, customer=customer, phone_error=phone_error)
    form = CustomerForm(initial=initial_for(customer, custom_fields), **kwargs)
    phones = [PhoneInput(phone.display(p.number), p.label) for p in customer.phones.all()]
    return _form_page(request, form, phones, customer=customer)


@login_required
@require_POST
def customer_delete(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = _editable(request, customer_id)
    name = customer.name
    services.delete_customer(customer, user=request.user, ip=_ip(request))
    messages.success(request, _("顧客「%(name)s」を削除しました。") % {"name": name})
    return redirect("customers:list")


# --- notes --------------------------------------------------------------------------------------


@login_required
@require_POST
def note_add(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = access.get_customer_for_user(request.user, customer_id)
    try:
        services.add_note(customer, request.POST.get("text", ""), user=request.user, ip=_ip(request))
    except CustomerError as exc:
        karte = build_karte(request.user, customer)
        context = {
            "k": karte,
            "customer": customer,
            "note_error": exc.message,
            "note_text": request.POST.get("text", "")[:4000],
            "next_calls": 2,
        }
        return _render(request, "customers/detail.html", context, status=400)
    return redirect(reverse("customers:detail", args=[customer.pk]) + "#notes")


@login_required
@require_POST
def note_edit(request: HttpRequest, customer_id: int, note_id: int) -> HttpResponse:
    customer = access.get_customer_for_user(request.user, customer_id)
    note = CustomerNote.objects.filter(customer=customer, pk=note_id).first()
    if note is None:
        raise Http404("note not found")
    if note.author_id != request.user.pk and not access.can_edit_customer(request.user, customer):
        raise Http404("note not editable")
    try:
        services.edit_note(note, request.POST.get("text", ""), user=request.user, ip=_ip(request))
    except CustomerError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("customers:detail", args=[customer.pk]) + f"#note-{note.pk}")


# --- merge --------------------------------------------------------------------------------------


def merge_candidates(user: Any, customer: Customer, q: str) -> list[Customer]:
    """Likely duplicates the user may edit: same number, same name (folded) or same email; or a search."""
    editable = access.visible_customers(user)
    edit_teams = access.customer_edit_team_ids(user)
    if edit_teams is not None:
        editable = editable.filter(owner_team_id__in=edit_teams)
    editable = editable.exclude(pk=customer.pk)
    if q:
        found = search(editable, q)
    else:
        numbers = list(customer.phones.values_list("number", flat=True))
        cond = Q(phones__number__in=numbers) | Q(search_text__startswith=fold(customer.name))
        if customer.email:
            cond |= Q(email__iexact=customer.email)
        found = editable.filter(cond)
    return list(
        found.distinct()
        .prefetch_related("phones")
        .select_related("owner_team")
        .order_by("kana", "name", "id")[:50]
    )


@login_required
@require_http_methods(["GET", "POST"])
def customer_merge(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = _editable(request, customer_id)
    user = request.user
    error = ""
    if request.method == "POST":
        ids = {int(v) for v in request.POST.getlist("merge") if v.isdigit()} | {customer.pk}
        survivor_raw = request.POST.get("survivor", "")
        chosen: list[Customer] = []
        for pk in sorted(ids):
            try:
                other = access.get_customer_for_user(user, pk)
            except Http404:
                continue
            if access.can_edit_customer(user, other):
                chosen.append(other)
        survivor = next((c for c in chosen if str(c.pk) == survivor_raw), None)
        if len(chosen) < 2:
            error = _("統合する顧客を1件以上選んでください。")
        elif survivor is None:
            error = _("残す顧客を選んでください。")
        else:
            others = [c for c in chosen if c.pk != survivor.pk]
            services.merge_customers(survivor, others, user=user, ip=_ip(request))
            messages.success(
                request,
                _("%(n)d件の顧客を「%(name)s」に統合しました。") % {"n": len(others), "name": survivor.name},
            )
            return redirect("customers:detail", survivor.pk)
    q = request.GET.get("q", "").strip()[:MAX_QUERY]
    return _render(
        request,
        "customers/merge.html",
        {"customer": customer, "candidates": merge_candidates(user, customer, q), "q": q, "error": error},
        status=400 if error else 200,
    )


# --- CSV ------------------------------------------------------------------------------------------


def _manager(request: HttpRequest) -> list[int] | None:
    if not access.can_manage_customers(request.user):
        raise Http404("not a customer manager")
    return access.customer_edit_team_ids(request.user)


@login_required
@require_http_methods(["GET", "POST"])
def customer_import(request: HttpRequest) -> HttpResponse:
    team_ids = _manager(request)
    user = request.user
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > csvio.MAX_IMPORT_BYTES + UPLOAD_OVERHEAD:
            # refused before the body is read: a huge upload never reaches the disk
            message = _("ファイルが大きすぎます (%(mb)d MB まで)。ファイルを分けてください。") % {
                "mb": csvio.MAX_IMPORT_BYTES // 1024 // 1024
            }
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        _team_in_reach(request, "team", team_ids)
        form = ImportForm(request.POST, request.FILES, team_ids=team_ids)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            team = form.cleaned_data.get("team")
            if upload.size > csvio.MAX_IMPORT_BYTES:
                form.add_error(
                    "file",
                    _("ファイルが大きすぎます (%(mb)d MB まで)。ファイルを分けてください。")
                    % {"mb": csvio.MAX_IMPORT_BYTES // 1024 // 1024},
                )
            else:
                data = upload.read(csvio.MAX_IMPORT_BYTES + 1)
                pending = CustomerImport.objects.create(
                    user=user,
                    team=team,
                    filename=str(upload.name)[:255],
                    data=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                )
                CustomerImport.objects.filter(
                    user=user, state=ImportState.PREVIEWED, created_at__lt=timezone.now() - timedelta(days=1)
                ).delete()
                return redirect("customers:import_preview", pending.pk)
        return _render(request, "customers/import.html", _import_context(request, form), status=400)
    form = ImportForm(team_ids=team_ids, initial={"team": team_ids[0] if team_ids else None})
    return _render(request, "customers/import.html", _import_context(request, form))


def _import_context(request: HttpRequest, form: ImportForm) -> dict[str, Any]:
    return {
        "form": form,
        "history": CustomerImport.objects.filter(user=request.user).select_related("team")[:10],
        "headers": csvio.HEADERS,
        "max_mb": csvio.MAX_IMPORT_BYTES // 1024 // 1024,
        "max_rows": csvio.MAX_IMPORT_ROWS,
    }


def _pending(request: HttpRequest, import_id: int) -> CustomerImport:
    pending = CustomerImport.objects.filter(pk=import_id, user=request.user).select_related("team").first()
    if pending is None:
        raise Http404("import not found")
    return pending


@login_required
@require_http_methods(["GET", "POST"])
def customer_import_preview(request: HttpRequest, import_id: int) -> HttpResponse:
    team_ids = _manager(request)
    pending = _pending(request, import_id)
    if pending.team_id is not None and team_ids is not None and pending.team_id not in team_ids:
        raise Http404("team out of reach")
    if pending.state == ImportState.APPLIED:
        return _render(
            request, "customers/import_preview.html", {"pending": pending, "plan": None, "error": ""}
        )
    data = bytes(pending.data)
    if request.method == "POST":
        try:
            result = csvio.apply_import(
                data, team_id=pending.team_id, user=request.user, filename=pending.filename, ip=_ip(request)
            )
        except csvio.ImportRejected as exc:
            pending.state = ImportState.FAILED
            pending.error = exc.message
            pending.save(update_fields=["state", "error"])
            plan = getattr(exc, "plan", None)
            return _render(
                request,
                "customers/import_preview.html",
                _preview_context(pending, plan, exc.message),
                status=400,
            )
        with transaction.atomic():
            pending.state = ImportState.APPLIED
            pending.summary = {
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
            }
            pending.data = b""
            pending.error = ""
            pending.finished_at = timezone.now()
            pending.save()
        messages.success(
            request,
            _("取り込みました: 新規 %(c)d件、更新 %(u)d件、変更なし %(n)d件。")
            % {"c": result.created, "u": result.updated, "n": result.unchanged},
        )
        return redirect("customers:list")
    try:
        plan = csvio.plan_import(data, team_id=pending.team_id)
    except csvio.ImportRejected as exc:
        return _render(request, "customers/import_preview.html", _preview_context(pending, None, exc.message))
    return _render(request, "customers/import_preview.html", _preview_context(pending, plan, ""))


def _preview_context(pending: CustomerImport, plan: csvio.ImportPlan | None, error: str) -> dict[str, Any]:
    rows = []
    if plan is not None:
        # every rejected line, and the first lines of the rest
        shown = 0
        for r in plan.rows:
            if r.action == "reject" or shown < PREVIEW_ROWS:
                rows.append(r)
                shown += r.action != "reject"
    return {
        "pending": pending,
        "plan": plan,
        "rows": rows,
        "hidden": (len(plan.rows) - len(rows)) if plan else 0,
        "error": error,
        "encoding_label": csvio.ENCODING_LABELS.get(plan.encoding, plan.encoding) if plan else "",
    }


def exportable_customers(user: Any) -> QuerySet[Customer]:
    teams = access.customer_edit_team_ids(user)
    qs = access.visible_customers(user)
    return qs if teams is None else qs.filter(owner_team_id__in=teams)


@login_required
@require_http_methods(["GET"])
def customer_export(request: HttpRequest) -> HttpResponseBase:
    _manager(request)
    encoding = csvio.EXPORT_ENCODINGS.get(request.GET.get("encoding", "utf-8").lower(), "utf-8")
    q = request.GET.get("q", "").strip()[:MAX_QUERY]
    qs = search(exportable_customers(request.user), q)
    team = request.GET.get("team", "")
    if team.isdigit():
        qs = qs.filter(owner_team_id=int(team))
    count = qs.count()
    record(
        str(Action.EXPORT),
        user=request.user,
        ip=_ip(request),
        object_type="customer",
        change="customers_exported",
        rows=count,
        format="csv-" + encoding,
        filters={k: v for k, v in (("q", q), ("team", team)) if v},
    )
    response = StreamingHttpResponse(
        csvio.export_rows(qs, encoding),
        content_type=f"text/csv; charset={'shift_jis' if encoding == 'cp932' else 'utf-8'}",
    )
    response["Content-Disposition"] = f'attachment; filename="{csvio.export_filename(encoding)}"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- nuisance / caution lists -------------------------------------------------------------------


def _list_entries(team_ids: list[int] | None) -> QuerySet[NumberListEntry]:
    qs = NumberListEntry.objects.select_related("team", "created_by__profile")
    if team_ids is not None:
        qs = qs.filter(Q(team__isnull=True) | Q(team_id__in=team_ids))
    return qs.order_by("kind", "pattern", "id")


@login_required
@require_http_methods(["GET", "POST"])
def number_list(request: HttpRequest) -> HttpResponse:
    team_ids = _manager(request)
    form = NumberListForm(
        request.POST or None, team_ids=team_ids, initial={"team": team_ids[0] if team_ids else None}
    )
    status = 200
    if request.method == "POST":
        _team_in_reach(request, "team", team_ids)
        if form.is_valid():
            team = form.cleaned_data.get("team")
            try:
                services.add_list_entry(
                    form.cleaned_data["pattern"],
                    form.cleaned_data["kind"],
                    form.cleaned_data.get("reason", ""),
                    team_id=team.pk if team else None,
                    user=request.user,
                    ip=_ip(request),
                )
            except CustomerError as exc:
                form.add_error("pattern" if exc.field == "pattern" else None, exc.message)
            else:
                messages.success(request, _("リストに追加しました。"))
                return redirect("customers:numbers")
        status = 400
    q = request.GET.get("q", "").strip()[:MAX_QUERY]
    entries = _list_entries(team_ids)
    if q:
        digits = number_digits(q)
        entries = (
            entries.filter(Q(pattern__contains=digits) | Q(reason__icontains=q))
            if digits
            else entries.filter(reason__icontains=q)
        )
    rows = [
        {
            "entry": e,
            "shown": _pattern_display(e),
            "can_delete": team_ids is None or (e.team_id is not None and e.team_id in team_ids),
        }
        for e in entries[:1000]
    ]
    return _render(request, "customers/numbers.html", {"form": form, "rows": rows, "q": q}, status=status)


def _pattern_display(entry: NumberListEntry) -> str:
    if not entry.is_prefix:
        return fmt.number(entry.pattern)
    if entry.pattern.startswith("+81"):
        return "0" + entry.pattern[3:] + "…"
    return entry.pattern + "…"


@login_required
@require_POST
def number_list_delete(request: HttpRequest, entry_id: int) -> HttpResponse:
    team_ids = _manager(request)
    entry = _list_entries(team_ids).filter(pk=entry_id).first()
    if entry is None or not (team_ids is None or (entry.team_id is not None and entry.team_id in team_ids)):
        raise Http404("entry not found")
    services.remove_list_entry(entry, user=request.user, ip=_ip(request))
    messages.success(request, _("リストから削除しました。"))
    return redirect("customers:numbers")


# --- custom fields and warning tags (admins) --------------------------------------------------------


def _admin(request: HttpRequest) -> None:
    if not access.is_admin(request.user):
        raise Http404("admins only")


@login_required
@require_http_methods(["GET", "POST"])
def field_settings(request: HttpRequest) -> HttpResponse:
    _admin(request)
    form = CustomFieldForm(request.POST or None) if request.POST.get("form") != "tags" else CustomFieldForm()
    if request.method == "POST" and request.POST.get("form") == "tags":
        warning_ids = {int(v) for v in request.POST.getlist("warning") if v.isdigit()}
        changed = []
        for tag in CustomerTag.objects.all():
            want = tag.pk in warning_ids
            if tag.warning != want:
                tag.warning = want
                tag.save(update_fields=["warning"])
                changed.append({"tag": tag.name, "warning": want})
        if changed:
            record(
                str(Action.SETTINGS),
                user=request.user,
                ip=_ip(request),
                object_type="customertag",
                change="customer_tags_updated",
                tags=changed,
            )
        messages.success(request, _("警告タグを保存しました。"))
        return redirect("customers:fields")
    if request.method == "POST":
        if form.is_valid():
            f = CustomField.objects.create(
                key=form.cleaned_data["key"],
                label=form.cleaned_data["label"],
                field_type=form.cleaned_data["field_type"],
                choices=form.choice_list(),
                required=form.cleaned_data["required"],
                order=CustomField.objects.count(),
            )
            record(
                str(Action.SETTINGS),
                user=request.user,
                ip=_ip(request),
                obj=f,
                change="custom_field_created",
                name=f.label,
                kind=f.field_type,
            )
            messages.success(request, _("項目「%(label)s」を追加しました。") % {"label": f.label})
            return redirect("customers:fields")
    return _render(
        request,
        "customers/fields.html",
        {
            "form": form,
            "fields": CustomField.objects.all(),
            "tags": CustomerTag.objects.annotate(n=Count("customers")),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
@require_POST
def field_delete(request: HttpRequest, field_id: int) -> HttpResponse:
    _admin(request)
    f = CustomField.objects.filter(pk=field_id).first()
    if f is None:
        raise Http404("field not found")
    record(
        str(Action.SETTINGS),
        user=request.user,
        ip=_ip(request),
        obj=f,
        change="custom_field_deleted",
        name=f.label,
    )
    f.delete()
    messages.success(request, _("項目を削除しました (顧客に入力済みの値は残ります)。"))
    return redirect("customers:fields")
