"""Web UI routes: each area of the UI has its own module."""

from django.urls import include, path

from callvault.apps.web import views

app_name = "web"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", include("callvault.apps.web.urls_calls")),
    path("", include("callvault.apps.web.urls_call")),
    path("", include("callvault.apps.web.urls_admin")),
    path("", include("callvault.apps.uploads.urls")),  # 管理 → 録音端末
]
