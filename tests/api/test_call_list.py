"""The call list: filters, number and name search, and keyset pagination."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from callvault.apps.calls.models import Call, CallTag, Participant, Tag
from tests.api.conftest import Cast, make_call

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]

TOKYO = ZoneInfo("Asia/Tokyo")


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


def call_at(cast: Cast, when: str, **fields: Any) -> Call:
    call = make_call(cast.team_a, cast.member, **fields)
    Call.objects.filter(pk=call.pk).update(started_at=at(when))
    call.refresh_from_db()
    return call


def test_items_show_the_call_as_people_read_it(cast: Cast, api_for: Any) -> None:
    item = api_for("member").get("/calls").json()["items"][0]
    assert item["caller"] == {"number": "+81312345678", "display": "03-1234-5678", "name": "山田 太郎"}
    assert item["callee"] == {"number": "201", "display": "201", "name": ""}
    assert item["team"] == {"id": cast.team_a.pk, "name": "営業部"}
    assert item["agent"] == {"id": cast.member.pk, "username": "member", "display_name": "member"}
    assert item["started_at"].endswith("+09:00")
    assert item["url"] == f"http://testserver/api/v1/calls/{cast.call_a.pk}"
    assert (item["direction"], item["state"], item["recording_state"]) == ("in", "completed", "ready")


@pytest.mark.parametrize(
    "q", ["03-1234-5678", "0312345678", "+81312345678", "０３－１２３４－５６７８", "(03) 1234 5678"]
)
def test_a_number_is_found_however_it_is_written(cast: Cast, api_for: Any, q: str) -> None:
    assert ids(api_for("admin").get("/calls", {"q": q})) == [str(cast.call_a.pk)]


def test_partial_numbers_extensions_and_names_are_found(cast: Cast, api_for: Any) -> None:
    admin = api_for("admin")
    other = make_call(cast.team_a, None, caller="+81452223333", callee="205", caller_name="佐藤 花子")
    assert ids(admin.get("/calls", {"q": "045-222"})) == [str(other.pk)]
    assert ids(admin.get("/calls", {"q": "205"})) == [str(other.pk)]
    assert ids(admin.get("/calls", {"q": "佐藤"})) == [str(other.pk)]
    assert set(ids(admin.get("/calls", {"q": "山田"}))) == {str(cast.call_a.pk), str(cast.call_b.pk)}
    Participant.objects.create(call=other, role="other", number="+81667778888", display_name="転送先 鈴木")
    assert ids(admin.get("/calls", {"q": "鈴木"})) == [str(other.pk)]
    assert ids(admin.get("/calls", {"q": "06-6777-8888"})) == [str(other.pk)]
    assert ids(admin.get("/calls", {"q": "存在しない名前"})) == []


def test_search_stays_within_what_the_user_may_see(cast: Cast, api_for: Any) -> None:
    assert ids(api_for("member").get("/calls", {"q": "090-1234-5678"})) == []
    assert ids(api_for("outsider").get("/calls", {"q": "090-1234-5678"})) == [str(cast.call_b.pk)]


def test_dates_select_whole_days_in_tokyo_and_datetimes_exact_moments(cast: Cast, api_for: Any) -> None:
    early = call_at(cast, "2026-11-26T23:59:59")
    morning = call_at(cast, "2026-11-27T00:00:00")
    evening = call_at(cast, "2026-11-27T23:59:59.900000")
    late = call_at(cast, "2026-11-28T00:00:00")
    admin = api_for("admin")
    day = {"from": "2026-11-27", "to": "2026-11-27"}
    assert ids(admin.get("/calls", day)) == [str(evening.pk), str(morning.pk)]
    assert ids(admin.get("/calls", {"from": "2026-11-27T12:00", "to": "2026-11-28T00:00:00+09:00"})) == [
        str(late.pk),
        str(evening.pk),
    ]
    assert ids(admin.get("/calls", {"to": "2026-11-26T14:59:59Z"})) == [str(early.pk)]


def test_enum_team_agent_tag_and_duration_filters(cast: Cast, api_for: Any) -> None:
    short = make_call(cast.team_a, cast.supervisor, duration=12.0, direction="out", state="cancelled")
    long = make_call(cast.team_a, None, duration=600.0, recording_state="failed")
    CallTag.objects.create(call=long, tag=Tag.objects.create(name="要折り返し"))
    admin = api_for("admin")
    assert ids(admin.get("/calls", {"direction": "out"})) == [str(short.pk)]
    assert ids(admin.get("/calls", {"state": "cancelled"})) == [str(short.pk)]
    assert ids(admin.get("/calls", {"recording_state": "failed"})) == [str(long.pk)]
    assert set(ids(admin.get("/calls", {"team": cast.team_b.pk}))) == {str(cast.call_b.pk)}
    assert ids(admin.get("/calls", {"agent": cast.supervisor.pk})) == [str(short.pk)]
    assert ids(admin.get("/calls", {"tag": "要折り返し"})) == [str(long.pk)]
    assert ids(admin.get("/calls", {"min_duration": 300})) == [str(long.pk)]
    assert ids(admin.get("/calls", {"max_duration": 30})) == [str(short.pk)]
    assert set(ids(admin.get("/calls", {"min_duration": 60, "max_duration": 65}))) == {
        str(cast.call_a.pk),
        str(cast.call_b.pk),
    }


def test_filters_cannot_reach_other_teams_calls(cast: Cast, api_for: Any) -> None:
    member = api_for("member")
    assert ids(member.get("/calls", {"team": cast.team_b.pk})) == []
    assert ids(member.get("/calls", {"agent": cast.outsider.pk})) == []


def walk(api: Any, params: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = api.get("/calls", {**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.content
        body = page.json()
        assert len(body["items"]) <= params["limit"]
        seen += [item["id"] for item in body["items"]]
        cursor = body["next"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_pages_cover_every_call_once_newest_first_even_with_equal_start_times(
    cast: Cast, api_for: Any
) -> None:
    same = timezone.now() - timedelta(hours=1)
    tied = [make_call(cast.team_a, None) for _ in range(7)]
    Call.objects.filter(pk__in=[c.pk for c in tied]).update(started_at=same)
    for i in range(5):
        make_call(cast.team_a, None, minutes_ago=30 + i)
    expected = [str(pk) for pk in Call.objects.order_by("-started_at", "-id").values_list("pk", flat=True)]
    for limit in (1, 2, 3, 5, 200):
        assert walk(api_for("admin"), {"limit": limit}) == expected, limit


def test_a_new_call_arriving_between_pages_does_not_shift_later_pages(cast: Cast, api_for: Any) -> None:
    for i in range(4):
        make_call(cast.team_a, None, minutes_ago=10 + i)
    admin = api_for("admin")
    first = admin.get("/calls", {"limit": 3}).json()
    make_call(cast.team_a, None, minutes_ago=0)  # newest: belongs before page 1
    second = admin.get("/calls", {"limit": 3, "cursor": first["next"]}).json()
    everything = [str(pk) for pk in Call.objects.order_by("-started_at", "-id").values_list("pk", flat=True)]
    assert [i["id"] for i in first["items"] + second["items"]] == everything[1:7]


def test_the_last_page_has_no_next_cursor(cast: Cast, api_for: Any) -> None:
    body = api_for("admin").get("/calls", {"limit": 2}).json()
    assert len(body["items"]) == 2 and body["next"] is None and body["limit"] == 2


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "2026-11-27T25:00"}, "to"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "2026-11-28", "to": "2026-11-27"}, "to"),
        ({"from": "x" * 41}, "from"),
        ({"direction": "sideways"}, "direction"),
        ({"state": "done"}, "state"),
        ({"recording_state": "maybe"}, "recording_state"),
        ({"team": "営業部"}, "team"),
        ({"team": 0}, "team"),
        ({"team": 10**30}, "team"),
        ({"agent": -1}, "agent"),
        ({"min_duration": -1}, "min_duration"),
        ({"min_duration": "nan"}, "min_duration"),
        ({"max_duration": "inf"}, "max_duration"),
        ({"min_duration": 100, "max_duration": 10}, "max_duration"),
        ({"q": "あ" * 101}, "q"),
        ({"tag": "t" * 51}, "tag"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "WyIyMDI2LTExLTI3IiwiYWJjIl0:forgedsignature"}, "cursor"),
        ({"cursor": "c" * 301}, "cursor"),
    ],
)
def test_invalid_values_answer_400_naming_the_parameter(
    cast: Cast, api_for: Any, params: dict[str, Any], param: str
) -> None:
    response = api_for("admin").get("/calls", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["error"], body["param"]) == ("invalid_parameter", param)
    assert param in body["message"] or body["message"]


def test_a_cursor_from_another_installation_is_refused(cast: Cast, api_for: Any, settings: Any) -> None:
    make_call(cast.team_a, None)
    cursor = api_for("admin").get("/calls", {"limit": 1}).json()["next"]
    settings.SECRET_KEY = "another-installation-secret-key-0123456789abcdefghij"
    response = api_for("admin").get("/calls", {"limit": 1, "cursor": cursor})
    assert (response.status_code, response.json()["param"]) == (400, "cursor")


def test_unknown_parameters_are_ignored(cast: Cast, api_for: Any) -> None:
    assert len(ids(api_for("admin").get("/calls", {"colour": "blue"}))) == 2
