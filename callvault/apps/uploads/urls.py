"""管理 → 録音端末 (mounted in the ``web`` namespace, next to the other admin pages)."""

from django.urls import path

from callvault.apps.uploads import views
from callvault.apps.web import urls_admin  # noqa: F401  (registers the cvid converter)

urlpatterns = [
    path("admin/devices/", views.devices, name="admin_devices"),
    path("admin/devices/new/", views.device_create, name="admin_device_create"),
    path("admin/devices/<cvid:pk>/revoke/", views.device_revoke, name="admin_device_revoke"),
]
