"""Live call events: deliver() in the publishing process, the WebSocket in the web process."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.db import connections
from django.test import Client
from django.utils import timezone
from websockets.sync.client import connect as ws_connect

from callvault.apps.accounts.models import ApiToken
from callvault.apps.live.models import LiveEvent
from callvault.apps.web import live, screenpop
from callvault.asgi import application
from tests.apps.conftest import PASSWORD, Cast, make_call
from tests.e2e.conftest import Server, cli, free_port, server_factory  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = {
    "admin": {"a", "b"},
    "supervisor": {"a"},
    "member": {"a"},
    "outsider": {"b"},
    "auditor": set(),
}


@pytest.fixture(autouse=True)
def _fresh_layers() -> Iterator[None]:
    """Each test runs its own event loop: start from new channel layers and no tailing task."""
    channel_layers.backends.clear()
    live.tailer.users = 0
    yield
    channel_layers.backends.clear()
    live.tailer.users = 0
    # Database connections opened by the consumer's and the tailer's threads end with the test.
    asyncio.run(sync_to_async(connections.close_all)())
    live.tailer.executor.submit(connections.close_all).result(timeout=10)
    screenpop.close_connections()


def session_headers(user: Any, origin: str = "http://testserver") -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    headers = [(b"host", b"testserver"), (b"cookie", f"sessionid={cookie}".encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    return headers


async def connect(headers: list[tuple[bytes, bytes]], path: str = "/ws/events/") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def closed_with(comm: WebsocketCommunicator) -> int | None:
    out = await comm.receive_output(timeout=5)
    assert out["type"] == "websocket.close", out
    return out.get("code")


async def received_ids(comm: WebsocketCommunicator, wait: float = 1.5) -> list[dict[str, Any]]:
    """Every message that arrives within ``wait`` seconds."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while (left := deadline - loop.time()) > 0:
        if await comm.receive_nothing(timeout=min(left, 0.1), interval=0.02):
            continue
        got.append(json.loads(await comm.receive_from(timeout=1)))
    return got


def test_it_writes_the_event_with_a_display_payload_on_the_embedded_default(cast: Cast) -> None:
    live.deliver("call.ended", cast.call_a)
    event = LiveEvent.objects.get(kind="call.ended")
    assert (event.kind, event.call_id, event.team_id, event.agent_id) == (
        "call.ended",
        cast.call_a.pk,
        cast.team_a.pk,
        cast.member.pk,
    )
    p = event.payload
    assert p["id"] == str(cast.call_a.pk) and p["state"] == "completed"
    assert p["caller_number"] == "03-1234-5678" and p["callee_number"] == "201"
    assert p["team"] == {"id": cast.team_a.pk, "name": "営業部"}
    assert p["agent"] == {"id": cast.member.pk, "name": "member"}
    assert "recording_error" not in p and "metadata" not in p


def test_it_trims_old_events(cast: Cast) -> None:
    LiveEvent.objects.all().delete()  # the access changes of setting up the cast
    live.deliver("call.ended", cast.call_a)
    LiveEvent.objects.update(created_at=timezone.now() - timezone.timedelta(hours=1))
    live.deliver("call.completed", cast.call_a)
    assert live.trim() == 1
    assert list(LiveEvent.objects.values_list("kind", flat=True)) == ["call.completed"]


