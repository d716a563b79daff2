"""PBX integration settings, mounted at ``/settings/pbx/`` (namespace ``pbx``)."""

from django.urls import path

from callvault.apps.pbx import views

app_name = "pbx"
urlpatterns = [
    path("", views.integration_list, name="list"),
    path("new", views.integration_create, name="create"),
    path("<int:pk>/", views.integration_detail, name="detail"),
    path("<int:pk>/edit", views.integration_edit, name="edit"),
    path("<int:pk>/delete", views.integration_delete, name="delete"),
    path("<int:pk>/rotate-secret", views.integration_rotate_secret, name="rotate_secret"),
]
