"""Routes of the call page: the page, its audio, waveform, download, tags and comments."""

from __future__ import annotations

from django.urls import path

from callvault.apps.web import views_call

urlpatterns = [
    path("calls/<uuid:call_id>/", views_call.call_detail, name="call"),
    path("calls/<uuid:call_id>/audio", views_call.call_audio, name="call_audio"),
    path("calls/<uuid:call_id>/peaks.json", views_call.call_peaks, name="call_peaks"),
    path("calls/<uuid:call_id>/download", views_call.call_download, name="call_download"),
    path("calls/<uuid:call_id>/retry", views_call.call_retry, name="call_retry"),
    path("calls/<uuid:call_id>/comments", views_call.comment_add, name="call_comment_add"),
    path(
        "calls/<uuid:call_id>/comments/<int:comment_id>/delete",
        views_call.comment_delete,
        name="call_comment_delete",
    ),
    path("calls/<uuid:call_id>/tags", views_call.tag_add, name="call_tag_add"),
    path("calls/<uuid:call_id>/tags/<int:tag_id>/remove", views_call.tag_remove, name="call_tag_remove"),
]
