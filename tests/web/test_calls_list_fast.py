"""What keeps the calls list cheap at 1,000,000 calls: the number index, the HTML written without
per-row templates, and Django's stack run in one thread hop per request."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import Client
from django.test.utils import CaptureQueriesContext

from callvault.apps.accounts.models import Team
from callvault.apps.calls.models import Call, CallTag, Tag
from callvault.apps.web import calls_list
from callvault.http import PooledSyncASGIHandler
from tests.apps.conftest import Cast, make_call

pytestmark = pytest.mark.django_db

ROW_ID = re.compile(r'<tr data-call-id="([0-9a-f-]{36})"')


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def found(client: Client, q: str) -> set[str]:
    response = client.get("/", {"q": q})
    assert response.status_code == 200
    return set(ROW_ID.findall(response.content.decode()))


# --- partial number search --------------------------------------------------------------------


def test_partial_number_search_goes_through_the_trigram_index_and_stays_exact(cast: Cast) -> None:
    tokyo = make_call(cast.team_a, caller="+81312345678")
    osaka = make_call(cast.team_a, caller="+81612345678")
    callee_side = make_call(cast.team_a, caller="201", callee="+819012345678", direction="out")
    other = make_call(cast.team_a, caller="+81355556666")
    renumbered = make_call(cast.team_a, caller="+81300000000")
    renumbered.caller_number = "+81399912345"  # holds "12345", not "12345678"
    renumbered.save()
    moved = make_call(cast.team_a, caller="+81311110000")
    Call.objects.filter(pk=moved.pk).update(caller_number="+81412345678")  # raw UPDATE, no signals
    gone = make_call(cast.team_a, caller="+81712345678")
    gone.delete()
    client = login(cast.admin)
    expected = {str(c.pk) for c in (tokyo, osaka, callee_side, moved)} | {
        str(cast.call_a.pk),
        str(cast.call_b.pk),
    }

    with CaptureQueriesContext(connection) as queries:
        assert found(client, "1234-5678") == expected
    sql = "\n".join(q["sql"] for q in queries.captured_queries)
    if connection.vendor == "sqlite":
        assert "calls_call_numbers MATCH" in sql  # narrowed by the FTS5 trigram table
    else:
        with connection.cursor() as cur:
            cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'calls_call'")
            names = {row[0] for row in cur.fetchall()}
        assert {"calls_call_caller_number_trgm", "calls_call_callee_number_trgm"} <= names
    assert str(renumbered.pk) in found(client, "12345")
    assert str(other.pk) not in found(client, "12345")
    assert found(client, "5556") == {str(other.pk)}
    # two digits are too short for trigrams: the same answer by reading every call
    assert found(client, "66") == {str(other.pk)}


def test_the_index_only_gets_the_terms_that_narrow_the_search() -> None:
    q = calls_list.number_candidates(["+8112345678", "12345678"], "default")
    if connection.vendor == "sqlite":
        raw = q.children[0][1]
        assert raw.params == ['"12345678"']
    else:
        assert not q  # PostgreSQL's trigram indexes serve the LIKE conditions themselves


# --- the HTML written in Python --------------------------------------------------------------------


def test_rows_escape_every_value_in_the_list_and_the_live_row(cast: Cast) -> None:
    evil = '<script>alert("x")</script>&'
    team = Team.objects.create(name=evil)
    call = make_call(team, caller_name=evil, caller="+81312340000")
    CallTag.objects.create(call=call, tag=Tag.objects.create(name=evil, color='"x="y'))
    client = login(cast.admin)
    for html in (client.get("/").content.decode(), client.get(f"/calls/{call.pk}/row").content.decode()):
        assert "<script>" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
        assert 'style="--tag-color: #6b7280"' in html  # a colour that is not #rrggbb is not written


def test_the_filter_controls_keep_the_choices_and_escape_them(cast: Cast) -> None:
    Team.objects.filter(pk=cast.team_b.pk).update(name="<b>サポート部</b>")
    tag = Tag.objects.create(name="要折り返し")
    client = login(cast.admin)
    html = client.get("/", {"team": cast.team_a.pk, "tag": tag.pk, "state": "completed"}).content.decode()
    assert f'<option value="{cast.team_a.pk}" selected>営業部</option>' in html
    assert f'<option value="{cast.team_b.pk}">&lt;b&gt;サポート部&lt;/b&gt;</option>' in html
    assert '<option value="completed" selected>' in html
    assert f'value="{tag.pk}" id="id_tag_0" checked>要折り返し</label>' in html
    assert '<details class="filter-more" open>' in html
    # an agent's choices are their own teams and people; a team out of reach is a clear 400
    member = login(cast.member).get("/", {"team": cast.team_b.pk})
    assert member.status_code == 400
    assert 'aria-invalid="true"' in member.content.decode()
    assert "サポート部" not in member.content.decode().split('id="id_team"')[1].split("</select>")[0]


# --- one thread hop per request, connections kept -----------------------------------------------------


def _get(app: Any, path: str, cookie: str) -> tuple[int, bytes]:
    async def run() -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        status, body, sent = 0, [], False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(60)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await app(scope, receive, send)
        return status, b"".join(body)

    return asyncio.run(run())


@pytest.mark.django_db(transaction=True)
def test_the_asgi_handler_keeps_database_connections_between_requests() -> None:
    opened: list[Any] = []

    def count(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(connection)

    connection_created.connect(count)
    pooled = PooledSyncASGIHandler(threads=2)
    try:
        for _ in range(4):
            assert _get(ASGIHandler(), "/healthz", "")[0] == 200
        django_default = len(opened)
        for conn in opened:  # left behind by the finished request threads
            conn.inc_thread_sharing()
            conn.close()
        opened.clear()
        for _ in range(6):
            assert _get(pooled, "/healthz", "")[0] == 200
        assert django_default >= 4  # one new connection per request (a new thread each time)
        assert len(opened) <= 2  # one per pool thread, kept
    finally:
        connection_created.disconnect(count)
        pooled.close()


@pytest.mark.django_db(transaction=True)
def test_the_asgi_handler_serves_the_list_through_the_whole_middleware_stack(cast: Cast) -> None:
    client = login(cast.member)
    cookie = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())
    app = PooledSyncASGIHandler(threads=1)
    try:
        status, body = _get(app, "/", cookie)
        assert status == 200
        assert ROW_ID.findall(body.decode()) == [str(cast.call_a.pk)]
        assert _get(app, "/", "")[0] == 302  # login required
    finally:
        app.close()


def test_a_number_index_that_lost_its_triggers_is_not_trusted_and_is_rebuilt_by_migrate(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls_list, "_fts_ready", {})
    if connection.vendor != "sqlite":
        assert calls_list.number_index_state("default") == "absent"
        return
    assert calls_list.number_index_state("default") == "ready"
    with connection.cursor() as cur:  # what SQLite does when Django rebuilds calls_call
        for name in calls_list.NUMBER_FTS_TRIGGERS:
            cur.execute(f"DROP TRIGGER {name}")
    assert calls_list.number_index_state("default") == "broken"
    late = make_call(cast.team_a, caller="+81398765432")  # not in the index now
    client = login(cast.admin)
    assert found(client, "8765") == {str(late.pk)}  # still found: the list reads every call instead
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # post_migrate rebuilds it
    assert calls_list.number_index_state("default") == "ready"
    assert calls_list._fts_ready == {}
    with CaptureQueriesContext(connection) as queries:
        assert found(client, "8765") == {str(late.pk)}
    assert any("calls_call_numbers MATCH" in q["sql"] for q in queries.captured_queries)
