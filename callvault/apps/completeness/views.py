"""録音の欠落チェック: flagged calls for supervisors (their teams) and admins (everything).

Agents and auditors get 404, like every page outside their reach. Opening the page is audited
(``view``, with the filter), re-checking a call and running the whole check are audited as
``settings``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from callvault.apps.accounts import access
from callvault.apps.audit.models import Action, record
from callvault.apps.audit.request import client_ip
from callvault.apps.calls.models import Call, RecordingState
from callvault.apps.completeness import services
from callvault.apps.completeness.models import OrphanFile, Reason

PAGE_SIZE = 50
PERIODS = {"1": 1, "7": 7, "30": 30, "all": None}


def _reachable(user: Any) -> QuerySet[Call]:
    if not access.can_export(user):  # admins and supervisors
        raise Http404("not found")
    calls = access.visible_calls(user)
    if not access.is_admin(user):
        calls = calls.filter(team_id__in=access.supervised_team_ids(user))
    return calls


@login_required
def flagged_list(request: HttpRequest) -> HttpResponse:
    calls = _reachable(request.user)
    reason = request.GET.get("reason", "")
    period = request.GET.get("period", "all")
    if (reason and reason not in Reason.values) or period not in PERIODS:
        return HttpResponseBadRequest(
            _("絞り込みの指定が正しくありません。").encode(), content_type="text/plain; charset=utf-8"
        )
    flagged = calls.filter(completeness="flagged")
    counts = {code: 0 for code in Reason.values}
    for codes in flagged.values_list("completeness_codes", flat=True)[:100000]:
        for code in (codes or "").strip(",").split(","):
            if code in counts:
                counts[code] += 1
    shown = flagged
    if reason:
        shown = shown.filter(completeness_codes__contains=f",{reason},")
    days = PERIODS[period]
    if days is not None:
        from datetime import timedelta

        from django.utils import timezone

        shown = shown.filter(started_at__gte=timezone.now() - timedelta(days=days))
    shown = shown.select_related("agent", "team", "recording").order_by("-started_at", "-id")
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))
    labels = dict(Reason.choices)
    rows = [
        {
            "call": c,
            "reasons": [
                (r.get("code"), labels.get(r.get("code"), r.get("code")), r.get("detail") or {})
                for r in c.completeness_reasons or []
                if isinstance(r, dict)
            ],
            "expected": services.expected_duration(c),
            "can_retry": c.recording_state in (RecordingState.FAILED, RecordingState.PENDING),
        }
        for c in page
    ]
    is_admin = access.is_admin(request.user)
    record(
        str(Action.VIEW),
        user=request.user,
        object_type="completeness",
        object_id="list",
        ip=client_ip(request),
        reason=reason,
        period=period,
        page=page.number,
    )
    last = calls.exclude(completeness_checked_at=None).order_by("-completeness_checked_at").first()
    return render(
        request,
        "completeness/list.html",
        {
            "rows": rows,
            "page": page,
            "reason": reason,
            "period": period,
            "reasons": [(code, label, counts[code]) for code, label in Reason.choices],
            "total": flagged.count(),
            "orphans": OrphanFile.objects.all()[:200] if is_admin else None,
            "orphan_count": OrphanFile.objects.count() if is_admin else 0,
            "is_admin": is_admin,
            "last_checked": last.completeness_checked_at if last else None,
            "grace_minutes": int(services.grace().total_seconds() // 60),
        },
    )


@login_required
@require_POST
def recheck(request: HttpRequest, call_id: Any) -> HttpResponse:
    call = access.get_call_for_user(request.user, call_id)
    if not access.can_manage_call(request.user, call):
        raise Http404("call not found")
    retried = False
    if request.POST.get("retry") and call.recording_state in (RecordingState.FAILED, RecordingState.PENDING):
        from callvault.apps.recordings.finalize import request_retry

        request_retry(str(call.pk))
        retried = True
    summary = services.run_check(call_ids=[call.pk])
    record(
        str(Action.SETTINGS),
        user=request.user,
        obj=call,
        ip=client_ip(request),
        op="completeness_recheck",
        retried=retried,
    )
    call.refresh_from_db()
    if retried:
        messages.success(request, _("録音の再処理を受け付けました。完了後にもう一度チェックします。"))
    elif summary.flagged:
        messages.warning(request, _("再チェックしました。まだ問題があります。"))
    else:
        messages.success(request, _("再チェックしました。問題は見つかりませんでした。"))
    target = request.POST.get("next", "")
    if target == "call":
        return redirect("web:call", call_id=call.pk)
    return redirect("completeness:list")


@login_required
@require_POST
def run_now(request: HttpRequest) -> HttpResponse:
    if not access.is_admin(request.user):
        raise Http404("not found")
    summary = services.run_check(scan=True)
    record(
        str(Action.SETTINGS),
        user=request.user,
        object_type="completeness",
        object_id="run",
        ip=client_ip(request),
        op="completeness_run",
        **summary.as_dict(),
    )
    messages.success(
        request,
        _("チェックしました: %(checked)d 件中 %(flagged)d 件に問題、保存先の孤立ファイル %(orphans)d 件。")
        % {"checked": summary.checked, "flagged": summary.flagged, "orphans": summary.orphans},
    )
    return redirect("completeness:list")
