"""``{% completeness_of call as items %}``: the completeness reasons of a call, labelled."""

from __future__ import annotations

from typing import Any

from django import template

from callvault.apps.completeness.models import Reason

register = template.Library()


@register.simple_tag
def completeness_of(call: Any) -> list[dict[str, Any]]:
    if getattr(call, "completeness", "") != "flagged":
        return []
    labels = dict(Reason.choices)
    return [
        {
            "code": r.get("code"),
            "label": labels.get(r.get("code"), r.get("code")),
            "detail": r.get("detail") or {},
        }
        for r in call.completeness_reasons or []
        if isinstance(r, dict)
    ]
