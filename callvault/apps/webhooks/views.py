"""Webhook settings pages (administrators only; everyone else gets 404).

Every change is audited as ``settings`` with the user, IP address and webhook, never with the
secret; URLs in the audit trail and logs keep only scheme, host and path (a query string may
carry a receiver's token).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from callvault.apps.accounts.access import is_admin
from callvault.apps.audit.models import Action, changes, record
from callvault.apps.webhooks import services
from callvault.apps.webhooks.forms import WebhookForm
from callvault.apps.webhooks.models import Delivery, DeliveryStatus, Webhook, new_secret

PAGE_SIZE = 30


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise Http404("not found")
        return view(request, *args, **kwargs)

    return wrapper


def redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def audit(request: HttpRequest, hook: Webhook, op: str, **detail: Any) -> None:
    record(
        str(Action.SETTINGS),
        user=request.user,
        obj=hook,
        ip=request.META.get("REMOTE_ADDR") or None,
        op=op,
        **detail,
    )


def _settings_of(hook: Webhook) -> dict[str, Any]:
    return {
        "name": hook.name,
        "url": redacted(hook.url),
        "events": list(hook.events or []),
        "team_id": hook.team_id,
        "active": hook.active,
    }


def _status_filter(request: HttpRequest) -> str | None:
    status = request.GET.get("status", "")
    if status and status not in DeliveryStatus.values:
        raise ValueError(status)
    return status or None


def _bad_filter() -> HttpResponse:
    return HttpResponseBadRequest(
        _("状態の指定が正しくありません (pending、succeeded、failed のいずれか)。").encode(),
        content_type="text/plain; charset=utf-8",
    )


@admin_only
def webhook_list(request: HttpRequest) -> HttpResponse:
    try:
        status = _status_filter(request)
    except ValueError:
        return _bad_filter()
    hooks = Webhook.objects.select_related("team").annotate(
        pending=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
        failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
        succeeded=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.SUCCEEDED)),
    )
    deliveries = Delivery.objects.select_related("webhook", "call").order_by("-created_at")
    if status:
        deliveries = deliveries.filter(status=status)
    page = Paginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/list.html",
        {
            "hooks": hooks,
            "page": page,
            "status": status or "",
            "statuses": DeliveryStatus.choices,
            "section": "webhooks",
        },
    )


@admin_only
@require_http_methods(["GET", "POST"])
def webhook_create(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            hook = form.save(commit=False)
            hook.created_by = request.user
            hook.save()
            audit(request, hook, "webhook_create", **_settings_of(hook))
        return render(
            request,
            "webhooks/secret.html",
            {"hook": hook, "secret": hook.secret, "created": True, "section": "webhooks"},
        )
    return render(request, "webhooks/form.html", {"form": form, "hook": None, "section": "webhooks"})


@admin_only
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    hook = get_object_or_404(Webhook.objects.select_related("team"), pk=pk)
    try:
        status = _status_filter(request)
    except ValueError:
        return _bad_filter()
    deliveries = hook.deliveries.select_related("call").order_by("-created_at")
    if status:
        deliveries = deliveries.filter(status=status)
    page = Paginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/detail.html",
        {
            "hook": hook,
            "page": page,
            "status": status or "",
            "statuses": DeliveryStatus.choices,
            "backoff": services.BACKOFF,
            "section": "webhooks",
        },
    )


@admin_only
@require_http_methods(["GET", "POST"])
def webhook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    hook = get_object_or_404(Webhook, pk=pk)
    before = _settings_of(hook)
    form = WebhookForm(request.POST or None, instance=hook)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            hook = form.save()
            changed = changes(before, _settings_of(hook))
            audit(request, hook, "webhook_update", changes=changed)
        messages.success(request, _("Webhook「%(name)s」を保存しました。") % {"name": hook.name})
        return redirect("webhooks:detail", pk=hook.pk)
    return render(request, "webhooks/form.html", {"form": form, "hook": hook, "section": "webhooks"})


@admin_only
@require_POST
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    hook = get_object_or_404(Webhook, pk=pk)
    name = hook.name
    with transaction.atomic():
        audit(request, hook, "webhook_delete", deliveries=hook.deliveries.count(), **_settings_of(hook))
        record(
            str(Action.DELETE),
            user=request.user,
            obj=hook,
            ip=request.META.get("REMOTE_ADDR") or None,
            name=name,
        )
        hook.delete()
    messages.success(request, _("Webhook「%(name)s」を削除しました。") % {"name": name})
    return redirect("webhooks:list")


@admin_only
@require_POST
def webhook_rotate_secret(request: HttpRequest, pk: int) -> HttpResponse:
    hook = get_object_or_404(Webhook, pk=pk)
    with transaction.atomic():
        hook.secret = new_secret()
        hook.save(update_fields=["secret", "updated_at"])
        audit(request, hook, "webhook_rotate_secret")
    return render(
        request,
        "webhooks/secret.html",
        {"hook": hook, "secret": hook.secret, "created": False, "section": "webhooks"},
    )


@admin_only
@require_POST
def webhook_ping(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a ``ping`` now and say how it went (the admin is waiting for the answer)."""
    hook = get_object_or_404(Webhook, pk=pk)
    audit(request, hook, "webhook_ping")
    delivery = services.deliver(services.create_ping(hook).pk)
    _report(request, delivery)
    return redirect("webhooks:detail", pk=hook.pk)


@admin_only
def delivery_detail(request: HttpRequest, delivery_id: Any) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("webhook", "call"), pk=delivery_id)
    import json

    return render(
        request,
        "webhooks/delivery.html",
        {
            "delivery": delivery,
            "hook": delivery.webhook,
            "attempts": delivery.attempt_log.all(),
            "payload": json.dumps(delivery.payload, ensure_ascii=False, indent=2),
            "section": "webhooks",
        },
    )


@admin_only
@require_POST
def delivery_resend(request: HttpRequest, delivery_id: Any) -> HttpResponse:
    """Send again now; if it fails, the usual retry schedule starts over."""
    delivery = get_object_or_404(Delivery.objects.select_related("webhook"), pk=delivery_id)
    audit(request, delivery.webhook, "webhook_resend", delivery=str(delivery.pk), event=delivery.event)
    services.resend(delivery)
    _report(request, services.deliver(delivery.pk))
    target = request.POST.get("next", "")
    if target == "delivery":
        return redirect("webhooks:delivery", delivery_id=delivery.pk)
    return redirect("webhooks:detail", pk=delivery.webhook_id)


def _report(request: HttpRequest, delivery: Delivery | None) -> None:
    if delivery is None:
        messages.info(request, _("送信をキューに入れました。まもなく送信されます。"))
    elif delivery.status == DeliveryStatus.SUCCEEDED:
        messages.success(request, _("送信しました (HTTP %(code)s)。") % {"code": delivery.last_response_code})
    elif delivery.status == DeliveryStatus.PENDING:
        messages.warning(
            request,
            _("送信に失敗しました: %(error)s。%(when)s に再送します。")
            % {"error": delivery.last_error, "when": _when(delivery)},
        )
    else:
        messages.error(request, _("送信に失敗しました: %(error)s") % {"error": delivery.last_error})


def _when(delivery: Delivery) -> str:
    from django.utils import timezone

    if delivery.next_attempt_at is None:
        return "-"
    return timezone.localtime(delivery.next_attempt_at).strftime("%Y/%m/%d %H:%M:%S")
