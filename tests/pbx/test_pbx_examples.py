"""The request shapes the README documents for each PBX, sent as those PBXs send them.

- Asterisk dialplan ``CURL(url,data)``: a form post, token in the URL, Asterisk's variables.
- Asterisk / FreePBX AMI: contrib/asterisk/callvault_ami_bridge.py reading real AMI text from a
  loopback socket, its signed requests sent to the API.
- Yealink action URLs: GET with $call_id, $local, $remote substituted (SIP URIs with @host).
- 3CX call journaling: one GET after the call with [CallType], [Duration] as hh:mm:ss, [DateTime].
"""

from __future__ import annotations

import importlib.util
import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.calls.models import Call
from callvault.apps.pbx.models import Integration, PbxCall
from tests.pbx.conftest import EVENTS, Cast, Pbx

pytestmark = pytest.mark.django_db

BRIDGE_PATH = Path(__file__).resolve().parents[2] / "contrib" / "asterisk" / "callvault_ami_bridge.py"


def load_bridge() -> Any:
    spec = importlib.util.spec_from_file_location("callvault_ami_bridge", BRIDGE_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_of(integration: Integration, call_id: str) -> Call:
    return PbxCall.objects.get(integration=integration, pbx_call_id=call_id).call


def test_the_asterisk_dialplan_curl_example(
    cast: Cast, token_pbx: Pbx, token_integration: Integration
) -> None:
    # README: same => n,Set(CV=${CURL(https://.../api/v1/events?token=...,event=ringing&call_id=${UNIQUEID}&...)})
    url = f"{EVENTS}?token={token_integration.secret}"
    client = Client()
    for data in (
        "event=ringing&call_id=1732712345.42&caller=0312345678&caller_name=%E5%B1%B1%E7%94%B0&callee=0501234567"
        "&extension=201&direction=in",
        "event=ended&call_id=1732712345.42&reason=ANSWER&talk_seconds=62",
    ):
        r = client.post(url, data, content_type="application/x-www-form-urlencoded")
        assert r.status_code == 200, r.content
    call = call_of(token_integration, "1732712345.42")
    assert (call.state, call.caller_name, call.agent) == ("completed", "山田", cast.member)
    assert call.duration == pytest.approx(62, abs=1)


AMI_SESSION = [
    "Asterisk Call Manager/7.0.3",
    {"Response": "Success", "Message": "Authentication accepted"},
    # an inbound call from the trunk to extension 201, answered, 2 legs share Linkedid 1732712345.7
    {
        "Event": "Newchannel",
        "Channel": "PJSIP/trunk-00000007",
        "Uniqueid": "1732712345.7",
        "Linkedid": "1732712345.7",
        "CallerIDNum": "0312345678",
        "Exten": "0501234567",
        "Context": "from-trunk",
    },
    {
        "Event": "DialBegin",
        "Channel": "PJSIP/trunk-00000007",
        "Uniqueid": "1732712345.7",
        "Linkedid": "1732712345.7",
        "CallerIDNum": "0312345678",
        "CallerIDName": "ヤマダ",
        "Context": "from-trunk",
        "DestChannel": "PJSIP/201-00000008",
        "DestUniqueid": "1732712345.8",
        "DestLinkedid": "1732712345.7",
        "DialString": "201",
    },
    {
        "Event": "DialEnd",
        "Channel": "PJSIP/trunk-00000007",
        "Uniqueid": "1732712345.7",
        "Linkedid": "1732712345.7",
        "DestChannel": "PJSIP/201-00000008",
        "DialStatus": "ANSWER",
    },
    {
        "Event": "BlindTransfer",
        "TransfererChannel": "PJSIP/201-00000008",
        "TransfererLinkedid": "1732712345.7",
        "Extension": "301",
        "Context": "from-internal",
    },
    {
        "Event": "Hangup",
        "Channel": "PJSIP/201-00000008",
        "Uniqueid": "1732712345.8",
        "Linkedid": "1732712345.7",
        "Cause": "16",
        "Cause-txt": "Normal Clearing",
    },
    {
        "Event": "Hangup",
        "Channel": "PJSIP/trunk-00000007",
        "Uniqueid": "1732712345.7",
        "Linkedid": "1732712345.7",
        "Cause": "16",
        "Cause-txt": "Normal Clearing",
    },
    # a call nobody answered
    {
        "Event": "DialBegin",
        "Channel": "PJSIP/trunk-00000009",
        "Uniqueid": "1732712399.9",
        "Linkedid": "1732712399.9",
        "CallerIDNum": "09012345678",
        "Context": "from-trunk",
        "DestChannel": "PJSIP/201-0000000a",
        "DialString": "201",
    },
    {
        "Event": "DialEnd",
        "Channel": "PJSIP/trunk-00000009",
        "Uniqueid": "1732712399.9",
        "Linkedid": "1732712399.9",
        "DestChannel": "PJSIP/201-0000000a",
        "DialStatus": "NOANSWER",
    },
    {
        "Event": "Hangup",
        "Channel": "PJSIP/trunk-00000009",
        "Uniqueid": "1732712399.9",
        "Linkedid": "1732712399.9",
        "Cause": "19",
        "Cause-txt": "No answer",
    },
]


def ami_text(item: Any) -> bytes:
    if isinstance(item, str):
        return (item + "\r\n").encode()
    return ("".join(f"{k}: {v}\r\n" for k, v in item.items()) + "\r\n").encode()


def test_the_ami_bridge_turns_a_real_ami_stream_into_signed_events(
    cast: Cast, pbx: Pbx, integration: Integration
) -> None:
    bridge_module = load_bridge()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    login: list[bytes] = []

    def ami() -> None:  # an AMI server: answers the login, then sends the events in small pieces
        conn, _ = server.accept()
        with conn:
            conn.sendall(ami_text(AMI_SESSION[0]))
            login.append(conn.recv(4096))
            for item in AMI_SESSION[1:]:
                data = ami_text(item)
                for i in range(0, len(data), 37):  # TCP may cut anywhere
                    conn.sendall(data[i : i + 37])

    thread = threading.Thread(target=ami, daemon=True)
    thread.start()
    sock = socket.create_connection(server.getsockname())
    sock.sendall(b"Action: Login\r\nUsername: callvault\r\nSecret: s\r\nEvents: call\r\n\r\n")
    clock = iter(range(1_000, 2_000, 5))
    base = timezone.now().timestamp() - 1500
    bridge = bridge_module.Bridge(clock=lambda: base + next(clock))
    sent = []
    for message in bridge_module.read_messages(sock):
        for event in bridge.feed(message):
            body, headers = bridge_module.signed_request(
                "http://x/api/v1/events", integration.key, integration.secret, event
            )
            r = pbx.client.post(EVENTS, body, content_type="application/json", headers=headers)
            assert r.status_code == 200, r.content
            sent.append(event["event"])
    sock.close()
    thread.join(5)
    assert b"Action: Login" in login[0]
    assert sent == ["ringing", "answered", "transfer", "ended", "ringing", "ended"]
    answered = call_of(integration, "1732712345.7")
    assert (answered.state, answered.caller_number, answered.caller_name) == (
        "completed",
        "+81312345678",
        "ヤマダ",
    )
    assert answered.agent == cast.outsider  # transferred to 301
    assert answered.metadata["pbx"]["transfers"][0]["to"] == "301"
    missed = call_of(integration, "1732712399.9")
    assert (missed.state, missed.recording_state, missed.team) == ("cancelled", "none", cast.team_a)


def test_the_bridge_resends_nothing_twice(pbx: Pbx, integration: Integration) -> None:
    bridge_module = load_bridge()
    event = bridge_module.Bridge(clock=lambda: timezone.now().timestamp()).feed(AMI_SESSION[3])[0]
    for expected in ("applied", "duplicate"):
        body, headers = bridge_module.signed_request("", integration.key, integration.secret, event)
        r = pbx.client.post(EVENTS, body, content_type="application/json", headers=headers)
        assert r.json()["status"] == expected


def yealink(secret: str, query: str, **values: str) -> str:
    """What a Yealink phone requests: the action URL with its $variables substituted."""
    for name, value in values.items():
        query = query.replace(f"${name}", quote(value, safe="@"))
    return f"{EVENTS}?token={secret}&{query}"


def test_the_yealink_action_urls(cast: Cast, token_integration: Integration) -> None:
    client = Client()
    sip = "0a1b2c3d4e5f@192.168.1.20"
    values = {"call_id": sip, "local": "201@192.168.1.10", "remote": "0312345678@192.168.1.10"}
    urls = (  # README: action_url.incoming_call / call_established / call_terminated
        "event=incoming_call&call_id=$call_id&sip_call_id=$call_id&caller=$remote&callee=$local&extension=$local&direction=in",
        "event=call_established&call_id=$call_id&extension=$local",
        "event=call_terminated&call_id=$call_id",
    )
    for query in urls:
        r = client.get(yealink(token_integration.secret, query, **values))
        assert r.status_code == 200, r.content
    call = call_of(token_integration, sip)
    assert (call.state, call.caller_number, call.agent) == ("completed", "+81312345678", cast.member)
    assert call.sip_call_id == sip
    # action_url.missed_call
    r = client.get(
        yealink(
            token_integration.secret,
            "event=missed_call&call_id=$call_id&caller=$remote&callee=$local",
            call_id="ffff@192.168.1.20",
            local="201@192.168.1.10",
            remote="09011112222@192.168.1.10",
        )
    )
    assert r.json()["state"] == "cancelled"


def test_the_3cx_call_journal(cast: Cast, token_integration: Integration) -> None:
    client = Client()
    started = timezone.localtime(timezone.now() - timedelta(minutes=5)).strftime("%Y/%m/%d %H:%M:%S")
    common = {"token": token_integration.secret, "event": "ended"}
    answered = {
        "call_id": f"0312345678-{started}",
        "caller": "0312345678",
        "extension": "201",
        "reason": "Inbound",
        "talk_seconds": "00:01:05",
        "started_at": started,
    }
    missed = {
        "call_id": f"09012345678-{started}",
        "caller": "09012345678",
        "extension": "201",
        "reason": "Missed",
        "talk_seconds": "00:00:00",
        "started_at": started,
    }
    for data in (answered, missed):
        r = client.get(f"{EVENTS}?{urlencode({**common, **data})}")
        assert r.status_code == 200, r.content
    call = call_of(token_integration, answered["call_id"])
    assert (call.state, call.direction, call.agent) == ("completed", "in", cast.member)
    assert call.duration == pytest.approx(65, abs=1)
    expected_start = datetime.fromisoformat(started.replace("/", "-")).replace(
        tzinfo=timezone.get_current_timezone()
    )
    assert abs((call.started_at - expected_start).total_seconds()) < 1
    assert call_of(token_integration, missed["call_id"]).state == "cancelled"
