"""The cast for access tests: one user per role, two teams, calls in each.

- ``admin``: organisation administrator (sees everything)
- ``supervisor``: supervisor of team A (all of A's calls, may export)
- ``member``: agent in team A (A shares calls with its members)
- ``outsider``: agent in team B (must never see A's calls: 404)
- ``auditor``: reads the audit log, sees no calls
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from callvault.apps.accounts.models import Line, Membership, Profile, Team
from callvault.apps.calls.models import Call, Participant

PASSWORD = "correct horse battery staple"


@dataclass
class Cast:
    admin: Any
    supervisor: Any
    member: Any
    outsider: Any
    auditor: Any
    team_a: Team
    team_b: Team
    call_a: Call
    call_b: Call

    def users(self) -> dict[str, Any]:
        return {
            "admin": self.admin,
            "supervisor": self.supervisor,
            "member": self.member,
            "outsider": self.outsider,
            "auditor": self.auditor,
        }


def make_user(username: str, *, role: str = "member", superuser: bool = False) -> Any:
    User = get_user_model()
    if superuser:
        user = User.objects.create_superuser(username=username, password=PASSWORD, email="")
    else:
        user = User.objects.create_user(username=username, password=PASSWORD)
    Profile.objects.update_or_create(user=user, defaults={"role": role, "display_name": username})
    return user


def make_call(
    team: Team | None = None,
    agent: Any = None,
    *,
    caller: str = "+81312345678",
    callee: str = "201",
    minutes_ago: float = 5,
    **fields: Any,
) -> Call:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    defaults: dict[str, Any] = {
        "state": "completed",
        "recording_state": "ready",
        "direction": "in",
        "started_at": started,
        "answered_at": started,
        "ended_at": started + timedelta(seconds=65),
        "duration": 65.0,
        "caller_number": caller,
        "callee_number": callee,
        "caller_name": "山田 太郎",
        "sip_call_id": uuid.uuid4().hex,
        "spool_key": uuid.uuid4().hex,
    }
    defaults.update(fields)
    call = Call.objects.create(team=team, agent=agent, **defaults)
    Participant.objects.create(call=call, role="caller", number=caller, display_name=defaults["caller_name"])
    Participant.objects.create(call=call, role="callee", number=callee)
    return call


@pytest.fixture
def cast(db: None) -> Cast:
    team_a = Team.objects.create(name="営業部")
    team_b = Team.objects.create(name="サポート部")
    admin = make_user("admin", role="admin", superuser=True)
    supervisor = make_user("supervisor")
    member = make_user("member")
    outsider = make_user("outsider")
    auditor = make_user("auditor", role="auditor")
    Membership.objects.create(user=supervisor, team=team_a, role="supervisor")
    Membership.objects.create(user=member, team=team_a, role="agent")
    Membership.objects.create(user=outsider, team=team_b, role="agent")
    Line.objects.create(number="201", team=team_a, user=member, label="営業 山本")
    Line.objects.create(number="301", team=team_b, user=outsider, label="サポート 鈴木")
    call_a = make_call(team_a, member, callee="201")
    call_b = make_call(team_b, outsider, callee="301", caller="+819012345678")
    return Cast(admin, supervisor, member, outsider, auditor, team_a, team_b, call_a, call_b)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Argon2 is right for production and far too slow for creating users in every test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
