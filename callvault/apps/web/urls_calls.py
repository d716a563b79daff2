"""The web shell: login/logout, language switch, the calls list, its export and live rows."""

from __future__ import annotations

from django.urls import path
from django.views.i18n import set_language

from callvault.apps.web import views

urlpatterns = [
    path("", views.calls, name="calls"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("calls/export.csv", views.calls_export, name="calls_export"),
    path("calls/<uuid:call_id>/row", views.call_row, name="call_row"),
]
