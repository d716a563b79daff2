"""``{% load customers_ui %}{% call_customer call as cc %}``: the customer of a call's outside party.

Used on the call page: a link to the カルテ when the number belongs to a customer the viewer may
see, otherwise "顧客として登録" (prefilled from the call), plus any nuisance/caution warning.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from callvault.apps.accounts import access

register = template.Library()


@register.simple_tag(takes_context=True)
def call_customer(context: template.Context, call: Any) -> dict[str, Any] | None:
    from callvault.apps.customers import lookup
    from callvault.apps.customers.views import _remote_party

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    party = _remote_party(call)
    if party is None:
        return None
    number, _name = party
    customer = lookup.find_customer(number, user)
    team_ids = access.customer_team_ids(user)
    return {
        "customer": customer,
        "url": reverse("customers:detail", args=[customer.pk]) if customer else "",
        "create_url": (
            reverse("customers:create") + f"?call={call.pk}" if customer is None and team_ids != [] else ""
        ),
        "warnings": lookup.number_flags(number, team_ids=team_ids),
    }
