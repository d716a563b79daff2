"""A SIPREC recording client (SRC) for tests, benchmarks and installation checks.

It plays the part of an SBC: sends a multipart INVITE (SDP with two labelled
m-lines + RFC 7865 metadata naming caller and callee), streams *different*
audio on each leg as G.711 RTP with 20 ms packets, and hangs up with BYE.
Packets can be deliberately dropped, reordered or delayed to check that the
recorder places gaps at the right time.

:class:`SiprecLoad` places many such calls at once from one process for capacity
benchmarks: one SIP socket for all dialogs, one UDP socket per RTP stream, and a
single media timer that sends one packet per stream every 20 ms from
preallocated buffers (about 1 µs of Python per packet plus the ``send`` syscall).

The SIP messages are written by hand here on purpose: this client is an
independent peer, not a mirror of the server's own parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence

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
    invite_sent_at: float | None = None  # wall clock (time.time()) when the INVITE left


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
            invite_sent_at = time.time()  # _transact sends it before its first await
            status, headers, answer = await self._transact(sip, invite, call_id, "INVITE")
            setup = time.monotonic() - t_start
            if status != 200:
                return CallResult(call_id, status, None, [0, 0], None, setup, invite_sent_at)
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
            return CallResult(call_id, status, bye_status, sent, bye_at, setup, invite_sent_at)
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


# ---------------------------------------------------------------------------------------------
# Many calls from one process (capacity benchmarks)
# ---------------------------------------------------------------------------------------------
_SEQ_TS = struct.Struct("!HI")  # sequence number and timestamp at offset 2 of the RTP header


@dataclasses.dataclass
class LoadCall:
    """One call of a load plan and what happened to it (times: ``time.time()`` unless noted)."""

    index: int
    start: float  # seconds after the start of the run when the INVITE is sent
    media_seconds: float  # how long media flows after the 200 OK
    call_id: str = ""
    invite_status: int = 0
    bye_status: int | None = None
    invite_sent_at: float | None = None
    answered_at: float | None = None
    media_end_at: float | None = None
    bye_sent_at: float | None = None
    setup_time: float | None = None  # INVITE sent -> 200 OK received, seconds
    packets_sent: list[int] = dataclasses.field(default_factory=lambda: [0, 0])
    ended_by_server: bool = False
    error: str = ""


@dataclasses.dataclass
class LoadReport:
    calls: list[LoadCall]
    ticks: int  # media timer ticks run
    tick_lag: list[float]  # seconds each tick ran after its due time (one sample per tick)
    tick_busy: float  # seconds spent sending RTP inside ticks
    packets: int  # RTP packets sent in total
    cpu_seconds: float  # user+system CPU of this process during run()
    wall_seconds: float
    max_streams: int  # most streams sending at once
    send_errors: int  # RTP sends refused by the kernel (e.g. ICMP port unreachable)


class _Stream:
    """One RTP stream: a preallocated packet whose header fields are patched in place."""

    __slots__ = ("buf", "frames", "i", "nframes", "off", "pt", "send", "seq0", "sock", "ts0")

    def __init__(self, sock: socket.socket, pt: int, frames: list[bytes], offset: int) -> None:
        self.sock = sock
        self.send = sock.send  # the socket is connected to the recorder's port
        self.pt = pt
        self.frames = frames
        self.nframes = len(frames)
        self.off = offset % self.nframes
        self.i = 0
        self.seq0 = int.from_bytes(os.urandom(2), "big")
        self.ts0 = int.from_bytes(os.urandom(4), "big")
        self.buf = bytearray(12 + len(frames[0]))
        _RTP.pack_into(
            self.buf, 0, 0x80, 0x80 | pt, self.seq0, self.ts0, int.from_bytes(os.urandom(4), "big")
        )


class _SipEndpoint(asyncio.DatagramProtocol):
    """All dialogs of a :class:`SiprecLoad` share this socket; responses are matched by Call-ID and CSeq."""

    def __init__(self, load: SiprecLoad) -> None:
        self.load = load
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.load._on_sip(data, addr)


class SiprecLoad:
    """Places many concurrent two-stream SIPREC calls from one asyncio process.

    ``plan`` is a list of :class:`LoadCall` (start offset and media duration each);
    :meth:`run` sends INVITEs at their start times, streams G.711 on both legs from
    the answer until ``media_seconds`` later, then sends BYE, and returns a
    :class:`LoadReport` including the media timer's own lateness, so a caller can
    tell whether the generator kept up.  Streams are spread over ``slots`` phases
    of the 20 ms packet interval, as independent calls would be.
    """

    def __init__(
        self,
        server: tuple[str, int],
        caller_pcm: np.ndarray,
        callee_pcm: np.ndarray,
        *,
        local_ip: str = "127.0.0.1",
        codec: str = "PCMU",
        slots: int = 4,
        bye_delay: float = PTIME,
        sip_timeout: float = 16.0,
    ) -> None:
        self.server = server
        self.local_ip = local_ip
        self.codec = codec
        self.pt = 0 if codec == "PCMU" else 8
        law: g711.Law = "ulaw" if codec == "PCMU" else "alaw"
        self.frames = [self._frames(caller_pcm, law), self._frames(callee_pcm, law)]
        self.slots: list[list[_Stream]] = [[] for _ in range(max(1, slots))]
        self.bye_delay = bye_delay
        self.sip_timeout = sip_timeout
        self._client = SiprecClient(server, local_ip=local_ip, codec=codec)
        self._waiting: dict[tuple[str, str], asyncio.Future[tuple[int, dict[str, str], bytes]]] = {}
        self._acks: dict[str, bytes] = {}
        self._provisional: set[str] = set()
        self._send_errors = 0
        self._by_call_id: dict[str, LoadCall] = {}
        self._sip: _SipEndpoint | None = None
        self._sip_sock: socket.socket | None = None
        self._lag: list[float] = []
        self._busy = 0.0
        self._ticks = 0
        self._packets = 0
        self._max_streams = 0
        self._streams_now = 0

    @staticmethod
    def _frames(pcm: np.ndarray, law: g711.Law) -> list[bytes]:
        n = max(1, len(pcm) // SAMPLES)
        pcm = np.asarray(pcm, dtype=np.int16)[: n * SAMPLES]
        if len(pcm) < n * SAMPLES:
            pcm = np.concatenate([pcm, np.zeros(n * SAMPLES - len(pcm), dtype=np.int16)])
        payload = g711.encode(pcm, law)
        return [payload[k * SAMPLES : (k + 1) * SAMPLES] for k in range(n)]

    @property
    def packets_sent(self) -> int:
        """RTP packets sent so far (safe to read from a progress callback)."""
        return self._packets

    # --- SIP -------------------------------------------------------------------------------
    def _on_sip(self, raw: bytes, addr: tuple[str, int]) -> None:
        if raw.startswith(b"SIP/2.0"):
            status, headers, body = _parse_response(raw)
            cseq = headers.get("cseq", "").split()
            key = (headers.get("call-id", ""), cseq[-1] if cseq else "")
            fut = self._waiting.get(key)
            if fut is not None and not fut.done():
                if status >= 200:
                    fut.set_result((status, headers, body))
                elif status >= 100 and key[1] == "INVITE":
                    self._provisional.add(key[0])
            elif key[1] == "INVITE" and status == 200 and key[0] in self._acks:
                self._send_sip(self._acks[key[0]])  # our ACK was lost: the 200 is retransmitted
            return
        # a request from the recorder (BYE when it ends a call, OPTIONS keep-alive): answer 200
        head = raw.partition(b"\r\n\r\n")[0].decode("utf-8", "replace").split("\r\n")
        method = head[0].split(" ", 1)[0]
        keep = [
            h
            for h in head[1:]
            if h.split(":", 1)[0].strip().lower()
            in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
        ]
        self._send_sip(
            ("\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0"]) + "\r\n\r\n").encode(), addr
        )
        if method == "BYE":
            call_id = next(
                (
                    h.split(":", 1)[1].strip()
                    for h in keep
                    if h.split(":", 1)[0].strip().lower() in ("call-id", "i")
                ),
                "",
            )
            lc = self._by_call_id.get(call_id)
            if lc is not None:
                lc.ended_by_server = True

    def _send_sip(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        assert self._sip is not None and self._sip.transport is not None
        self._sip.transport.sendto(data, addr or self.server)

    async def _transact(self, data: bytes, call_id: str, method: str) -> tuple[int, dict[str, str], bytes]:
        """Send a request, retransmitting (Timer A/E: 0.5 s doubling to 4 s) until a final response."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, dict[str, str], bytes]] = loop.create_future()
        self._waiting[(call_id, method)] = fut
        deadline = time.monotonic() + self.sip_timeout
        interval = 0.5
        try:
            while True:
                self._send_sip(data)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout=interval)
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise SipError(
                            f"{method} {call_id}: no final response within {self.sip_timeout}s"
                        ) from None
                    if call_id in self._provisional:  # INVITE after 1xx: wait, don't resend
                        interval = self.sip_timeout
                    else:
                        interval = min(interval * 2, 4.0)
        finally:
            self._waiting.pop((call_id, method), None)
            self._provisional.discard(call_id)

    def _request(
        self,
        method: str,
        call_id: str,
        cseq: int,
        from_tag: str,
        to_tag: str | None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Sequence[str] = (),
    ) -> bytes:
        assert self._sip_sock is not None
        return self._client._request(
            self._sip_sock, method, call_id, cseq, from_tag, to_tag, body, content_type, extra
        )

    # --- media -----------------------------------------------------------------------------
    def _tick(self, slot: int) -> None:
        started = time.perf_counter()
        pack = _SEQ_TS.pack_into
        streams = self.slots[slot]
        for st in streams:
            i = st.i
            buf = st.buf
            buf[12:] = st.frames[(st.off + i) % st.nframes]
            pack(buf, 2, (st.seq0 + i) & 0xFFFF, (st.ts0 + i * SAMPLES) & 0xFFFFFFFF)
            try:
                st.send(buf)
            except OSError:  # e.g. ECONNREFUSED: the recorder closed the port (call ended)
                self._send_errors += 1
            st.i = i + 1
            if i == 0:
                buf[1] = st.pt  # the marker bit only on the first packet
        self._packets += len(streams)
        self._busy += time.perf_counter() - started

    async def _media_timer(self, stop: asyncio.Event) -> None:
        """Run slot ticks at t0 + k * PTIME / slots; when late, catch up without skipping packets."""
        n = len(self.slots)
        step = PTIME / n
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = t0 + k * step
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            self._lag.append(now - due)
            self._tick(k % n)
            self._ticks += 1
            k += 1
            if k % n == 0:
                await asyncio.sleep(0)  # let SIP run even when the timer is behind

    # --- one call --------------------------------------------------------------------------
    async def _one(self, lc: LoadCall, base: float, caller: Leg, callee: Leg) -> None:
        delay = base + lc.start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        socks = []
        streams: list[_Stream] = []
        slot = self.slots[lc.index % len(self.slots)]
        try:
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((self.local_ip, 0))
                s.setblocking(False)
            lc.call_id = secrets.token_hex(12) + "@callvault-load"
            self._by_call_id[lc.call_id] = lc
            from_tag = secrets.token_hex(4)
            labels = ("1", "2")
            boundary = "callvault-boundary-" + secrets.token_hex(4)
            sdp = _sdp(self.local_ip, [s.getsockname()[1] for s in socks], self.codec, labels)
            meta = _metadata("U2Vzc2lvbjE=", caller, callee, labels)
            body = (
                f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
                f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
                f"Content-Disposition: recording-session\r\n\r\n{meta}\r\n--{boundary}--\r\n"
            ).encode()
            invite = self._request(
                "INVITE",
                lc.call_id,
                1,
                from_tag,
                None,
                body,
                f'multipart/mixed;boundary="{boundary}"',
                ("Require: siprec", "Accept: application/sdp, application/rs-metadata+xml"),
            )
            lc.invite_sent_at = time.time()
            t_inv = time.monotonic()
            status, headers, answer = await self._transact(invite, lc.call_id, "INVITE")
            lc.invite_status = status
            lc.setup_time = time.monotonic() - t_inv
            if status != 200:
                return
            lc.answered_at = time.time()
            to_tag = _tag(headers.get("to", ""))
            ack = self._request("ACK", lc.call_id, 1, from_tag, to_tag)
            self._acks[lc.call_id] = ack
            self._send_sip(ack)
            media = _answer_ports(answer.decode("utf-8", "replace"))
            if len(media) < 2:
                raise SipError(f"answer has {len(media)} media ports")
            for k, (s, addr) in enumerate(zip(socks, media, strict=False)):
                s.connect(addr)
                streams.append(_Stream(s, self.pt, self.frames[k], offset=lc.index * 37 + k * 11))
            slot.extend(streams)
            self._streams_now += 2
            self._max_streams = max(self._max_streams, self._streams_now)
            await asyncio.sleep(lc.media_seconds)
            for st in streams:
                slot.remove(st)
            self._streams_now -= 2
            lc.packets_sent = [st.i for st in streams]
            streams = []
            lc.media_end_at = time.time()
            if self.bye_delay:
                await asyncio.sleep(self.bye_delay)
            self._acks.pop(lc.call_id, None)
            bye = self._request("BYE", lc.call_id, 2, from_tag, to_tag)
            lc.bye_sent_at = time.time()
            lc.bye_status, _, _ = await self._transact(bye, lc.call_id, "BYE")
        except (SipError, OSError) as exc:
            lc.error = f"{type(exc).__name__}: {exc}"
        finally:
            if streams:  # the call failed while sending media
                for st in streams:
                    if st in slot:
                        slot.remove(st)
                        self._streams_now -= 1
                lc.packets_sent = [st.i for st in streams]
            for s in socks:
                s.close()

    async def run(
        self,
        plan: Sequence[LoadCall],
        *,
        caller: Leg | None = None,
        callee: Leg | None = None,
        progress: Callable[[SiprecLoad], None] | None = None,
        progress_interval: float = 0.25,
    ) -> LoadReport:
        """Run the whole plan; ``progress(self)`` is called every ``progress_interval`` seconds."""
        loop = asyncio.get_running_loop()
        caller = caller or Leg("0312345678", "Caller", np.zeros(0, dtype=np.int16))
        callee = callee or Leg("201", "Agent", np.zeros(0, dtype=np.int16))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((self.local_ip, 0))
        self._sip_sock = sock
        _, proto = await loop.create_datagram_endpoint(lambda: _SipEndpoint(self), sock=sock)
        self._sip = proto
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        stop = asyncio.Event()
        timer = loop.create_task(self._media_timer(stop))

        async def report_progress() -> None:
            while progress is not None and not stop.is_set():
                progress(self)
                await asyncio.sleep(progress_interval)

        reporter = loop.create_task(report_progress())
        try:
            await asyncio.gather(*(self._one(lc, t0, caller, callee) for lc in plan))
        finally:
            stop.set()
            await asyncio.gather(timer, reporter, return_exceptions=True)
            if progress is not None:
                progress(self)
            if self._sip.transport is not None:
                self._sip.transport.close()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return LoadReport(
            calls=list(plan),
            ticks=self._ticks,
            tick_lag=self._lag,
            tick_busy=self._busy,
            packets=self._packets,
            cpu_seconds=cpu,
            wall_seconds=time.monotonic() - t0,
            max_streams=self._max_streams,
            send_errors=self._send_errors,
        )


def sip_ping(port: int, timeout: float = 0.5, host: str = "127.0.0.1") -> bool:
    """Send one SIP OPTIONS over UDP; True once the recorder answers 200 (readiness probe)."""
    msg = (
        f"OPTIONS sip:srs@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:9;rport;branch=z9hG4bKping{secrets.randbelow(10**9)}\r\n"
        f"From: <sip:probe@{host}>;tag=probe\r\nTo: <sip:srs@{host}>\r\n"
        f"Call-ID: ping-{secrets.randbelow(10**9)}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind((host, 0))
        s.sendto(msg, (host, port))
        try:
            return s.recv(65535).startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False
