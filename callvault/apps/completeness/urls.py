"""The recording completeness page, mounted at ``/checks/recordings/`` (namespace ``completeness``)."""

from django.urls import path

from callvault.apps.completeness import views

app_name = "completeness"
urlpatterns = [
    path("", views.flagged_list, name="list"),
    path("run", views.run_now, name="run"),
    path("<uuid:call_id>/recheck", views.recheck, name="recheck"),
]
