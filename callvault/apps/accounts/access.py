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

MEMO = "_callvault_access_memo"


def remember_per_request(user: Any) -> Any:
    """Let :func:`role_of` and :func:`supervised_team_ids` answer once per request for ``user``.

    Set on the request's own user object (``web.middleware.AccessMemoMiddleware``): a page asks
    both several times (the view, the filters, the menu). Long-lived user objects are not
    marked, so they always read the database.
    """
    if user is not None and getattr(user, "pk", None) is not None:
        setattr(user, MEMO, {})
    return user


def _memo(user: Any) -> dict[str, Any] | None:
    memo = getattr(user, MEMO, None)
    return memo if isinstance(memo, dict) else None


def role_of(user: Any) -> str:
    if user is None or not user.is_authenticated or not user.is_active:
        return "anonymous"
    if user.is_superuser:
        return str(UserRole.ADMIN)
    memo = _memo(user)
    if memo is not None and "role" in memo:
        return str(memo["role"])
    profile = Profile.objects.filter(user=user).only("role").first()
    role = profile.role if profile else str(UserRole.MEMBER)
    if memo is not None:
        memo["role"] = role
    return role


def is_admin(user: Any) -> bool:
    return role_of(user) == UserRole.ADMIN


def can_view_audit(user: Any) -> bool:
    return role_of(user) in (UserRole.ADMIN, UserRole.AUDITOR)


def supervised_team_ids(user: Any) -> list[int]:
    memo = _memo(user)
    if memo is not None and "supervised" in memo:
        return list(memo["supervised"])
    teams = list(user.memberships.filter(role=TeamRole.SUPERVISOR).values_list("team_id", flat=True))
    if memo is not None:
        memo["supervised"] = list(teams)
    return teams


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
