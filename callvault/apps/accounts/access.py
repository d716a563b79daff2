"""The one access helper: every page, download and API endpoint asks here.

Objects outside a user's reach are reported as "not found" (404), never as
"forbidden", so that ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# --- Customers (顧客) ---------------------------------------------------------------------------
# Visible to members of the owner team (any team role) and admins; supervisors of the owner team
# and admins edit, merge, delete, import and export; any member of the team may create customers
# for that team and add notes. Customers without an owner team are for admins only.


def customer_team_ids(user: Any) -> list[int] | None:
    """Teams whose customers the user sees: None for every team (admins), [] for none."""
    role = role_of(user)
    if role == UserRole.ADMIN:
        return None
    if role != UserRole.MEMBER:
        return []
    return list(user.memberships.values_list("team_id", flat=True))


def visible_customers(user: Any) -> QuerySet[Any]:
    from callvault.apps.customers.models import Customer

    teams = customer_team_ids(user)
    if teams is None:
        return Customer.objects.all()
    return Customer.objects.filter(owner_team_id__in=teams)


def get_customer_for_user(user: Any, customer_id: Any) -> Any:
    """The customer if the user may see it; 404 otherwise (also for malformed ids)."""
    from callvault.apps.customers.models import Customer

    try:
        return visible_customers(user).get(pk=int(customer_id))
    except (Customer.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("customer not found") from None


def customer_edit_team_ids(user: Any) -> list[int] | None:
    """Teams whose customers the user may edit: None for every team (admins)."""
    role = role_of(user)
    if role == UserRole.ADMIN:
        return None
    if role != UserRole.MEMBER:
        return []
    return supervised_team_ids(user)


def can_edit_customer(user: Any, customer: Any) -> bool:
    teams = customer_edit_team_ids(user)
    return teams is None or (customer.owner_team_id is not None and customer.owner_team_id in teams)


def can_create_customer(user: Any, team_id: int | None) -> bool:
    """Members create customers for their own teams; only admins create ones without a team."""
    teams = customer_team_ids(user)
    if teams is None:
        return True
    return team_id is not None and team_id in teams


def can_manage_customers(user: Any) -> bool:
    """Import, export, merge, number lists: admins and supervisors (of their teams)."""
    teams = customer_edit_team_ids(user)
    return teams is None or bool(teams)


@dataclass(frozen=True)
class Reach:
    """What one user reaches, read once (at most two queries), for hot paths that ask several
    questions at once (the caller card). Same rules as :func:`visible_calls` and
    :func:`customer_team_ids`."""

    role: str
    user_id: int | None
    team_ids: tuple[int, ...] = ()  # every team the user belongs to
    call_team_ids: tuple[int, ...] = ()  # teams whose calls the user sees (supervised, shared)

    def calls(self) -> QuerySet[Call]:
        if self.role == UserRole.ADMIN:
            return Call.objects.all()
        if self.role != UserRole.MEMBER:
            return Call.objects.none()
        return Call.objects.filter(Q(team_id__in=self.call_team_ids) | Q(agent_id=self.user_id))

    def customer_team_ids(self) -> list[int] | None:
        if self.role == UserRole.ADMIN:
            return None
        return list(self.team_ids) if self.role == UserRole.MEMBER else []


# The tables of accounts.Membership, Team and Profile (tests/customers compare this with the ORM).
_MEMBERSHIPS_SQL = (
    "SELECT m.team_id, m.role, t.share_calls, p.role FROM accounts_membership m "
    "JOIN accounts_team t ON t.id = m.team_id LEFT JOIN accounts_profile p ON p.user_id = m.user_id "
    "WHERE m.user_id = %s"
)


def _memberships_with_role(user_id: int) -> list[tuple[int, str, bool, str | None]]:
    """(team id, team role, team shares calls, the user's profile role) per membership."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_MEMBERSHIPS_SQL, [user_id])
        rows = cursor.fetchall()
    return [(int(team), str(role), bool(shared), prole) for team, role, shared, prole in rows]


def reach_of(user: Any) -> Reach:
    if user is None or not user.is_authenticated or not user.is_active or user.is_superuser:
        return Reach(role_of(user), getattr(user, "pk", None))
    # one query for a team member: the memberships with the profile's role alongside (plain SQL:
    # this runs for every caller card and page, and the ORM's compilation cost more than the query)
    rows_with_role = _memberships_with_role(user.pk)
    role = (rows_with_role[0][3] or str(UserRole.MEMBER)) if rows_with_role else role_of(user)
    if role != UserRole.MEMBER:
        return Reach(role, user.pk)
    rows = [(t, r, shared) for t, r, shared, _role in rows_with_role]
    calls = [t for t, r, shared in rows if r == TeamRole.SUPERVISOR or (r == TeamRole.AGENT and shared)]
    return Reach(role, user.pk, tuple(t for t, _r, _s in rows), tuple(calls))
