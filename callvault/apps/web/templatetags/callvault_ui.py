"""Template helpers of the design system: ``{% load callvault_ui %}``.

Filters: ``{{ call.caller_number|phone }}`` (03-1234-5678), ``{{ call.duration|duration }}``
(3分05秒), ``{{ call.started_at|localdt }}`` (2026/11/27 14:05), ``{{ user|user_label }}``.
Tag: ``{% nav_items as items %}`` the main navigation for the current user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from callvault.apps.accounts import access
from callvault.apps.web import format as fmt

register = template.Library()


@register.filter
def phone(value: str | None) -> str:
    return fmt.number(value)


@register.filter
def duration(value: float | None) -> str:
    return fmt.duration(value)


@register.filter
def localdt(value: datetime | None, arg: str = "") -> str:
    return fmt.local_datetime(value, seconds=arg == "seconds")


@register.filter
def user_label(value: Any) -> str:
    return fmt.user_label(value)


@dataclass
class NavItem:
    label: str
    url: str
    active: bool


def _first_url(*names: str) -> tuple[str, str] | None:
    for name in names:
        try:
            return name, reverse(name)
        except NoReverseMatch:
            continue
    return None


# Areas of the UI that other modules provide; a link appears once its URL name exists.
_AREAS: list[tuple[str, tuple[str, ...], str]] = [
    ("calls", ("web:calls",), "any"),
    ("customers", ("customers:list",), "any"),
    ("checks", ("completeness:list",), "supervise"),
    ("admin", ("web:admin", "web:admin_index", "web:admin_home", "web:admin_users"), "admin"),
    ("audit", ("web:audit", "web:audit_log", "web:admin_audit"), "audit"),
]


@register.simple_tag(takes_context=True)
def nav_items(context: template.Context) -> list[NavItem]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    labels = {
        "calls": _("通話一覧"),
        "customers": _("顧客"),
        "checks": _("録音チェック"),
        "admin": _("管理"),
        "audit": _("監査ログ"),
    }
    path = getattr(request, "path", "")
    items: list[NavItem] = []
    role = access.role_of(user)
    allowed = {
        "any": role != "auditor",
        "admin": role == "admin",
        "audit": role in ("admin", "auditor"),
        "supervise": access.can_export(user),
    }
    for key, names, who in _AREAS:
        if not allowed[who]:
            continue
        found = _first_url(*names)
        if found is None:
            continue
        _name, url = found
        active = path == url if url == "/" else path.startswith(url)
        if key == "calls" and path.startswith("/calls/"):
            active = True
        items.append(NavItem(labels[key], url, active))
    return items


@register.simple_tag
def role_label(user: Any) -> str:
    """``管理者``, ``監査担当``, ``スーパーバイザー`` or ``担当者`` for the user menu."""
    from callvault.apps.accounts.models import TeamRole, UserRole

    labels = {**dict(UserRole.choices), **dict(TeamRole.choices)}
    role = access.role_of(user)
    if role in ("admin", "auditor"):
        return str(labels[role])
    if access.supervised_team_ids(user):
        return str(labels["supervisor"])
    return str(labels["agent"])
