"""A SIPREC recording client (SRC) for tests, benchmarks and installation checks.

It plays the part of an SBC: sends a multipart INVITE (SDP with two labelled
m-lines + RFC 7865 metadata naming caller and callee), streams *different*
audio on each leg as G.711 RTP with 20 ms packets, and hangs up with BYE.
Packets can be deliberately dropped, reordered or delayed to check that the
recorder places gaps at the right time.

The SIP messages are written by hand here on purpose: this client is an
independent peer, not a mirror of the server's own parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
import struct
import time
from collections.abc import Sequence

import numpy as np

from callvault.codecs import g711

PTIME = 0.020
SAMPLES = 160
_RTP = struct.Struct("!BBHII")


@dataclasses.dataclass
class Leg:
    """One direction of the call: who speaks and what they say (8 kHz int16 mono)."""

    number: str
    name: str
    pcm: np.ndarray
    drop: frozenset[int] = frozenset()  # packet indexes not sent (simulated loss)
    swap: frozenset[int] = frozenset()  # packet i is sent after packet i+1 (reordering)
    start_delay: float = 0.0  # seconds of silence (no packets) before this leg starts


@dataclasses.dataclass
class CallResult:
    call_id: str
    invite_status: int
    bye_status: int | None
    packets_sent: list[int]
    bye_sent_at: float | None
    setup_time: float


class SipError(Exception):
    pass


def _metadata(session_id: str, caller: Leg, callee: Leg, labels: Sequence[str]) -> str:
    def part(pid: str, leg: Leg, send: str, recv: str) -> str:
        return (
            f'<participant participant_id="{pid}"><nameID aor="sip:{leg.number}@example.jp">'
            f'<name xml:lang="ja">{leg.name}</name></nameID></participant>'
            f'<participantstreamassoc participant_id="{pid}"><send>{send}</send><recv>{recv}</recv>'
            "</participantstreamassoc>"
        )

    s1, s2 = "c3RyZWFtMQ==", "c3RyZWFtMg=="
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>'
        f'<session session_id="{session_id}"><start-time>2026-11-27T10:00:00Z</start-time></session>'
        + part("cGFydHkx", caller, s1, s2)
        + part("cGFydHky", callee, s2, s1)
        + f'<stream stream_id="{s1}" session_id="{session_id}"><label>{labels[0]}</label></stream>'
        f'<stream stream_id="{s2}" session_id="{session_id}"><label>{labels[1]}</label></stream>'
        "</recording>\r\n"
    )


def _sdp(
    ip: str, ports: Sequence[int], codec: str, labels: Sequence[str], direction: str = "sendonly"
) -> str:
    pt = 0 if codec == "PCMU" else 8
    lines = ["v=0", f"o=SBC 1 1 IN IP4 {ip}", "s=SIPREC", f"c=IN IP4 {ip}", "t=0 0"]
    for port, label in zip(ports, labels, strict=True):
        lines += [
            f"m=audio {port} RTP/AVP {pt} 101",
            f"a=rtpmap:{pt} {codec}/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            f"a={direction}",
            f"a=label:{label}",
        ]
    return "\r\n".join(lines) + "\r\n"


class SiprecClient:
    """Places SIPREC calls over UDP to one recorder."""

    def __init__(self, server: tuple[str, int], *, local_ip: str = "127.0.0.1", codec: str = "PCMU") -> None:
        self.server = server
        self.local_ip = local_ip
        self.codec = codec
        self._law: g711.Law = "ulaw" if codec == "PCMU" else "alaw"
        self._pt = 0 if codec == "PCMU" else 8

    # --- SIP over UDP -----------------------------------------------------------
    def _request(
        self,
        sock: socket.socket,
        method: str,
        call_id: str,
        cseq: int,
        from_tag: str,
        to_tag: str | None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Sequence[str] = (),
        branch: str | None = None,
    ) -> bytes:
        host, port = sock.getsockname()[:2]
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        to = f"<sip:srs@{self.server[0]}:{self.server[1]}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} sip:srs@{self.server[0]}:{self.server[1]} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:sbc@{host}:{port}>;tag={from_tag}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:sbc@{host}:{port}>;+sip.src",
            *extra,
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def _transact(
        self, sock: socket.socket, data: bytes, call_id: str, method: str, timeout: float = 8.0
    ) -> tuple[int, dict[str, str], bytes]:
        """Send a request (retransmitting per Timer A/E) until a final response arrives."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        interval = 0.5
        sock.sendto(data, self.server)
        next_send = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now > deadline:
                raise SipError(f"{method} {call_id}: no final response within {timeout}s")
            try:
                raw = await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout=max(0.01, next_send - now))
            except TimeoutError:
                sock.sendto(data, self.server)
                interval = min(interval * 2, 4.0)
                next_send = time.monotonic() + interval
                continue
            status, headers, body = _parse_response(raw)
            if headers.get("call-id") != call_id or not headers.get("cseq", "").endswith(method):
                continue
            if status >= 200:
                return status, headers, body

    # --- the call -------------------------------------------------------------
    async def call(
        self, caller: Leg, callee: Leg, *, after_media: float = 0.0, rtp_ports: tuple[int, int] | None = None
    ) -> CallResult:
        loop = asyncio.get_running_loop()
        sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sip.bind((self.local_ip, 0))
        sip.setblocking(False)
        rtp = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for i, s in enumerate(rtp):
            s.bind((self.local_ip, rtp_ports[i] if rtp_ports else 0))
            s.setblocking(False)
        call_id = secrets.token_hex(12) + "@callvault-test"
        from_tag = secrets.token_hex(4)
        labels = ("1", "2")
        boundary = "callvault-boundary-" + secrets.token_hex(4)
        session_id = "U2Vzc2lvbjE="
        ports = [s.getsockname()[1] for s in rtp]
        sdp = _sdp(self.local_ip, ports, self.codec, labels)
        meta = _metadata(session_id, caller, callee, labels)
        body = (
            f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
            f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{meta}\r\n--{boundary}--\r\n"
        ).encode()
        t_start = time.monotonic()
        try:
            invite = self._request(
                sip,
                "INVITE",
                call_id,
                1,
                from_tag,
                None,
                body,
                f'multipart/mixed;boundary="{boundary}"',
                ("Require: siprec", "Accept: application/sdp, application/rs-metadata+xml"),
            )
            status, headers, answer = await self._transact(sip, invite, call_id, "INVITE")
            setup = time.monotonic() - t_start
            if status != 200:
                return CallResult(call_id, status, None, [0, 0], None, setup)
            to_tag = _tag(headers.get("to", ""))
            ack = self._request(sip, "ACK", call_id, 1, from_tag, to_tag)
            sip.sendto(ack, self.server)
            media = _answer_ports(answer.decode("utf-8", "replace"))
            if len(media) < 2:
                raise SipError(f"answer has {len(media)} media ports: {answer!r}")
            sent = await self._stream(loop, rtp, media, [caller, callee])
            if after_media:
                await asyncio.sleep(after_media)
            bye = self._request(sip, "BYE", call_id, 2, from_tag, to_tag)
            bye_at = time.time()
            bye_status, _, _ = await self._transact(sip, bye, call_id, "BYE")
            return CallResult(call_id, status, bye_status, sent, bye_at, setup)
        finally:
            sip.close()
            for s in rtp:
                s.close()

    async def _stream(
        self,
        loop: asyncio.AbstractEventLoop,
        socks: list[socket.socket],
        media: list[tuple[str, int]],
        legs: list[Leg],
    ) -> list[int]:
        """Send both legs in real time, 20 ms per packet, as a phone would."""
        packets: list[list[tuple[float, bytes]]] = []
        for leg in legs:
            ssrc = int.from_bytes(os.urandom(4), "big")
            seq0 = int.from_bytes(os.urandom(2), "big")
            ts0 = int.from_bytes(os.urandom(4), "big")
            pcm = leg.pcm
            n = (len(pcm) + SAMPLES - 1) // SAMPLES
            pcm = np.concatenate([pcm, np.zeros(n * SAMPLES - len(pcm), dtype=np.int16)])
            payload = g711.encode(pcm, self._law)
            out: list[tuple[float, bytes]] = []
            for k in range(n):
                if k in leg.drop:
                    continue
                hdr = _RTP.pack(
                    0x80,
                    (0x80 if k == 0 else 0) | self._pt,
                    (seq0 + k) & 0xFFFF,
                    (ts0 + k * SAMPLES) & 0xFFFFFFFF,
                    ssrc,
                )
                out.append((leg.start_delay + k * PTIME, hdr + payload[k * SAMPLES : (k + 1) * SAMPLES]))
            for k in sorted(leg.swap):
                # send packet k right after k+1
                a = next((j for j, (_, p) in enumerate(out) if _seq(p) == (seq0 + k) & 0xFFFF), None)
                if a is not None and a + 1 < len(out):
                    (ta, pa), (tb, pb) = out[a], out[a + 1]
                    out[a], out[a + 1] = (ta, pb), (tb, pa)
            packets.append(out)
        t0 = time.monotonic()
        idx = [0] * len(legs)
        sent = [0] * len(legs)
        while any(idx[i] < len(packets[i]) for i in range(len(legs))):
            now = time.monotonic() - t0
            next_due = None
            for i, sock in enumerate(socks):
                while idx[i] < len(packets[i]) and packets[i][idx[i]][0] <= now:
                    sock.sendto(packets[i][idx[i]][1], media[i])
                    sent[i] += 1
                    idx[i] += 1
                if idx[i] < len(packets[i]):
                    due = packets[i][idx[i]][0]
                    next_due = due if next_due is None else min(next_due, due)
            if next_due is not None:
                await asyncio.sleep(max(0.0, next_due - (time.monotonic() - t0)))
        return sent


def _seq(packet: bytes) -> int:
    return int.from_bytes(packet[2:4], "big")


def _parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("SIP/2.0"):
        return 0, {}, b""
    headers: dict[str, str] = {}
    compact = {"i": "call-id", "t": "to", "f": "from", "v": "via", "l": "content-length", "c": "content-type"}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        key = compact.get(key, key)
        headers.setdefault(key, value.strip())
    return int(parts[1]), headers, body


def _tag(header: str) -> str | None:
    for param in header.split(";")[1:]:
        k, _, v = param.partition("=")
        if k.strip().lower() == "tag":
            return v.strip()
    return None


def _answer_ports(sdp: str) -> list[tuple[str, int]]:
    """(address, port) of each m-line of an SDP answer; a media-level c= overrides the session's."""
    session_ip: str | None = None
    out: list[list] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append([session_ip, int(line.split()[1])])
        elif line.startswith("c="):
            ip = line.split()[-1]
            if out:
                out[-1][0] = ip
            else:
                session_ip = ip
    return [(ip or "127.0.0.1", port) for ip, port in out]
