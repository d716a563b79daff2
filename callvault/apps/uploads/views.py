"""管理 → 録音端末: devices that upload recordings (list, create with a token shown once, revoke).

Organisation admins only (others 404, anonymous to the login page), like the rest of 管理.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from callvault.apps.accounts.forms import UserChoiceField, users_for_choice
from callvault.apps.accounts.models import Line, Team
from callvault.apps.accounts.services import RuleError
from callvault.apps.uploads.devices import create_device, revoke_device
from callvault.apps.uploads.models import Device
from callvault.apps.web import format as fmt
from callvault.apps.web.views_admin import _get, actor, admin_required


class DeviceForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("端末名"),
        max_length=100,
        help_text=gettext_lazy("例: 営業部 通話録音アプリ (山本)、受付 ボイスレコーダー"),
    )
    team = forms.ModelChoiceField(label=gettext_lazy("チーム"), queryset=Team.objects.all(), empty_label=None)
    user = UserChoiceField(
        label=gettext_lazy("担当者"),
        queryset=users_for_choice(),
        required=False,
        empty_label=gettext_lazy("(チームのみ)"),
        help_text=gettext_lazy(
            "個人のスマートフォンなら担当者を選びます。担当者はチームのメンバーに限ります。"
        ),
    )
    line = forms.ModelChoiceField(
        label=gettext_lazy("回線"),
        queryset=Line.objects.select_related("team"),
        required=False,
        empty_label=gettext_lazy("(指定なし)"),
        help_text=gettext_lazy("1 つの番号を録音する録音装置なら、その回線を選びます。"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = users_for_choice()


@admin_required
@require_http_methods(["GET"])
def devices(request: HttpRequest) -> HttpResponse:
    rows = []
    for device in Device.objects.select_related("team", "user__profile", "line").order_by(
        "revoked_at", "name"
    ):
        rows.append(
            {
                "device": device,
                "user": fmt.user_label(device.user) if device.user else "",
                "line": fmt.number(device.line.number) if device.line else "",
                "last_seen": fmt.local_datetime(device.last_seen_at) if device.last_seen_at else "",
                "created": fmt.local_datetime(device.created_at),
            }
        )
    return render(
        request,
        "uploads/devices.html",
        {"section": "devices", "rows": rows, "has_teams": Team.objects.exists()},
    )


@admin_required
@require_http_methods(["GET", "POST"])
def device_create(request: HttpRequest) -> HttpResponse:
    form = DeviceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            device, token = create_device(
                actor(request), name=data["name"], team=data["team"], user=data["user"], line=data["line"]
            )
        except RuleError as exc:
            form.add_error(None, str(exc))
        else:
            response = render(
                request,
                "uploads/device_token.html",
                {"section": "devices", "device": device, "token": token, "upload_url": _upload_url(request)},
            )
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "uploads/device_form.html", {"section": "devices", "form": form})


def _upload_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/api/v1/uploads")


@admin_required
@require_POST
def device_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    device = _get(Device.objects.all(), pk)
    if revoke_device(actor(request), device):
        messages.success(request, _("「%(name)s」のトークンを無効にしました。") % {"name": device.name})
    return redirect("web:admin_devices")
