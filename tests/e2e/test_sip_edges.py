"""The recorder against a raw UDP peer: races, bad input and attacks, answered as RFC 3261 says."""

from __future__ import annotations

import secrets
import socket
import time

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}\r\na=sendonly\r\na=label:1\r\n"
)


class Peer:
    def __init__(self, server: Server) -> None:
        self.server = ("127.0.0.1", server.sip_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3)
        self.port = self.sock.getsockname()[1]

    def request(
        self,
        method: str,
        *,
        call_id: str,
        branch: str,
        body: bytes = b"",
        ctype: str = "",
        cseq: int = 1,
        extra: str = "",
    ) -> bytes:
        head = (
            f"{method} sip:srs@127.0.0.1:{self.server[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
            f"From: <sip:sbc@127.0.0.1>;tag=peer\r\nTo: <sip:srs@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:sbc@127.0.0.1:{self.port}>\r\n{extra}"
        )
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def responses(self, until: int, limit: int = 10) -> list[str]:
        """Status lines received until one with status ``until`` (or the limit)."""
        got: list[str] = []
        while len(got) < limit:
            data = self.sock.recv(65535)
            line = data.split(b"\r\n", 1)[0].decode()
            got.append(
                line
                + " | "
                + next((h for h in data.decode(errors="replace").split("\r\n") if h.startswith("CSeq:")), "")
            )
            if line.startswith(f"SIP/2.0 {until}"):
                return got
        return got


def invite_body(codec: str = "PCMU/8000", pt: int = 0) -> bytes:
    return SDP.format(codec=codec, pt=pt).encode()


def test_cancel_that_beats_the_answer_gets_487_and_leaves_a_missed_call(server: Server) -> None:
    peer = Peer(server)
    call_id, branch = f"cancel-{secrets.token_hex(4)}", "z9hG4bK" + secrets.token_hex(6)
    invite = peer.request(
        "INVITE", call_id=call_id, branch=branch, body=invite_body(), ctype="application/sdp"
    )
    cancel = peer.request("CANCEL", call_id=call_id, branch=branch)
    # the CANCEL follows the INVITE at once; the recorder answers only once the call's spool is on disk
    peer.send(invite)
    peer.send(cancel)
    lines = peer.responses(487)
    assert any(line.startswith("SIP/2.0 200") and "CANCEL" in line for line in lines), lines
    assert lines[-1].startswith("SIP/2.0 487") and "INVITE" in lines[-1], lines
    peer.send(peer.request("ACK", call_id=call_id, branch=branch))
    calls = server.wait(
        lambda: [c for c in server.calls() if c["state"] == "cancelled"], 15, "the missed call"
    )
    assert calls[0]["sip_call_id"] == call_id and calls[0]["end_reason"] == "cancel"
    server.wait(lambda: server.calls()[0]["recording_state"] == "none", 15, "missed call with no recording")
    assert server.calls()[0]["recording"] is None
    server.wait(lambda: not any((server.data_dir / "spool").iterdir()), 15, "spool cleaned up")


@pytest.mark.parametrize(
    ("what", "body", "ctype", "status"),
    [
        ("G.729 only", invite_body("G729/8000", 18), "application/sdp", 488),
        ("a body we do not take", b"hello", "text/plain", 415),
        ("broken SDP", b"v=0\r\nm=audio notaport RTP/AVP 0\r\n", "application/sdp", 400),
        (
            "an XML bomb in the metadata",
            b"--b\r\nContent-Type: application/sdp\r\n\r\n" + invite_body() + b"\r\n--b\r\n"
            b"Content-Type: application/rs-metadata+xml\r\n\r\n"
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b'<recording xmlns="urn:ietf:params:xml:ns:recording:1">&b;</recording>\r\n--b--\r\n',
            "multipart/mixed;boundary=b",
            400,
        ),
        (
            "an external entity in the metadata",
            b"--b\r\nContent-Type: application/sdp\r\n\r\n" + invite_body() + b"\r\n--b\r\n"
            b"Content-Type: application/rs-metadata+xml\r\n\r\n"
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<recording xmlns="urn:ietf:params:xml:ns:recording:1">&x;</recording>\r\n--b--\r\n',
            "multipart/mixed;boundary=b",
            400,
        ),
    ],
)
def test_unusable_offers_are_refused_with_the_right_status(
    server: Server, what: str, body: bytes, ctype: str, status: int
) -> None:
    peer = Peer(server)
    call_id = f"bad-{secrets.token_hex(4)}"
    peer.send(
        peer.request(
            "INVITE", call_id=call_id, branch="z9hG4bK" + secrets.token_hex(6), body=body, ctype=ctype
        )
    )
    lines = peer.responses(status)
    assert lines[-1].startswith(f"SIP/2.0 {status}"), (what, lines)
    time.sleep(0.3)
    assert not [c for c in server.calls() if c["sip_call_id"] == call_id], "a refused call is not a call"
    assert not any((server.data_dir / "spool").iterdir()), "a refused call leaves no spool"


