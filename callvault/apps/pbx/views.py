"""PBX integration settings pages (administrators only; everyone else gets 404).

Every change is audited as ``settings`` with the user, IP address and integration, never with
the secret (shown once when created or re-issued).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from callvault.apps.audit.models import Action, changes, record
from callvault.apps.audit.request import client_ip
from callvault.apps.pbx.forms import IntegrationForm
from callvault.apps.pbx.models import Integration, new_secret
from callvault.apps.webhooks.views import admin_only

PAGE_SIZE = 50


def audit(request: HttpRequest, integration: Integration, op: str, **detail: Any) -> None:
    record(str(Action.SETTINGS), user=request.user, obj=integration, ip=client_ip(request), op=op, **detail)


def _settings_of(integration: Integration) -> dict[str, Any]:
    return {
        "name": integration.name,
        "auth_mode": integration.auth_mode,
        "team_id": integration.team_id,
        "enabled": integration.enabled,
    }


def _endpoint(request: HttpRequest) -> str:
    return request.build_absolute_uri("/api/v1/events")


@admin_only
def integration_list(request: HttpRequest) -> HttpResponse:
    integrations = Integration.objects.select_related("team")
    return render(
        request,
        "pbx/list.html",
        {"integrations": integrations, "endpoint": _endpoint(request), "section": "pbx"},
    )


@admin_only
@require_http_methods(["GET", "POST"])
def integration_create(request: HttpRequest) -> HttpResponse:
    form = IntegrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            integration = form.save(commit=False)
            integration.created_by = request.user
            integration.save()
            audit(request, integration, "pbx_integration_create", **_settings_of(integration))
        return _secret_page(request, integration, created=True)
    return render(request, "pbx/form.html", {"form": form, "integration": None, "section": "pbx"})


def _secret_page(request: HttpRequest, integration: Integration, *, created: bool) -> HttpResponse:
    return render(
        request,
        "pbx/secret.html",
        {
            "integration": integration,
            "secret": integration.secret,
            "created": created,
            "endpoint": _endpoint(request),
            "section": "pbx",
        },
    )


@admin_only
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration.objects.select_related("team"), pk=pk)
    events = integration.events.select_related("call").order_by("-received_at", "-id")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "pbx/detail.html",
        {"integration": integration, "page": page, "endpoint": _endpoint(request), "section": "pbx"},
    )


@admin_only
@require_http_methods(["GET", "POST"])
def integration_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    before = _settings_of(integration)
    form = IntegrationForm(request.POST or None, instance=integration)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            integration = form.save()
            changed = changes(before, _settings_of(integration))
            audit(request, integration, "pbx_integration_update", changes=changed)
        messages.success(request, _("PBX 連携「%(name)s」を保存しました。") % {"name": integration.name})
        return redirect("pbx:detail", pk=integration.pk)
    return render(request, "pbx/form.html", {"form": form, "integration": integration, "section": "pbx"})


@admin_only
@require_POST
def integration_delete(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    name = integration.name
    with transaction.atomic():
        audit(request, integration, "pbx_integration_delete", **_settings_of(integration))
        integration.delete()
    messages.success(
        request, _("PBX 連携「%(name)s」を削除しました。受け取った通話は一覧に残ります。") % {"name": name}
    )
    return redirect("pbx:list")


@admin_only
@require_POST
def integration_rotate_secret(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=pk)
    with transaction.atomic():
        integration.secret = new_secret()
        integration.save()
        audit(request, integration, "pbx_integration_rotate_secret")
    return _secret_page(request, integration, created=False)
