"""The web shell: health check, login/logout, the calls list, its CSV export and live rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from callvault.apps.accounts import access
from callvault.apps.audit.models import Action, record
from callvault.apps.web import auth
from callvault.apps.web import calls_list as cl


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and monitoring."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


# --- login / logout ---------------------------------------------------------------------------


class LoginForm(forms.Form):
    username = forms.CharField(
        label=gettext_lazy("ユーザー名"),
        max_length=150,
        error_messages={
            "required": gettext_lazy("ユーザー名を入力してください。"),
            "max_length": gettext_lazy("ユーザー名は150文字以内です。"),
        },
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True, "spellcheck": "false"}),
    )
    password = forms.CharField(
        label=gettext_lazy("パスワード"),
        max_length=4096,
        strip=False,
        error_messages={
            "required": gettext_lazy("パスワードを入力してください。"),
            "max_length": gettext_lazy("パスワードが長すぎます。"),
        },
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("web:calls")


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET" and request.user.is_authenticated:
        return HttpResponseRedirect(_safe_next(request))
    form = LoginForm(request.POST if request.method == "POST" else None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        result = auth.attempt_login(request, form.cleaned_data["username"], form.cleaned_data["password"])
        if result.user is not None:
            return HttpResponseRedirect(_safe_next(request))
        if result.lock is not None:
            error = _(
                "ログインの失敗が続いたため、一時的にログインを制限しています。"
                "%(minutes)d分ほど待ってから、もう一度お試しください。"
                "パスワードがわからない場合は管理者にお問い合わせください。"
            ) % {"minutes": result.lock.minutes_left}
            status = 429
        else:
            error = _("ユーザー名またはパスワードが正しくありません。")
    elif request.method == "POST":
        status = 400
    context = {"form": form, "error": error, "next": _safe_next(request)}
    return render(request, "web/login.html", context, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    was_logged_in = request.user.is_authenticated
    auth.logout_user(request)
    if was_logged_in:
        messages.success(request, _("ログアウトしました。"))
    return HttpResponseRedirect(reverse("web:login"))


# --- the calls list ----------------------------------------------------------------------------


def _filter_form(request: HttpRequest) -> cl.CallFilterForm:
    cl.check_query_string(request.META.get("QUERY_STRING", ""))
    data = request.GET.copy()
    for key in ("after", "before", "encoding"):
        data.pop(key, None)
    return cl.CallFilterForm(data, user=request.user)


def _query(params: dict[str, Any] | QueryDict, **extra: str) -> str:
    q = QueryDict(mutable=True)
    for name in cl.FILTER_FIELDS:
        values = params.getlist(name) if isinstance(params, QueryDict) else params.get(name, [])
        values = [v for v in values if v]
        if values:
            q.setlist(name, values)
    for key, value in extra.items():
        if value:
            q[key] = value
    return q.urlencode()


def _filtered(request: HttpRequest, form: cl.CallFilterForm, base: Any) -> Any:
    if not form.is_valid():
        raise cl.BadFilter("; ".join(form.error_messages_flat()))
    return cl.apply_filters(base, form.cleaned_data)


@never_cache
@login_required
@require_GET
def calls(request: HttpRequest) -> HttpResponse:
    user = request.user
    base_url = reverse("web:calls")
    role = access.role_of(user)
    context: dict[str, Any] = {
        "can_export": access.can_export(user),
        "sees_no_calls": role not in ("admin", "member"),
        "rows": [],
        "page": None,
        "errors": [],
        "export_limit": cl.EXPORT_MAX_ROWS,
    }
    status = 200
    try:
        form = _filter_form(request)
        context["form"] = form
        qs = _filtered(request, form, access.visible_calls(user))
        page = cl.page_of(
            qs,
            after=request.GET.get("after", ""),
            before=request.GET.get("before", ""),
            windowed=not cl.is_number_search(form.cleaned_data),
        )
    except cl.BadFilter as exc:
        context.setdefault("form", cl.CallFilterForm(user=user))
        form = context["form"]
        context["errors"] = form.error_messages_flat() if form.is_bound and form.errors else [str(exc)]
        status = 400
    else:
        filters = _query(request.GET)
        context.update(
            page=page,
            rows=(rows := cl.rows_of(page.calls)),
            rows_html=cl.rows_html(rows),
            filters_active=form.active_count(),
            filter_query=filters,
            first_url=f"{base_url}?{filters}" if filters else base_url,
            newer_url=f"{base_url}?{_query(request.GET, before=page.newer.encode())}" if page.newer else "",
            older_url=f"{base_url}?{_query(request.GET, after=page.older.encode())}" if page.older else "",
            export_url=reverse("web:calls_export") + (f"?{filters}" if filters else ""),
            export_url_sjis=reverse("web:calls_export") + "?" + _query(request.GET, encoding="cp932"),
            live={
                "ws": "/ws/events/",
                "row": reverse("web:call_row", args=["00000000-0000-0000-0000-000000000000"]),
                "query": filters,
                "firstPage": page.is_first,
                "strings": {
                    "open": _("リアルタイム更新中"),
                    "connecting": _("再接続しています…"),
                    "closed": _("リアルタイム更新は停止しています。ページを再読み込みしてください。"),
                    "newCalls": _("新しい通話が%(n)s件あります。表示する"),
                },
            },
        )
    context.setdefault("filters_active", 0)
    context["controls"] = cl.filter_controls(context["form"])
    return render(request, "web/calls_list.html", context, status=status)


@never_cache
@login_required
@require_GET
def call_row(request: HttpRequest, call_id: Any) -> HttpResponse:
    """One rendered row for live updates; 204 when the call does not match the list's filters."""
    call = access.get_call_for_user(request.user, call_id)
    try:
        form = _filter_form(request)
        qs = _filtered(request, form, access.visible_calls(request.user))
    except cl.BadFilter as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    match = cl.display_values(qs.filter(pk=call.pk))
    if not match:
        return HttpResponse(status=204)
    return HttpResponse(cl.rows_html(cl.rows_of(match)), content_type="text/html; charset=utf-8")


