"""Webhook settings pages, mounted at ``/settings/webhooks/`` (namespace ``webhooks``)."""

from django.urls import path

from callvault.apps.webhooks import views

app_name = "webhooks"
urlpatterns = [
    path("", views.webhook_list, name="list"),
    path("new", views.webhook_create, name="create"),
    path("<int:pk>/", views.webhook_detail, name="detail"),
    path("<int:pk>/edit", views.webhook_edit, name="edit"),
    path("<int:pk>/delete", views.webhook_delete, name="delete"),
    path("<int:pk>/rotate-secret", views.webhook_rotate_secret, name="rotate_secret"),
    path("<int:pk>/ping", views.webhook_ping, name="ping"),
    path("deliveries/<uuid:delivery_id>/", views.delivery_detail, name="delivery"),
    path("deliveries/<uuid:delivery_id>/resend", views.delivery_resend, name="resend"),
]
