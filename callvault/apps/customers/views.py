"""Customer pages. Every view fetches through ``accounts.access`` (404 outside the viewer's reach)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from callvault.apps.accounts import access


@login_required
def customer_detail(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = access.get_customer_for_user(request.user, customer_id)
    return render(request, "customers/detail.html", {"customer": customer})