def test_malformed_requests_get_400_or_are_dropped_and_the_server_keeps_working(server: Server) -> None:
    peer = Peer(server)
    bad_cseq = peer.request("OPTIONS", call_id="x1", branch="z9hG4bKbad1").replace(
        b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"
    )
    peer.send(bad_cseq)
    assert peer.responses(400)[-1].startswith("SIP/2.0 400")
    for junk in (
        b"\x00\x01garbage",
        b"NOT SIP AT ALL\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\n" + b"X: y\r\n" * 300,
        b"A" * 70000,
    ):
        peer.send(junk[:65000])
    peer.send(peer.request("OPTIONS", call_id="x2", branch="z9hG4bKok2"))
    lines = peer.responses(200)
    assert lines[-1].startswith("SIP/2.0 200") and "OPTIONS" in lines[-1]


def test_requests_outside_any_dialog_get_481_and_unknown_methods_501(server: Server) -> None:
    peer = Peer(server)
    peer.send(peer.request("BYE", call_id="nodialog", branch="z9hG4bKbye1"))
    assert peer.responses(481)[-1].startswith("SIP/2.0 481")
    peer.send(peer.request("PUBLISH", call_id="pub", branch="z9hG4bKpub1"))
    assert peer.responses(501)[-1].startswith("SIP/2.0 501")


def _answer_ports(response: bytes) -> list[int]:
    return [int(line.split()[1]) for line in response.decode().split("\r\n") if line.startswith("m=audio")]


def _recv_status(peer: Peer, status: int) -> bytes:
    while True:
        data = peer.sock.recv(65535)
        if data.startswith(f"SIP/2.0 {status}".encode()):
            return data


def _to_tag(response: bytes) -> str:
    to = next(h for h in response.decode().split("\r\n") if h.lower().startswith("to:"))
    return to.split("tag=")[1].split(";")[0]


def _rtp(seq: int, ssrc: int, byte: int) -> bytes:
    import struct

    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([byte]) * 160


def _metadata(parties: list[tuple[str, str, str]], partial: bool = False) -> bytes:
    """parties: (participant id, number, stream label) sending on that label."""
    body = '<?xml version="1.0"?><recording xmlns="urn:ietf:params:xml:ns:recording:1">'
    body += f"<datamode>{'partial' if partial else 'complete'}</datamode>"
    for pid, number, label in parties:
        body += (
            f'<participant participant_id="{pid}"><nameID aor="sip:{number}@pbx"/></participant>'
            f'<stream stream_id="s{label}" session_id="sess"><label>{label}</label></stream>'
            f'<participantstreamassoc participant_id="{pid}"><send>s{label}</send></participantstreamassoc>'
        )
    return (body + "</recording>").encode()


def _multipart(sdp: str, meta: bytes) -> bytes:
    return (
        b"--b\r\nContent-Type: application/sdp\r\n\r\n" + sdp.encode() + b"\r\n--b\r\n"
        b"Content-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n"
        + meta
        + b"\r\n--b--\r\n"
    )


def _sdp(labels: list[str], version: int) -> str:
    text = f"v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    for i, label in enumerate(labels):
        text += (
            f"m=audio {40000 + 2 * i} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\na=label:{label}\r\n"
        )
    return text