def test_a_batch_publishes_its_events_together_in_order_as_they_were(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import enters hundreds of calls per transaction: their events go out in one write."""
    import os
    import socket

    from callvault import live as capture_live

    LiveEvent.objects.all().delete()
    # a tailer's wake-up port, registered as a web process registers it: count the datagrams
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port.bind(("127.0.0.1", 0))
    port.settimeout(0.3)
    folder = live.livewake.wake_dir()
    folder.mkdir(parents=True, exist_ok=True)
    registration = folder / f"{os.getpid()}-batch-test.port"
    registration.write_text(str(port.getsockname()[1]))
    monkeypatch.setattr(live.livewake, "_sender", live.livewake._Sender())  # reads the ports anew

    def wakes() -> int:
        got = 0
        while True:
            try:
                port.recv(16)
            except TimeoutError:
                return got
            got += 1

    try:
        call = cast.call_a
        with capture_live.batched():
            call.state = "active"
            capture_live.publish("call.answered", call)
            with capture_live.batched():  # a nested batch joins the outer one
                call.state = "completed"
                capture_live.publish("call.ended", call)
            assert not LiveEvent.objects.exists() and wakes() == 0  # nothing yet
        rows = list(LiveEvent.objects.order_by("pk").values_list("kind", "payload"))
        assert [(k, p["state"]) for k, p in rows] == [
            ("call.answered", "active"),
            ("call.ended", "completed"),
        ]
        assert wakes() == 1
        capture_live.publish("call.updated", call)  # outside a batch: at once, as before
        assert LiveEvent.objects.count() == 3 and wakes() == 1
    finally:
        registration.unlink()
        port.close()


def test_each_role_receives_exactly_the_events_of_calls_it_may_see(cast: Cast) -> None:
    users = cast.users()
    headers = {name: session_headers(user) for name, user in users.items()}

    async def scenario() -> dict[str, set[str]]:
        comms = {name: await connect(h) for name, h in headers.items()}
        await sync_to_async(live.deliver)("call.ended", cast.call_a)
        await sync_to_async(live.deliver)("call.completed", cast.call_b)
        names = {str(cast.call_a.pk): "a", str(cast.call_b.pk): "b"}
        results = await asyncio.gather(*(received_ids(c) for c in comms.values()))
        seen: dict[str, set[str]] = {}
        for name, messages in zip(comms, results, strict=True):
            seen[name] = {names[m["call"]["id"]] for m in messages}
            assert all(m["type"] in ("call.ended", "call.completed") for m in messages)
        for comm in comms.values():
            await comm.disconnect()
        return seen

    assert asyncio.run(scenario()) == EXPECTED


def test_a_supervisor_hears_nothing_of_another_teams_call(cast: Cast) -> None:
    headers = session_headers(cast.supervisor)
    other = make_call(cast.team_b, cast.outsider, callee="301", minutes_ago=1)

    async def scenario() -> None:
        comm = await connect(headers)
        await sync_to_async(live.deliver)("call.ringing", other)
        assert await comm.receive_nothing(timeout=1.0)
        await sync_to_async(live.deliver)("call.ringing", cast.call_a)
        message = json.loads(await comm.receive_from(timeout=3))
        assert message["type"] == "call.ringing" and message["call"]["id"] == str(cast.call_a.pk)
        await comm.disconnect()

    asyncio.run(scenario())


def test_it_follows_the_access_helper_when_a_team_stops_sharing(cast: Cast) -> None:
    cast.team_a.share_calls = False
    cast.team_a.save()
    colleague_call = make_call(cast.team_a, cast.supervisor, callee="209", minutes_ago=1)
    headers = session_headers(cast.member)

    async def scenario() -> None:
        comm = await connect(headers)
        await sync_to_async(live.deliver)("call.ended", colleague_call)
        assert await comm.receive_nothing(timeout=1.0)
        await sync_to_async(live.deliver)("call.ended", cast.call_a)  # the member's own call
        assert json.loads(await comm.receive_from(timeout=3))["call"]["id"] == str(cast.call_a.pk)
        await comm.disconnect()

    asyncio.run(scenario())


def test_it_closes_unauthenticated_connections_with_4401(cast: Cast) -> None:
    async def scenario() -> None:
        comm = await connect([(b"host", b"testserver"), (b"origin", b"http://testserver")])
        assert await closed_with(comm) == 4401
        bogus = [(b"host", b"testserver"), (b"cookie", b"sessionid=not-a-session")]
        comm = await connect(bogus)
        assert await closed_with(comm) == 4401

    asyncio.run(scenario())


def test_it_accepts_a_bearer_token_and_refuses_revoked_ones(cast: Cast) -> None:
    token_obj, token = ApiToken.issue(cast.supervisor, "wallboard")
    _revoked, revoked = ApiToken.issue(cast.supervisor, "old")
    ApiToken.objects.filter(pk=_revoked.pk).update(revoked_at=timezone.now())

    async def scenario() -> None:
        comm = await connect([(b"authorization", f"Bearer {token}".encode())])
        await sync_to_async(live.deliver)("call.completed", cast.call_a)
        message = json.loads(await comm.receive_from(timeout=3))
        assert message["call"]["id"] == str(cast.call_a.pk)
        await comm.disconnect()
        for header in (f"Bearer {revoked}", "Bearer cv_wrong", f"Basic {token}"):
            comm = await connect([(b"authorization", header.encode())])
            assert await closed_with(comm) == 4401, header

    asyncio.run(scenario())
    token_obj.refresh_from_db()
    assert token_obj.last_used_at is not None


def test_it_refuses_tokens_in_the_url_even_valid_ones(cast: Cast) -> None:
    _obj, token = ApiToken.issue(cast.admin, "in-url")

    async def scenario() -> None:
        comm = await connect([(b"host", b"testserver")], path=f"/ws/events/?token={token}")
        assert await closed_with(comm) == 4401

    asyncio.run(scenario())


def test_it_refuses_a_browser_session_from_another_site(cast: Cast) -> None:
    headers = session_headers(cast.admin, origin="https://evil.example")

    async def scenario() -> None:
        comm = await connect(headers)
        assert await closed_with(comm) == 4403

    asyncio.run(scenario())


def test_it_closes_the_connection_after_logout(cast: Cast, settings: Any) -> None:
    settings.LIVE_REVALIDATE_SECONDS = 0.2
    headers = session_headers(cast.supervisor)

    async def scenario() -> None:
        comm = await connect(headers)
        assert await comm.receive_nothing(timeout=0.5)
        await sync_to_async(Session.objects.all().delete)()
        assert await closed_with(comm) == 4401

    asyncio.run(scenario())


def test_it_answers_pings(cast: Cast) -> None:
    headers = session_headers(cast.member)

    async def scenario() -> None:
        comm = await connect(headers)
        await comm.send_to(text_data="ping")
        assert json.loads(await comm.receive_from(timeout=2)) == {"type": "pong"}
        await comm.disconnect()

    asyncio.run(scenario())


def test_the_tailer_keeps_looking_for_ids_that_commit_late() -> None:
    position = live._Position()
    position.last_id = 10
    position.advance([11, 14])
    assert position.last_id == 14 and set(position.gaps) == {12, 13}
    position.advance([13])
    assert set(position.gaps) == {12}


REDIS_URL = "redis://127.0.0.1:6379/15"


def test_it_sends_through_redis_when_redis_is_configured(cast: Cast, settings: Any) -> None:
    settings.REDIS_URL = REDIS_URL
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    channel_layers.backends.clear()
    headers = {name: session_headers(user) for name, user in cast.users().items()}

    async def scenario() -> dict[str, set[str]]:
        comms = {name: await connect(h) for name, h in headers.items()}
        await sync_to_async(live.deliver)("call.ended", cast.call_a)
        await sync_to_async(live.deliver)("call.ended", cast.call_b)
        assert await asyncio.to_thread(live.flush, 5)
        names = {str(cast.call_a.pk): "a", str(cast.call_b.pk): "b"}
        results = await asyncio.gather(*(received_ids(c) for c in comms.values()))
        seen = {name: {names[m["call"]["id"]] for m in ms} for name, ms in zip(comms, results, strict=True)}
        for comm in comms.values():
            await comm.disconnect()
        return seen

    try:
        assert asyncio.run(scenario()) == EXPECTED
    finally:
        channel_layers.backends.clear()
    assert not LiveEvent.objects.filter(kind="call.ended").exists()  # through Redis, not the table


# --- end to end: recorder and worker publish, a separate web process delivers ---------------------


@pytest.mark.e2e
def test_a_real_call_reaches_a_browser_session_through_the_web_process(
    server_factory: Callable[..., Server],  # noqa: F811 (the fixture imported above)
) -> None:
    """recorder + worker + `callvault web` on the embedded default (SQLite, no Redis)."""
    server = server_factory()
    script = (
        "from tests.apps.conftest import make_user; "
        "make_user('boss', role='admin', superuser=True); make_user('nobody')"
    )
    cli(server.data_dir, "manage", "shell", "-c", script)
    port = free_port()
    server.procs["web"] = subprocess.Popen(
        [sys.executable, "-m", "callvault.cli", "web", "--http-port", str(port)],
        env=server.env(),
        stdout=(server.data_dir / "web.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    server.wait(lambda: _http_ok(base + "/healthz"), 30, "the web server")
    boss, nobody = _login(base, "boss"), _login(base, "nobody")
    headers = {"Origin": base}
    with (
        ws_connect(f"ws://127.0.0.1:{port}/ws/events/", additional_headers={**headers, "Cookie": boss}) as ws,
        ws_connect(
            f"ws://127.0.0.1:{port}/ws/events/", additional_headers={**headers, "Cookie": nobody}
        ) as other,
    ):
        placed = subprocess.run(
            [
                sys.executable,
                "-m",
                "callvault.cli",
                "test-call",
                f"127.0.0.1:{server.sip_port}",
                "--seconds",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert placed.returncode == 0, placed.stderr
        kinds: list[str] = []
        call_id = ""
        deadline = time.monotonic() + 40
        while "call.completed" not in kinds and time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            kinds.append(message["type"])
            call_id = call_id or message["call"]["id"]
            assert message["call"]["id"] == call_id
        assert kinds[0] in ("call.ringing", "call.answered") and "call.ended" in kinds, kinds
        assert kinds[-1] == "call.completed", kinds
        with pytest.raises(TimeoutError):
            other.recv(timeout=0.5)  # a user without teams hears nothing
    request = urllib.request.Request(f"{base}/calls/{call_id}/row", headers={"Cookie": boss})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert call_id in response.read().decode()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _login(base: str, username: str) -> str:
    """Log in through the form like a browser; returns the Cookie header of the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token.group(1), "username": username, "password": PASSWORD}
    ).encode()
    request = urllib.request.Request(base + "/login/", data=form, headers={"Referer": base + "/login/"})
    opener.open(request, timeout=10).read()
    cookies = {c.name: c.value for c in jar}
    assert "sessionid" in cookies, "login failed"
    return f"sessionid={cookies['sessionid']}"
