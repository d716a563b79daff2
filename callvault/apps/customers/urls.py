"""Routes of the customer pages (顧客): list, カルテ, forms, notes, merge, CSV, number lists."""

from __future__ import annotations

from django.urls import path

from callvault.apps.customers import views

app_name = "customers"
urlpatterns = [
    path("<int:customer_id>/", views.customer_detail, name="detail"),
]