def test_a_participant_added_by_reinvite_is_recorded_with_the_callee_side(server: Server) -> None:
    peer = Peer(server)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    call_id = f"conf-{secrets.token_hex(4)}"
    two = [("p1", "0312345678", "1"), ("p2", "201", "2")]
    peer.send(
        peer.request(
            "INVITE",
            call_id=call_id,
            branch="z9hG4bK" + secrets.token_hex(6),
            body=_multipart(_sdp(["1", "2"], 1), _metadata(two)),
            ctype="multipart/mixed;boundary=b",
        )
    )
    ok = _recv_status(peer, 200)
    tag = _to_tag(ok)
    ports = _answer_ports(ok)

    def in_dialog(method: str, cseq: int, body: bytes = b"", ctype: str = "") -> bytes:
        return peer.request(
            method,
            call_id=call_id,
            branch="z9hG4bK" + secrets.token_hex(6),
            body=body,
            ctype=ctype,
            cseq=cseq,
        ).replace(b"To: <sip:srs@127.0.0.1>", f"To: <sip:srs@127.0.0.1>;tag={tag}".encode())

    peer.send(in_dialog("ACK", 1))
    for seq in range(50):
        rtp.sendto(_rtp(seq, 1, 0x10), ("127.0.0.1", ports[0]))
        rtp.sendto(_rtp(seq, 2, 0x20), ("127.0.0.1", ports[1]))
        time.sleep(0.004)
    # a transfer brings in a third party, sending on a new third m-line
    three = [*two, ("p3", "0398765432", "3")]
    peer.send(
        in_dialog(
            "INVITE",
            2,
            _multipart(_sdp(["1", "2", "3"], 2), _metadata(three[2:], partial=True)),
            "multipart/mixed;boundary=b",
        )
    )
    ok2 = _recv_status(peer, 200)
    ports2 = _answer_ports(ok2)
    assert ports2[:2] == ports and ports2[2] not in (0, *ports)
    peer.send(in_dialog("ACK", 2))
    third = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    third.bind(("127.0.0.1", 0))
    for seq in range(50, 100):
        third.sendto(_rtp(seq, 3, 0x30), ("127.0.0.1", ports2[2]))
        time.sleep(0.004)
    peer.send(in_dialog("BYE", 3))
    _recv_status(peer, 200)
    [call] = server.wait_calls(1)
    roles = {p["number"]: p["role"] for p in call["participants"]}
    # the transferred-in party takes the callee side (right channel), next to the original callee
    assert roles == {"+81312345678": "caller", "201": "callee", "+81398765432": "callee"}
    streams = {s["index"]: s for s in call["streams"]}
    assert sorted(streams) == [0, 1, 2] and streams[2]["received"] == 50
    rtp.close()
    third.close()


def test_a_call_whose_rtp_stops_is_ended_by_the_recorder_with_bye(server_factory) -> None:
    server = server_factory(CALLVAULT_RTP_TIMEOUT="5")
    peer = Peer(server)
    peer.sock.settimeout(15)
    call_id = f"silent-{secrets.token_hex(4)}"
    peer.send(
        peer.request(
            "INVITE",
            call_id=call_id,
            branch="z9hG4bK" + secrets.token_hex(6),
            body=invite_body(),
            ctype="application/sdp",
        )
    )
    ok = _recv_status(peer, 200)
    port = _answer_ports(ok)[0]
    tag = _to_tag(ok)
    peer.send(
        peer.request("ACK", call_id=call_id, branch="z9hG4bK" + secrets.token_hex(6)).replace(
            b"To: <sip:srs@127.0.0.1>", f"To: <sip:srs@127.0.0.1>;tag={tag}".encode()
        )
    )
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for seq in range(25):
        rtp.sendto(_rtp(seq, 9, 0x40), ("127.0.0.1", port))
    rtp.close()
    started = time.monotonic()
    while True:  # the client vanished; the recorder must hang up by itself
        data = peer.sock.recv(65535)
        if data.startswith(b"BYE "):
            break
    waited = time.monotonic() - started
    assert 4.0 <= waited <= 8.0, waited
    call = server.wait_calls(1)[0]
    assert (call["state"], call["end_reason"]) == ("completed", "rtp_timeout")
