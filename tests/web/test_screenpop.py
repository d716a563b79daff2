"""Screen-pop: ringing calls with a caller card, to exactly the people who may see the call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.db import connections

from callvault.apps.accounts.models import ApiToken, Line, Membership, Team
from callvault.apps.calls.journal import early_call, publish_early
from callvault.apps.calls.models import Call
from callvault.apps.live.models import LiveEvent
from callvault.apps.web import live, screenpop
from callvault.capture.siprec_server import Recorder
from callvault.tools.siprec_client import Leg, SiprecClient
from tests.apps.conftest import Cast, make_call, make_user
from tests.e2e.conftest import free_port, rtp_block
from tests.web.test_live import closed_with, connect, received_ids, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_layers() -> Iterator[None]:
    channel_layers.backends.clear()
    live.tailer.users = 0
    screenpop.cache.clear()
    yield
    channel_layers.backends.clear()
    live.tailer.users = 0
    asyncio.run(sync_to_async(connections.close_all)())
    live.tailer.executor.submit(connections.close_all).result(timeout=10)
    screenpop.close_connections()


def invite_record(caller: str = "03-5555-0101", callee: str = "201", **extra: Any) -> dict[str, Any]:
    """What the recorder journals for a SIPREC INVITE (the only input of the early ringing event)."""
    import uuid

    return {
        "type": "invite",
        "t": time.time(),
        "call_id": str(uuid.uuid4()),
        "source": "siprec",
        "direction": "in",
        "participants": [
            {"role": "caller", "number": caller, "name": "田中 一郎", "participant_id": "p1"},
            {"role": "callee", "number": callee, "name": "受付", "participant_id": "p2"},
        ],
        "streams": [],
        **extra,
    }


def test_a_ringing_call_is_announced_before_it_is_in_the_database(cast: Cast) -> None:
    record = invite_record()
    call = early_call(record)
    assert (call.team_id, call.agent_id, call.state) == (cast.team_a.pk, cast.member.pk, "ringing")
    publish_early(record)
    event = LiveEvent.objects.get(kind="call.ringing")
    assert not Call.objects.filter(pk=record["call_id"]).exists()
    assert (str(event.call_id), event.team_id, event.agent_id) == (
        record["call_id"],
        cast.team_a.pk,
        cast.member.pk,
    )
    assert event.payload["early"] is True
    assert event.payload["caller_number"] == "03-5555-0101"
    assert event.payload["caller_e164"] == "+81355550101"
    assert event.payload["agent"] == {"id": cast.member.pk, "name": "member"}


def test_each_role_gets_the_ringing_card_only_for_calls_it_may_see(cast: Cast) -> None:
    users = cast.users()
    headers = {name: session_headers(user) for name, user in users.items()}
    sales, support = invite_record(callee="201"), invite_record(callee="301", caller="090-1111-2222")

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        comms = {name: await connect(h) for name, h in headers.items()}
        await sync_to_async(publish_early)(sales)
        await sync_to_async(publish_early)(support)
        results = await asyncio.gather(*(received_ids(c) for c in comms.values()))
        for comm in comms.values():
            await comm.disconnect()
        return dict(zip(comms, results, strict=True))

    got = asyncio.run(scenario())
    seen = {name: {m["call"]["id"] for m in messages} for name, messages in got.items()}
    a, b = sales["call_id"], support["call_id"]
    assert seen == {"admin": {a, b}, "supervisor": {a}, "member": {a}, "outsider": {b}, "auditor": set()}
    card = got["member"][0]["card"]
    assert got["member"][0]["type"] == "call.ringing"
    assert card["number"] == "+81355550101" and card["number_display"] == "03-5555-0101"
    assert card["customer"] is None and card["kind"] == "normal"
    assert card["create_url"]  # the unknown caller can be registered from the pop-up


def test_the_card_is_computed_once_per_access_group_not_per_socket(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    colleague = make_user("colleague")
    Membership.objects.create(user=colleague, team=cast.team_a, role="agent")
    computed: list[Any] = []
    real = screenpop.card_for

    def counting(call: dict[str, Any], user: Any) -> dict[str, Any]:
        computed.append(user.username)
        return real(call, user)

    monkeypatch.setattr(screenpop, "card_for", counting)
    # team A (shared): supervisor, member, colleague twice (two tabs) -> one group; admin -> another
    sockets = [cast.supervisor, cast.member, colleague, colleague, cast.admin]
    headers = [session_headers(u) for u in sockets]
    record = invite_record()

    async def scenario() -> list[list[dict[str, Any]]]:
        comms = [await connect(h) for h in headers]
        await sync_to_async(publish_early)(record)
        results = await asyncio.gather(*(received_ids(c) for c in comms))
        for comm in comms:
            await comm.disconnect()
        return results

    results = asyncio.run(scenario())
    assert [len(r) for r in results] == [1, 1, 1, 1, 1]
    assert len({json.dumps(r[0]["card"], sort_keys=True) for r in results}) == 1
    assert len(computed) == 2, computed


def test_an_agent_of_a_team_that_does_not_share_is_a_group_alone(cast: Cast) -> None:
    cast.team_a.share_calls = False
    cast.team_a.save()
    colleague = make_user("colleague")
    Membership.objects.create(user=colleague, team=cast.team_a, role="agent")
    member, other = live.Audience.of(cast.member), live.Audience.of(colleague)
    assert member.group != other.group
    assert live.Audience.of(cast.supervisor).group == ("member", (cast.team_a.pk,), None)


def stop_sharing(team_id: int) -> None:
    team = Team.objects.get(pk=team_id)
    team.share_calls = False
    team.save()


def test_an_access_change_reaches_open_connections_at_once(cast: Cast, settings: Any) -> None:
    settings.LIVE_REVALIDATE_SECONDS = 3600  # only the access change can tell the connection
    headers = session_headers(cast.member)
    colleague = make_user("colleague")
    Membership.objects.create(user=colleague, team=cast.team_a, role="agent")
    Line.objects.create(number="202", team=cast.team_a, user=colleague)

    async def scenario() -> None:
        comm = await connect(headers)
        await sync_to_async(publish_early)(invite_record(callee="202"))
        assert len(await received_ids(comm, 1.0)) == 1  # a shared team: the colleague's call pops up
        await sync_to_async(stop_sharing)(cast.team_a.pk)
        await sync_to_async(publish_early)(invite_record(callee="202"))
        assert await received_ids(comm, 1.0) == []
        await sync_to_async(publish_early)(invite_record(callee="201"))  # still the member's own line
        assert len(await received_ids(comm, 1.0)) == 1
        await comm.disconnect()

    asyncio.run(scenario())


def test_removing_a_member_from_the_team_stops_the_pop_ups(cast: Cast, settings: Any) -> None:
    settings.LIVE_REVALIDATE_SECONDS = 3600
    headers = session_headers(cast.supervisor)

    async def scenario() -> None:
        comm = await connect(headers)
        await sync_to_async(Membership.objects.filter(user=cast.supervisor).delete)()
        await sync_to_async(publish_early)(invite_record())
        assert await received_ids(comm, 1.0) == []
        await comm.disconnect()

    asyncio.run(scenario())


def test_an_outbound_call_carries_no_card(cast: Cast) -> None:
    headers = session_headers(cast.member)
    record = invite_record(caller="201", callee="03-5555-0102", direction="out")

    async def scenario() -> list[dict[str, Any]]:
        comm = await connect(headers)
        await sync_to_async(publish_early)(record)
        got = await received_ids(comm)
        await comm.disconnect()
        return got

    (message,) = asyncio.run(scenario())
    assert message["type"] == "call.ringing" and "card" not in message


def test_answered_and_ended_events_follow_the_same_call(cast: Cast) -> None:
    headers = session_headers(cast.supervisor)
    call = make_call(cast.team_a, cast.member, state="active", caller="+81355550103", minutes_ago=0)

    async def scenario() -> list[dict[str, Any]]:
        comm = await connect(headers)
        await sync_to_async(live.deliver)("call.answered", call)
        await sync_to_async(live.deliver)("call.ended", call)
        got = await received_ids(comm)
        await comm.disconnect()
        return got

    answered, ended = asyncio.run(scenario())
    assert answered["type"] == "call.answered" and answered["call"]["agent"]["name"] == "member"
    assert answered["card"]["number"] == "+81355550103"
    assert ended["type"] == "call.ended" and "card" not in ended


def test_a_bearer_token_listener_gets_the_card_and_a_forged_token_is_refused(
    cast: Cast, caplog: pytest.LogCaptureFixture
) -> None:
    _obj, token = ApiToken.issue(cast.supervisor, "desk app")
    record = invite_record()

    async def scenario() -> None:
        comm = await connect([(b"authorization", f"Bearer {token}".encode())])
        await sync_to_async(publish_early)(record)
        message = json.loads(await comm.receive_from(timeout=3))
        assert message["type"] == "call.ringing" and message["card"]["number_display"] == "03-5555-0101"
        await comm.disconnect()
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        comm = await connect([(b"authorization", f"Bearer {forged}".encode())])
        assert await closed_with(comm) == 4401

    with caplog.at_level("INFO", logger="callvault.live"):
        asyncio.run(scenario())
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and all(token[:-4] not in m for m in refused)  # logged, and without the token


def test_the_recorder_announces_ringing_without_waiting_for_its_spool_or_the_answer(tmp_path: Path) -> None:
    """The ringing event goes out while the spool (and so the 200 OK) is still being written."""
    rang: list[tuple[float, dict[str, Any]]] = []

    class SlowSpoolRecorder(Recorder):
        def _create_spool(self, *args: Any, **kwargs: Any) -> Any:
            time.sleep(0.5)  # a slow disk
            return super()._create_spool(*args, **kwargs)

    async def scenario() -> tuple[float, float]:
        rec = SlowSpoolRecorder(
            spool_root=tmp_path / "spool",
            sip_host="127.0.0.1",
            sip_port=free_port(),
            rtp_range=rtp_block(),
            on_ring=lambda r: rang.append((time.time(), r)),
        )
        await rec.start()
        try:
            silence = np.zeros(800, dtype=np.int16)
            client = SiprecClient(("127.0.0.1", rec.sip_port))
            result = await client.call(Leg("0355550104", "田中", silence), Leg("201", "受付", silence))
        finally:
            await rec.stop()
        assert result.invite_status == 200 and result.invite_sent_at is not None
        return result.invite_sent_at, result.invite_sent_at + result.setup_time

    sent, answered = asyncio.run(scenario())
    assert len(rang) == 1
    at, record = rang[0]
    assert record["type"] == "invite" and record["direction"] == "in"
    assert at - sent < 0.2 and answered - sent >= 0.5


def test_a_call_that_cannot_be_recorded_takes_its_pop_up_down(tmp_path: Path) -> None:
    rang: list[dict[str, Any]] = []

    class BrokenDisk(Recorder):
        def _create_spool(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("No space left on device")

    async def scenario() -> int:
        rec = BrokenDisk(
            spool_root=tmp_path / "spool",
            sip_host="127.0.0.1",
            sip_port=free_port(),
            rtp_range=rtp_block(),
            on_ring=rang.append,
        )
        await rec.start()
        try:
            silence = np.zeros(160, dtype=np.int16)
            client = SiprecClient(("127.0.0.1", rec.sip_port))
            result = await client.call(Leg("0355550105", "田中", silence), Leg("201", "受付", silence))
        finally:
            await rec.stop()
        return result.invite_status

    assert asyncio.run(scenario()) == 503
    assert [r["type"] for r in rang] == ["invite", "ended"]
    assert rang[0]["call_id"] == rang[1]["call_id"]


def test_the_publisher_wakes_the_tailer_instead_of_waiting_for_its_next_poll(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callvault.apps.web import livewake

    monkeypatch.setattr(live, "POLL_INTERVAL", 30.0)  # only a wake-up can deliver in time
    monkeypatch.setattr(livewake, "_sender", livewake._Sender())
    headers = session_headers(cast.member)

    async def scenario() -> float:
        comm = await connect(headers)
        assert len(list(livewake.wake_dir().glob("*.port"))) == 1
        await asyncio.sleep(0.3)  # the tailer is now in its long wait
        t0 = time.monotonic()
        await sync_to_async(publish_early)(invite_record())
        message = json.loads(await comm.receive_from(timeout=5))
        took = time.monotonic() - t0
        assert message["type"] == "call.ringing"
        await comm.disconnect()
        return took

    assert asyncio.run(scenario()) < 2.0
    deadline = time.monotonic() + 35
    while list(livewake.wake_dir().glob("*.port")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the tailer ends after its last client, at its next wake-up or poll
    assert not list(livewake.wake_dir().glob("*.port"))


def test_every_page_carries_the_screen_pop_in_japanese_and_english(cast: Cast) -> None:
    from django.conf import settings as dj_settings
    from django.test import Client

    client = Client()
    client.force_login(cast.member)
    page = client.get("/account/").content.decode()
    assert 'id="screenpop"' in page and "web/screenpop.js" in page
    assert 'data-answered-by="応答: {name}"' in page and 'data-create-customer="顧客として登録"' in page
    assert "着信をデスクトップに通知する" in page  # asked from a button, never on load
    client.cookies[dj_settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get("/account/").content.decode()
    assert 'data-answered-by="Answered by {name}"' in page and 'data-incoming="Incoming"' in page
    assert 'data-ended="Ended"' in page and 'data-create-customer="Add as customer"' in page
    assert 'id="screenpop"' not in Client().get("/login/").content.decode()  # nobody to tell


def test_the_last_call_on_the_card_is_never_the_ringing_call_itself(cast: Cast) -> None:
    """The database thread may write the ringing call before its card is made."""
    earlier = make_call(cast.team_a, cast.member, caller="+81355550106", minutes_ago=60)
    record = invite_record(caller="03-5555-0106")
    make_call(
        cast.team_a, cast.member, caller="+81355550106", minutes_ago=0, id=record["call_id"], state="active"
    )
    headers = session_headers(cast.supervisor)

    async def scenario() -> dict[str, Any]:
        comm = await connect(headers)
        await sync_to_async(publish_early)(record)
        message = json.loads(await comm.receive_from(timeout=3))
        await comm.disconnect()
        return dict(message["card"])

    card = asyncio.run(scenario())
    assert card["last_call"]["id"] == str(earlier.pk)
    assert card["last_call"]["agent"] == "member" and card["last_call"]["started_at_display"]


def test_a_ringing_call_reaches_its_team_through_the_redis_channel_layer(cast: Cast, settings: Any) -> None:
    redis_url = "redis://127.0.0.1:6379/9"  # this area's Redis database
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }
    channel_layers.backends.clear()
    member, outsider = session_headers(cast.member), session_headers(cast.outsider)
    record = invite_record()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        a, b = await connect(member), await connect(outsider)
        await sync_to_async(publish_early)(record)
        assert await asyncio.to_thread(live.flush, 5)
        got = await asyncio.gather(received_ids(a), received_ids(b))
        await a.disconnect()
        await b.disconnect()
        return got[0], got[1]

    try:
        to_member, to_outsider = asyncio.run(scenario())
    finally:
        channel_layers.backends.clear()
    assert [m["type"] for m in to_member] == ["call.ringing"] and to_outsider == []
    assert to_member[0]["card"]["number_display"] == "03-5555-0101"
    assert not LiveEvent.objects.filter(kind="call.ringing").exists()
