"""The access helper: who sees which calls."""

from __future__ import annotations

import pytest
from django.http import Http404

from callvault.apps.accounts import access
from callvault.apps.accounts.services import assign_call
from tests.apps.conftest import Cast, make_call

EXPECTED = {
    "admin": {"a", "b"},
    "supervisor": {"a"},
    "member": {"a"},
    "outsider": {"b"},
    "auditor": set(),
}


def test_each_role_sees_exactly_its_calls(cast: Cast) -> None:
    names = {cast.call_a.pk: "a", cast.call_b.pk: "b"}
    for role, user in cast.users().items():
        seen = {names[c.pk] for c in access.visible_calls(user)}
        assert seen == EXPECTED[role], role
        for call, name in ((cast.call_a, "a"), (cast.call_b, "b")):
            if name in EXPECTED[role]:
                assert access.get_call_for_user(user, call.pk) == call
            else:
                with pytest.raises(Http404):
                    access.get_call_for_user(user, call.pk)


def test_malformed_ids_are_not_found_rather_than_errors(cast: Cast) -> None:
    for bad in ("not-a-uuid", "", "1; DROP TABLE calls_call", None):
        with pytest.raises(Http404):
            access.get_call_for_user(cast.admin, bad)


def test_agents_see_only_their_own_calls_when_the_team_does_not_share(cast: Cast) -> None:
    cast.team_a.share_calls = False
    cast.team_a.save()
    colleague_call = make_call(cast.team_a, None, callee="209")
    assert set(access.visible_calls(cast.member)) == {cast.call_a}
    assert colleague_call in access.visible_calls(cast.supervisor)


def test_only_supervisors_of_the_team_and_admins_may_export(cast: Cast) -> None:
    assert access.can_export(cast.admin, cast.call_b)
    assert access.can_export(cast.supervisor, cast.call_a)
    assert not access.can_export(cast.supervisor, cast.call_b)
    assert not access.can_export(cast.member, cast.call_a)
    assert not access.can_export(cast.auditor)
    assert access.can_view_audit(cast.auditor) and not access.can_view_audit(cast.supervisor)


def test_calls_are_assigned_by_the_company_side_line(cast: Cast) -> None:
    inbound = make_call(None, None, caller="+81312345678", callee="301")
    assert assign_call(inbound)
    assert (inbound.team_id, inbound.agent_id) == (cast.team_b.pk, cast.outsider.pk)
    outbound = make_call(None, None, caller="201", callee="+81312345678", direction="out")
    assert assign_call(outbound)
    assert (outbound.team_id, outbound.agent_id) == (cast.team_a.pk, cast.member.pk)
    unknown = make_call(None, None, caller="+81312345678", callee="999")
    assert not assign_call(unknown) and unknown.team_id is None


def test_inactive_or_anonymous_users_see_nothing(cast: Cast) -> None:
    from django.contrib.auth.models import AnonymousUser

    assert not access.visible_calls(AnonymousUser()).exists()
    cast.supervisor.is_active = False
    cast.supervisor.save()
    assert not access.visible_calls(cast.supervisor).exists()