@never_cache
@login_required
@require_GET
def calls_export(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not access.can_export(user):
        raise Http404("no export")
    encoding = cl.EXPORT_ENCODINGS.get((request.GET.get("encoding") or "utf-8").lower()[:20])
    try:
        if encoding is None:
            raise cl.BadFilter(_("文字コードは utf-8 または cp932 (Shift_JIS) を指定してください。"))
        form = _filter_form(request)
        qs = _filtered(request, form, cl.exportable_calls(user))
    except cl.BadFilter as exc:
        form = cl.CallFilterForm(user=user)
        context = {
            "form": form,
            "controls": cl.filter_controls(form),
            "errors": [str(exc)],
            "rows": [],
            "can_export": True,
            "filters_active": 0,
        }
        return render(request, "web/calls_list.html", context, status=400)
    export = cl.Export(qs, encoding=encoding, limit=cl.EXPORT_MAX_ROWS, chunk=cl.EXPORT_CHUNK)
    rows = export.count()
    record(
        str(Action.EXPORT),
        user=user,
        ip=auth.client_ip(request),
        object_type="calls",
        filters={k: request.GET.getlist(k) for k in cl.FILTER_FIELDS if request.GET.get(k)},
        rows=rows,
        truncated=export.truncated,
        encoding=encoding,
    )
    body: Any = _async_blocks(export) if isinstance(request, ASGIRequest) else iter(export)
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    response = StreamingHttpResponse(body, content_type=f"text/csv; charset={charset}")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="callvault-calls-{stamp}.csv"'
    response["X-Callvault-Rows"] = str(rows)
    if export.truncated:
        response["X-Callvault-Truncated"] = "1"
    return response


async def _async_blocks(export: cl.Export) -> AsyncIterator[bytes]:
    """Stream under ASGI without holding the whole file: one database chunk at a time."""
    while (block := await sync_to_async(export.next_block)()) is not None:
        yield block
