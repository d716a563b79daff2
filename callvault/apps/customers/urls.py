"""Routes of the customer pages (顧客): list, カルテ, forms, notes, merge, CSV, number lists, fields."""

from __future__ import annotations

from django.urls import path

from callvault.apps.customers import views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("new/", views.customer_create, name="create"),
    path("<int:customer_id>/", views.customer_detail, name="detail"),
    path("<int:customer_id>/edit/", views.customer_edit, name="edit"),
    path("<int:customer_id>/delete/", views.customer_delete, name="delete"),
    path("<int:customer_id>/merge/", views.customer_merge, name="merge"),
    path("<int:customer_id>/notes/", views.note_add, name="note_add"),
    path("<int:customer_id>/notes/<int:note_id>/edit/", views.note_edit, name="note_edit"),
    path("import/", views.customer_import, name="import"),
    path("import/<int:import_id>/", views.customer_import_preview, name="import_preview"),
    path("export.csv", views.customer_export, name="export"),
    path("numbers/", views.number_list, name="numbers"),
    path("numbers/<int:entry_id>/delete/", views.number_list_delete, name="number_delete"),
    path("fields/", views.field_settings, name="fields"),
    path("fields/<int:field_id>/delete/", views.field_delete, name="field_delete"),
]
