"""The one access helper: every page, download and API endpoint asks here.

Objects outside a user's reach are reported as "not found" (404), never as
"forbidden", so that ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from callvault.apps.accounts.models import Profile, TeamRole, UserRole
from callvault.apps.calls.models import Call


def role_of(user: Any) -> str:
    if user is None or not user.is_authenticated or not user.is_active:
        return "anonymous"
    if user.is_superuser:
        return str(UserRole.ADMIN)
    profile = Profile.objects.filter(user=user).only("role").first()
    return profile.role if profile else str(UserRole.MEMBER)


def is_admin(user: Any) -> bool:
    return role_of(user) == UserRole.ADMIN


def can_view_audit(user: Any) -> bool:
    return role_of(user) in (UserRole.ADMIN, UserRole.AUDITOR)


def supervised_team_ids(user: Any) -> list[int]:
    return list(user.memberships.filter(role=TeamRole.SUPERVISOR).values_list("team_id", flat=True))


def visible_calls(user: Any) -> QuerySet[Call]:
    """Every call the user may see (list, page, recording, API)."""
    role = role_of(user)
    if role == UserRole.ADMIN:
        return Call.objects.all()
    if role != UserRole.MEMBER:
        return Call.objects.none()
    memberships = list(user.memberships.select_related("team"))
    supervised = [m.team_id for m in memberships if m.role == TeamRole.SUPERVISOR]
    shared = [m.team_id for m in memberships if m.role == TeamRole.AGENT and m.team.share_calls]
    return Call.objects.filter(Q(team_id__in=supervised + shared) | Q(agent=user))


def get_call_for_user(user: Any, call_id: Any) -> Call:
    """The call if the user may see it; 404 otherwise (also for malformed ids)."""
    try:
        return visible_calls(user).get(pk=call_id)
    except (Call.DoesNotExist, ValueError, TypeError):
        raise Http404("call not found") from None
    except Exception as exc:  # a malformed UUID raises ValidationError on some backends
        if type(exc).__name__ == "ValidationError":
            raise Http404("call not found") from None
        raise


def can_export(user: Any, call: Call | None = None) -> bool:
    """Supervisors (of the call's team, or of any team for list exports) and admins may export."""
    role = role_of(user)
    if role == UserRole.ADMIN:
        return True
    if role != UserRole.MEMBER:
        return False
    teams = supervised_team_ids(user)
    if call is None:
        return bool(teams)
    return call.team_id in teams


def can_manage_call(user: Any, call: Call) -> bool:
    """Tagging, deleting and similar changes: admins and the call's supervisors."""
    return can_export(user, call)
