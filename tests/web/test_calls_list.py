"""The calls list: access per role, filters, keyset pages, bad input, live rows and CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import AsyncClient, Client
from django.utils import timezone

from callvault.apps.accounts.models import Membership, Team
from callvault.apps.audit.models import AuditEntry
from callvault.apps.calls.models import Call, CallTag, Tag
from callvault.apps.web import calls_list
from tests.apps.conftest import Cast, make_call, make_user

pytestmark = pytest.mark.django_db

EXPECTED = {
    "admin": {"a", "b"},
    "supervisor": {"a"},
    "member": {"a"},
    "outsider": {"b"},
    "auditor": set(),
}
ROW_ID = re.compile(r'<tr data-call-id="([0-9a-f-]{36})"')


def ids(response: Any) -> list[str]:
    return ROW_ID.findall(response.content.decode())


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def names(cast: Cast, found: list[str]) -> set[str]:
    by_id = {str(cast.call_a.pk): "a", str(cast.call_b.pk): "b"}
    return {by_id.get(i, i) for i in found}


# --- access -------------------------------------------------------------------------------------


def test_each_role_sees_exactly_its_calls(cast: Cast) -> None:
    for role, user in cast.users().items():
        response = login(user).get("/")
        assert response.status_code == 200, role
        assert names(cast, ids(response)) == EXPECTED[role], role


def test_the_page_is_japanese_with_the_list_columns(cast: Cast) -> None:
    html = login(cast.supervisor).get("/").content.decode()
    for text in ("通話一覧", "日時", "方向", "相手", "担当者", "通話時間", "チーム", "状態 / 録音"):
        assert text in html, text
    assert "03-1234-5678" in html and "+81312345678" not in html
    assert "1分05秒" in html and "着信" in html and "営業部" in html
    assert f"/calls/{cast.call_a.pk}/" in html
    assert "CSV出力" in html  # supervisors may export


def test_members_and_auditors_are_not_offered_the_export(cast: Cast) -> None:
    assert "CSV出力" not in login(cast.member).get("/").content.decode()
    html = login(cast.auditor).get("/").content.decode()
    assert "CSV出力" not in html and "通話を閲覧する権限がありません" in html


def test_dates_are_shown_in_japan_time(cast: Cast) -> None:
    call = make_call(cast.team_a, cast.member, started_at=datetime(2026, 11, 27, 5, 5, tzinfo=UTC))
    html = login(cast.supervisor).get("/").content.decode()
    assert str(call.pk) in html and "2026/11/27 14:05" in html


# --- filters ------------------------------------------------------------------------------------


@pytest.fixture
def spread(cast: Cast) -> dict[str, Call]:
    """Calls that differ in one property each, all in team A."""
    now = timezone.localtime()
    old = now - timedelta(days=40)
    tag = Tag.objects.create(name="クレーム", color="#dc2626")
    calls = {
        "old": make_call(cast.team_a, cast.member, started_at=old, caller="+81455551234"),
        "out": make_call(cast.team_a, cast.member, direction="out", caller="201", callee="+819011112222"),
        "long": make_call(cast.team_a, cast.member, duration=600.0, caller="+81662223333"),
        "named": make_call(cast.team_a, cast.member, caller_name="佐藤 花子", caller="+81667778888"),
        "missed": make_call(cast.team_a, cast.member, state="cancelled", recording_state="none", duration=0),
        "tagged": make_call(cast.team_a, cast.member, caller="+81522223333"),
        "boss": make_call(cast.team_a, cast.supervisor, caller="+81533334444"),
        "withheld": make_call(cast.team_a, cast.member, caller="anonymous"),
    }
    CallTag.objects.create(call=calls["tagged"], tag=tag)
    return calls


def found(client: Client, query: str) -> set[str]:
    response = client.get("/?" + query)
    assert response.status_code == 200, response.content.decode()[:2000]
    return set(ids(response))


def test_it_finds_a_number_however_it_is_typed(cast: Cast, spread: dict[str, Call]) -> None:
    client = login(cast.supervisor)
    a = str(cast.call_a.pk)
    for typed in (
        "03-1234-5678",
        "0312345678",
        "０３－１２３４－５６７８",
        "+81 3-1234-5678",
        "1234-5678",
        "03ー1234ー5678",
    ):
        hits = found(client, "q=" + typed.replace("+", "%2B"))
        assert a in hits, typed
        assert str(spread["long"].pk) not in hits, typed
    assert found(client, "q=090-1111-2222") == {str(spread["out"].pk)}


def test_it_finds_names_partially_and_withheld_numbers(cast: Cast, spread: dict[str, Call]) -> None:
    client = login(cast.supervisor)
    assert found(client, "q=佐藤") == {str(spread["named"].pk)}
    assert found(client, "q=非通知") == {str(spread["withheld"].pk)}


def test_it_filters_by_date_range_in_japan_time(cast: Cast, spread: dict[str, Call]) -> None:
    client = login(cast.supervisor)
    day = timezone.localtime(spread["old"].started_at).date()
    assert found(client, f"date_from={day}&date_to={day}") == {str(spread["old"].pk)}
    assert str(spread["old"].pk) not in found(client, f"date_from={day + timedelta(days=1)}")
    assert found(client, f"date_to={day:%Y/%m/%d}") == {str(spread["old"].pk)}


def test_it_filters_by_direction_state_recording_and_duration(cast: Cast, spread: dict[str, Call]) -> None:
    client = login(cast.supervisor)
    assert found(client, "direction=out") == {str(spread["out"].pk)}
    assert found(client, "state=cancelled") == {str(spread["missed"].pk)}
    assert found(client, "recording=none") == {str(spread["missed"].pk)}
    assert found(client, "dur_min=5") == {str(spread["long"].pk)}  # minutes
    assert found(client, "dur_min=5分") == {str(spread["long"].pk)}
    assert found(client, "dur_min=599秒&dur_max=10:00") == {str(spread["long"].pk)}
    assert found(client, "dur_max=0") == {str(spread["missed"].pk)}


def test_it_filters_by_tag_team_and_agent(cast: Cast, spread: dict[str, Call]) -> None:
    client = login(cast.admin)
    tag = Tag.objects.get()
    assert found(client, f"tag={tag.pk}") == {str(spread["tagged"].pk)}
    assert found(client, f"team={cast.team_b.pk}") == {str(cast.call_b.pk)}
    assert found(client, f"agent={cast.supervisor.pk}") == {str(spread["boss"].pk)}


def test_a_filter_cannot_widen_what_a_user_sees(cast: Cast, spread: dict[str, Call]) -> None:
    client = login(cast.outsider)
    response = client.get(f"/?team={cast.team_a.pk}")
    assert response.status_code == 400 and ids(response) == []
    assert "指定されたチームは選択できません。" in response.content.decode()
    assert found(client, "q=03-1234-5678") == set()


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date_from=2026-13-45", "開始日は 2026/11/27 のような日付で入力してください。"),
        ("date_to=yesterday", "終了日は 2026/11/27 のような日付で入力してください。"),
        ("date_from=2026-11-27&date_to=2026-11-01", "終了日は開始日以降の日付にしてください。"),
        ("date_from=0001-01-01", "日付は1970年から2100年の間で指定してください。"),
        ("direction=sideways", "は選択できません"),
        ("state=exploded", "は選択できません"),
        ("team=abc", "指定されたチームは選択できません。"),
        ("agent=999999", "指定された担当者は選択できません。"),
        ("tag=999999", "指定されたタグは存在しません。"),
        ("tag=x", "指定されたタグは存在しません。"),
        ("dur_min=abc", "通話時間は「3」(分)、「3分」、「90秒」、「1:30」のように入力してください。"),
        ("dur_min=10&dur_max=1", "通話時間の上限は下限以上にしてください。"),
        ("dur_max=99999999", "通話時間は"),
        ("q=" + "あ" * 101, "検索語は100文字以内で入力してください。"),
        ("after=garbage", "ページの指定が正しくありません。"),
        ("after=MjAyNi0xMS0yN3xub3QtYS11dWlk", "ページの指定が正しくありません。"),
        ("before=%00%01", "ページの指定が正しくありません。"),
    ],
)
def test_bad_filters_answer_400_with_a_visible_message(cast: Cast, query: str, message: str) -> None:
    response = login(cast.supervisor).get("/?" + query)
    html = response.content.decode()
    assert response.status_code == 400, query
    assert "検索条件を確認してください。" in html and message in html, query
    assert ids(response) == []


def test_huge_query_strings_are_refused_with_a_message(cast: Cast) -> None:
    client = login(cast.supervisor)
    response = client.get("/?q=" + "9" * 5000)
    assert response.status_code == 400
    assert "検索条件が長すぎます。" in response.content.decode()
    response = client.get("/?" + "&".join(f"tag={i}" for i in range(30)))
    assert response.status_code == 400
    response = client.get("/?" + "&".join(f"x{i}=1" for i in range(1500)))
    assert response.status_code == 400


# --- keyset pagination -------------------------------------------------------------------------


def test_keyset_pages_cover_every_call_once_even_with_equal_times(cast: Cast) -> None:
    Call.objects.all().delete()
    base = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    made = []
    for i in range(130):
        started = base - timedelta(minutes=i // 40)  # four groups of calls with the same start time
        made.append(make_call(cast.team_a, cast.member, started_at=started))
    expected = [str(c.pk) for c in sorted(made, key=lambda c: (c.started_at, str(c.pk)), reverse=True)]
    client = login(cast.supervisor)
    seen: list[str] = []
    url = "/"
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = ids(response)
        pages.append(page)
        seen += page
        more = re.search(r'href="(/\?after=[^"]+)" rel="next"', response.content.decode())
        url = more.group(1).replace("&amp;", "&") if more else ""
    assert [len(p) for p in pages] == [50, 50, 30]
    assert seen == expected
    # ... and back towards the newest calls.
    html = client.get(url or "/?after=" + _cursor_after(expected[99])).content.decode()
    newer = re.search(r'href="(/\?before=[^"]+)" rel="prev"', html)
    assert newer is not None
    back = client.get(newer.group(1).replace("&amp;", "&"))
    assert ids(back) == expected[50:100]
    newest = re.search(r'href="(/\?before=[^"]+)" rel="prev"', back.content.decode())
    assert newest is not None
    assert ids(client.get(newest.group(1).replace("&amp;", "&"))) == expected[:50]


def test_pages_are_complete_when_calls_are_spread_over_years(cast: Cast) -> None:
    Call.objects.all().delete()
    made = [
        make_call(cast.team_a, cast.member, minutes_ago=minutes)
        for minutes in [5, 30, *(60 * 24 * d for d in (2, 3, 9, 40, 70, 300, 600, 1200))] * 12
    ]
    expected = [str(c.pk) for c in sorted(made, key=lambda c: (c.started_at, str(c.pk)), reverse=True)]
    client = login(cast.member)
    seen, url = [], "/"
    while url:
        response = client.get(url)
        seen += ids(response)
        more = re.search(r'href="(/\?after=[^"]+)" rel="next"', response.content.decode())
        url = more.group(1).replace("&amp;", "&") if more else ""
    assert seen == expected
    back = client.get("/?before=" + _cursor_after(expected[75]))
    assert ids(back) == expected[25:75]


def _cursor_after(call_id: str) -> str:
    call = Call.objects.get(pk=call_id)
    return calls_list.Cursor.of(call).encode()


def test_pages_keep_the_filters(cast: Cast) -> None:
    for i in range(55):
        make_call(cast.team_a, cast.member, direction="out", minutes_ago=10 + i)
    html = login(cast.supervisor).get("/?direction=out").content.decode()
    older = re.search(r'href="(/\?[^"]+)" rel="next"', html)
    assert older is not None and "direction=out" in older.group(1)


def test_the_list_needs_the_same_queries_for_5_or_45_rows(cast: Cast) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tag = Tag.objects.create(name="要折り返し")
    client = login(cast.supervisor)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/")
        assert response.status_code == 200
        return len(queries.captured_queries)

    for i in range(4):
        CallTag.objects.create(call=make_call(cast.team_a, cast.member, minutes_ago=10 + i), tag=tag)
    few = count()
    for i in range(40):
        CallTag.objects.create(call=make_call(cast.team_a, cast.member, minutes_ago=20 + i), tag=tag)
    many = count()
    assert few == many <= 25
    assert len(ids(client.get("/"))) == 45


# --- rows for live updates -------------------------------------------------------------------


def test_the_row_endpoint_goes_through_the_access_helper(cast: Cast) -> None:
    url = f"/calls/{cast.call_a.pk}/row"
    response = login(cast.member).get(url)
    assert response.status_code == 200
    assert ids(response) == [str(cast.call_a.pk)]
    assert login(cast.outsider).get(url).status_code == 404
    assert login(cast.auditor).get(url).status_code == 404
    assert Client().get(url).status_code == 302


def test_the_row_endpoint_answers_204_when_the_call_does_not_match_the_filters(cast: Cast) -> None:
    client = login(cast.supervisor)
    url = f"/calls/{cast.call_a.pk}/row"
    assert client.get(url + "?direction=out").status_code == 204
    assert client.get(url + "?direction=in").status_code == 200
    assert client.get(url + "?direction=bad").status_code == 400


# --- CSV export ----------------------------------------------------------------------------------


def read_csv(response: Any, encoding: str = "utf-8-sig") -> list[list[str]]:
    body = b"".join(response.streaming_content)
    return list(csv.reader(io.StringIO(body.decode(encoding))))


def test_export_is_only_for_supervisors_and_admins(cast: Cast) -> None:
    for role in ("member", "outsider", "auditor"):
        assert login(getattr(cast, role)).get("/calls/export.csv").status_code == 404, role
    assert Client().get("/calls/export.csv").status_code == 302
    assert not AuditEntry.objects.filter(action="export").exists()


def test_export_writes_excel_friendly_utf8_with_the_supervisors_calls(cast: Cast) -> None:
    response = login(cast.supervisor).get("/calls/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="callvault-calls-')
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf") and b"\r\n" in body
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["通話ID", "開始日時", "終了日時", "方向"]
    assert [r[0] for r in rows[1:]] == [str(cast.call_a.pk)]
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["発信者番号"] == "03-1234-5678" and line["発信者名"] == "山田 太郎"
    assert line["通話時間(秒)"] == "65" and line["通話時間"] == "1分05秒" and line["チーム"] == "営業部"


def test_export_offers_shift_jis(cast: Cast) -> None:
    response = login(cast.admin).get("/calls/export.csv?encoding=cp932")
    assert response["Content-Type"] == "text/csv; charset=shift_jis"
    body = b"".join(response.streaming_content)
    assert not body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("cp932"))))
    assert rows[0][0] == "通話ID" and len(rows) == 3
    assert login(cast.admin).get("/calls/export.csv?encoding=ebcdic").status_code == 400


def test_export_neutralises_spreadsheet_formulas(cast: Cast) -> None:
    evil = make_call(
        cast.team_a,
        cast.member,
        caller_name='=HYPERLINK("http://evil.example","x")',
        callee_name="@SUM(1+1)",
        caller="+cmd",
    )
    Tag.objects.create(name="-2+3")
    CallTag.objects.create(call=evil, tag=Tag.objects.get(name="-2+3"))
    rows = read_csv(login(cast.supervisor).get("/calls/export.csv?q=HYPERLINK"))
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["発信者名"] == '\'=HYPERLINK("http://evil.example","x")'
    assert line["着信者名"] == "'@SUM(1+1)"
    assert line["タグ"] == "'-2+3"
    assert calls_list.safe_cell("\tx") == "'\tx" and calls_list.safe_cell("\rx") == "'\rx"
    assert calls_list.safe_cell("ok") == "ok" and calls_list.safe_cell(-5) == -5


def test_export_applies_the_filters_and_is_audited_with_them(cast: Cast) -> None:
    make_call(cast.team_a, cast.member, direction="out")
    response = login(cast.admin).get("/calls/export.csv?direction=in", REMOTE_ADDR="192.0.2.9")
    rows = read_csv(response)
    assert len(rows) == 3  # header + call_a + call_b
    entry = AuditEntry.objects.get(action="export")
    assert (entry.user_id, entry.ip, entry.object_type) == (cast.admin.pk, "192.0.2.9", "calls")
    assert entry.detail == {
        "filters": {"direction": ["in"]},
        "rows": 2,
        "truncated": False,
        "encoding": "utf-8",
    }


def test_export_is_bounded_with_a_clear_note(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls_list, "EXPORT_MAX_ROWS", 3)
    monkeypatch.setattr(calls_list, "EXPORT_CHUNK", 2)
    for i in range(5):
        make_call(cast.team_a, cast.member, minutes_ago=10 + i)
    response = login(cast.supervisor).get("/calls/export.csv")
    assert response["X-Callvault-Truncated"] == "1"
    rows = read_csv(response)
    assert len(rows) == 1 + 3 + 1
    assert rows[-1][0].startswith("※ 3件を超えるため")
    assert AuditEntry.objects.get(action="export").detail["truncated"] is True


def test_export_bad_filters_are_a_400(cast: Cast) -> None:
    response = login(cast.supervisor).get("/calls/export.csv?date_from=nope")
    assert response.status_code == 400
    assert "開始日は 2026/11/27 のような日付で入力してください。" in response.content.decode()
    assert not AuditEntry.objects.filter(action="export").exists()


@pytest.mark.django_db(transaction=True)
def test_export_streams_under_asgi(cast: Cast) -> None:
    for i in range(30):
        make_call(cast.team_a, cast.member, minutes_ago=10 + i)

    async def fetch() -> bytes:
        client = AsyncClient()
        await client.aforce_login(cast.supervisor)
        response = await client.get("/calls/export.csv")
        assert response.streaming
        return b"".join([chunk async for chunk in response.streaming_content])

    body = asyncio.run(fetch())
    assert body.decode("utf-8-sig").count("\r\n") == 32


def test_supervisors_export_only_the_teams_they_supervise(cast: Cast) -> None:
    mixed = make_user("mixed")
    Membership.objects.create(user=mixed, team=cast.team_a, role="supervisor")
    Membership.objects.create(user=mixed, team=cast.team_b, role="agent")
    assert names(cast, ids(login(mixed).get("/"))) == {"a", "b"}
    rows = read_csv(login(mixed).get("/calls/export.csv"))
    assert [r[0] for r in rows[1:]] == [str(cast.call_a.pk)]


def test_agents_with_a_team_of_their_own_see_team_and_agent_choices(cast: Cast) -> None:
    Team.objects.create(name="経理部")
    html = login(cast.member).get("/").content.decode()
    assert "営業部" in html and "経理部" not in html and "サポート部" not in html


def test_outbound_calls_show_the_callee_as_the_other_party(cast: Cast) -> None:
    call = make_call(cast.team_a, cast.member, direction="out", caller="201", callee="+819011112222")
    html = login(cast.supervisor).get(f"/calls/{call.pk}/row").content.decode()
    other = re.search(r'<td class="c-from"[^>]*>(.*?)</td>', html, re.S)
    own = re.search(r'<td class="c-to"[^>]*>(.*?)</td>', html, re.S)
    assert other is not None and own is not None
    assert "090-1111-2222" in other.group(1) and "201" in own.group(1) and "member" in own.group(1)


def test_the_list_speaks_english_when_switched(cast: Cast) -> None:
    client = login(cast.supervisor)
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    html = client.get("/").content.decode()
    for text in ("Calls", "Other party", "Agent", "Duration", "Inbound", "1m 05s", "Recorded", "Export CSV"):
        assert text in html, text
    assert "通話一覧" not in html
