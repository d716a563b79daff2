"""Every endpoint, every role: the same rules as the UI, and 404 for anything out of reach."""

from __future__ import annotations

from typing import Any

import pytest

from callvault.apps.calls.models import Comment
from tests.api.conftest import Cast

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]

# Which of call_a / call_b each role sees.
SEES = {
    "admin": {"a", "b"},
    "supervisor": {"a"},
    "member": {"a"},
    "outsider": {"b"},
    "auditor": set(),
}
# Who may change tags (can_manage_call): admins and the call's supervisors.
TAGS_A = {"admin", "supervisor"}


def call_of(cast: Cast, name: str) -> Any:
    return cast.call_a if name == "a" else cast.call_b


@pytest.mark.parametrize("role", list(SEES))
def test_the_list_holds_exactly_the_calls_the_role_may_see(cast: Cast, api_for: Any, role: str) -> None:
    response = api_for(role).get("/calls")
    assert response.status_code == 200
    ids = {item["id"] for item in response.json()["items"]}
    assert ids == {str(call_of(cast, n).pk) for n in SEES[role]}


@pytest.mark.parametrize("role", list(SEES))
@pytest.mark.parametrize("name", ["a", "b"])
@pytest.mark.parametrize("suffix", ["", "/comments", "/recording"])
def test_reads_of_a_call_answer_404_out_of_reach(
    cast: Cast, api_for: Any, make_recording: Any, role: str, name: str, suffix: str
) -> None:
    call = call_of(cast, name)
    make_recording(call, seconds=1.0)
    response = api_for(role).get(f"/calls/{call.pk}{suffix}")
    expected = 200 if name in SEES[role] else 404
    assert response.status_code == expected, (role, name, suffix)
    if expected == 404:
        assert response.json() == {"error": "not_found", "message": "通話が見つかりません。", "param": None}


@pytest.mark.parametrize("role", list(SEES))
@pytest.mark.parametrize("name", ["a", "b"])
def test_commenting_follows_visibility(cast: Cast, api_for: Any, role: str, name: str) -> None:
    call = call_of(cast, name)
    response = api_for(role).post(f"/calls/{call.pk}/comments", {"text": "確認しました"})
    assert response.status_code == (201 if name in SEES[role] else 404), (role, name)


@pytest.mark.parametrize("role", list(SEES))
def test_tagging_call_a_needs_a_supervisor_of_its_team_or_an_admin(
    cast: Cast, api_for: Any, role: str
) -> None:
    api = api_for(role)
    added = api.post(f"/calls/{cast.call_a.pk}/tags", {"tag": "クレーム"})
    removed = api.delete(f"/calls/{cast.call_a.pk}/tags", {"tag": "クレーム"})
    if role in TAGS_A:
        assert (added.status_code, removed.status_code) == (201, 200)
    elif "a" in SEES[role]:
        assert (added.status_code, removed.status_code) == (403, 403)
        assert added.json()["error"] == "forbidden"
    else:
        assert (added.status_code, removed.status_code) == (404, 404)


@pytest.mark.parametrize("role", list(SEES))
def test_deleting_a_comment_needs_its_author_or_an_admin(cast: Cast, api_for: Any, role: str) -> None:
    comment = Comment.objects.create(call=cast.call_a, author=cast.member, text="担当者のメモ")
    response = api_for(role).delete(f"/calls/{cast.call_a.pk}/comments/{comment.pk}")
    expected = {"admin": 204, "member": 204, "supervisor": 403, "outsider": 404, "auditor": 404}[role]
    assert response.status_code == expected, role
    assert Comment.objects.filter(pk=comment.pk).exists() == (expected != 204)


def test_a_comment_id_of_another_call_is_not_found(cast: Cast, api_for: Any) -> None:
    foreign = Comment.objects.create(call=cast.call_b, author=cast.outsider, text="B のメモ")
    response = api_for("admin").delete(f"/calls/{cast.call_a.pk}/comments/{foreign.pk}")
    assert response.status_code == 404
    assert Comment.objects.filter(pk=foreign.pk).exists()


@pytest.mark.parametrize("role", list(SEES))
def test_everyone_signed_in_may_read_me_and_the_tag_list(cast: Cast, api_for: Any, role: str) -> None:
    api = api_for(role)
    me = api.get("/me")
    assert me.status_code == 200
    assert me.json()["role"] == {"admin": "admin", "auditor": "auditor"}.get(role, "member")
    assert api.get("/tags").status_code == 200


def test_me_reports_the_permissions_of_each_role(cast: Cast, api_for: Any) -> None:
    flags = {
        r: (api_for(r).get("/me").json()["can_export"], api_for(r).get("/me").json()["can_view_audit"])
        for r in SEES
    }
    assert flags == {
        "admin": (True, True),
        "supervisor": (True, False),
        "member": (False, False),
        "outsider": (False, False),
        "auditor": (False, True),
    }


def test_agents_of_a_team_that_does_not_share_see_only_their_own_calls(cast: Cast, api_for: Any) -> None:
    from tests.api.conftest import make_call

    cast.team_a.share_calls = False
    cast.team_a.save()
    colleague = make_call(cast.team_a, None, callee="209")
    member = api_for("member")
    assert {i["id"] for i in member.get("/calls").json()["items"]} == {str(cast.call_a.pk)}
    assert member.get(f"/calls/{colleague.pk}").status_code == 404
    assert api_for("supervisor").get(f"/calls/{colleague.pk}").status_code == 200
