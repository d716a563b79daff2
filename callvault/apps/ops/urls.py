"""Operations routes: /metrics and /readyz (the lead includes these at the site root)."""

from django.urls import path

from callvault.apps.ops import views

app_name = "ops"
urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("readyz", views.readyz, name="readyz"),
]
