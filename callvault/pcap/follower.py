"""Follow SIP calls and their RTP in captured traffic (sans-I/O), as Oreka and VoIPmonitor do.

Feed ``(timestamp, link type, frame)`` records (:meth:`PassiveCapture.process`), read
events (:meth:`PassiveCapture.next_event`), and drain each channel's packets
(:meth:`Channel.take`).  Time is always packet time: a file is followed exactly as the
live capture would have been; :meth:`PassiveCapture.tick` lets a live adapter advance
time when no packets come, :meth:`PassiveCapture.finish` ends what is still open.

Calls
    A call starts with an INVITE without To tag and is keyed by (Call-ID, From tag); its id
    is a UUID derived from that key and the first INVITE's time (millisecond), so importing
    the same traffic twice finds the same call.  Authentication retries (401/407 then a new
    INVITE) stay one call.  2xx answers it; CANCEL/487 or any other final response ends it
    unanswered (a missed call); BYE ends it.  re-INVITE/UPDATE/ACK bodies are new offers or
    answers: media that moves is followed, hold and resume are journalled.

Channels
    SDP says where each party wants to *receive* audio, so the packets sent to the callee's
    address are the caller's voice: channel 0 (role ``caller``, left), and those sent to the
    caller's address are the callee's voice: channel 1 (``callee``, right).  A channel latches
    to the first source that sends valid RTP there; other sources are counted and dropped
    (garbage UDP on an RTP port is never recorded), unless the latched source has been silent
    for ``relatch_after`` seconds (an SBC or phone that changed its source port).  An address
    claimed by a newer call's SDP belongs to the newer call (ports are reused).  Packets before
    the answer (early media) and after the end of the dialog are not recorded.

Fast path
    Once a channel's source is known and the frame is plain IPv4/UDP, the 12 bytes of
    addresses and ports at a fixed offset are the key of a dict that leads straight to the
    channel: per RTP packet, one slice, one dict lookup, four byte checks, and the packet queued
    as a spool record (:data:`callvault.spool.format.RECORD_HEADER` + RTP bytes), so the spool
    writer takes the queue as it is instead of formatting every packet a second time.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from callvault.codecs import is_supported
from callvault.pcap.net import FIXED_L2, Datagram, NetDecoder, Segment, TcpReassembler
from callvault.pcap.reader import Record
from callvault.sdp import SdpError, SessionDescription
from callvault.sip.framing import StreamFramer
from callvault.sip.message import NameAddr, Request, Response, SipParseError, parse_message
from callvault.spool.format import RECORD_HEADER

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallStarted",
    "CallTrack",
    "CallUpdated",
    "Channel",
    "PassiveCapture",
]

# A stable namespace for call ids derived from (Call-ID, From tag, first INVITE time).
CALL_NAMESPACE = uuid.UUID("6b0f4f2e-8f1e-5a35-9d7e-6a1c7e0c1a55")
SIP_METHODS = frozenset(
    b"INVITE ACK BYE CANCEL OPTIONS REGISTER UPDATE INFO PRACK SUBSCRIBE NOTIFY REFER MESSAGE PUBLISH".split()
)
_START_LINE = re.compile(
    rb"(?:^|\n)(?:(?:INVITE|ACK|BYE|CANCEL|OPTIONS|REGISTER|UPDATE|INFO|PRACK|SUBSCRIBE|NOTIFY|REFER|MESSAGE"
    rb"|PUBLISH) \S+ SIP/2\.0\r?\n|SIP/2\.0 \d{3} )"
)
NON_AUDIO = ("telephone-event", "cn")
CALLER, CALLEE = 0, 1
ROLES = ("caller", "callee")
HOLD_DIRECTIONS = ("sendonly", "recvonly", "inactive")
CHECK_INTERVAL = 1.0
_pack_record_header = RECORD_HEADER.pack
_HEADER_SIZE = RECORD_HEADER.size
_unpack_arrival = RECORD_HEADER.unpack_from


@dataclass(eq=False)
class Channel:
    """One direction of a call's audio: the packets (timestamp, RTP bytes) not yet drained."""

    call: CallTrack
    index: int
    # spool records (arrival, length header + RTP bytes) not yet drained; the fast path holds
    # this list's ``append``, so the list itself is never replaced
    pending: list[bytes] = field(default_factory=list)
    source: tuple[str, int] | None = None
    last_ts: float = 0.0
    packets: int = 0
    foreign: int = 0
    garbage: int = 0
    endpoints: set[tuple[str, int]] = field(default_factory=set)
    fast_keys: set[bytes] = field(default_factory=set)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return ROLES[self.index]

    def take_records(self) -> list[bytes]:
        """Hand the pending spool records to the spool writer, as they are."""
        pending = self.pending
        if not pending:
            return []
        out = pending[:]
        pending.clear()
        self.last_ts = _unpack_arrival(out[-1])[0]
        self.packets += len(out)
        return out

    def take(self) -> list[tuple[float, bytes]]:
        """The pending packets as ``(arrival, RTP bytes)`` (for callers that look at them)."""
        return [(_unpack_arrival(rec)[0], rec[_HEADER_SIZE:]) for rec in self.take_records()]

    def last_activity(self) -> float:
        return _unpack_arrival(self.pending[-1])[0] if self.pending else self.last_ts

    def queue(self, ts: float, payload: bytes) -> None:
        self.pending.append(_pack_record_header(ts, len(payload)) + payload)  # UDP: < 64 KiB


@dataclass(eq=False)
class CallTrack:
    call_id: str
    sip_call_id: str
    caller_tag: str
    invite_ts: float
    invite_cseq: int
    transport: str
    remote: str
    callee_tag: str | None = None
    answered_ts: float | None = None
    ended_ts: float | None = None
    end_reason: str = ""
    end_status: int | None = None
    cancel_ts: float | None = None
    challenged_ts: float | None = None
    last_sip_ts: float = 0.0
    sdp: dict[int, SessionDescription] = field(default_factory=dict)
    directions: dict[int, str] = field(default_factory=dict)
    hold: bool = False
    participants: list[dict[str, Any]] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    early_packets: int = 0
    late_packets: int = 0
    capture_drops: int = 0
    changed: bool = False

    @property
    def ended(self) -> bool:
        return self.ended_ts is not None

    def last_activity(self) -> float:
        return max([self.last_sip_ts, *(ch.last_activity() for ch in self.channels)])

    def streams(self) -> list[dict[str, Any]]:
        return [dict(ch.record) for ch in self.channels if ch.record]


@dataclass(frozen=True, slots=True)
class CallStarted:
    call: CallTrack
    record: dict[str, Any]  # the journal's "invite" record


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call: CallTrack
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallUpdated:
    call: CallTrack
    record: dict[str, Any]  # an "update" record: streams, hold


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: CallTrack
    record: dict[str, Any]  # the "ended" record


Event = CallStarted | CallAnswered | CallUpdated | CallEnded


@dataclass
class _TcpSip:
    framer: StreamFramer = field(default_factory=StreamFramer)
    resync: bool = True
    scan: bytes = b""


def _party(header: str | None) -> tuple[str, str, str]:
    """(number, display name, aor) from a From/To/P-Asserted-Identity value."""
    if not header:
        return "", "", ""
    try:
        addr = NameAddr.parse(header.split(",")[0] if header.count("<") > 1 else header)
    except SipParseError:
        return "", "", ""
    uri = addr.uri
    number = (uri.user or "").split(";")[0]
    return number, addr.display_name or "", str(uri)


def _sdp_of(msg: Request | Response) -> SessionDescription | None:
    if not msg.body:
        return None
    try:
        for part in msg.body_parts():
            ctype = (part.content_type or "application/sdp").split(";")[0].strip().lower()
            if ctype == "application/sdp":
                return SessionDescription.parse(part.body)
    except (SipParseError, SdpError, ValueError):
        return None
    return None


def _payload_types(sdp: SessionDescription, index: int) -> dict[str, list[Any]]:
    media = sdp.media[index]
    fmtp = media.fmtp
    return {str(pt): [m.encoding, m.clock_rate, m.channels, fmtp.get(pt)] for pt, m in media.rtpmap.items()}


def _looks_like_sip(payload: bytes) -> bool:
    """A SIP start line begins here: a method and a space, or ``SIP/2.0 ``."""
    space = payload.find(b" ", 0, 12)
    return space > 0 and (payload[:space] in SIP_METHODS or payload.startswith(b"SIP/2.0 "))


def _audio_types(sdp: SessionDescription | None) -> dict[str, list[Any]]:
    if sdp is None:
        return {}
    for i, m in enumerate(sdp.media):
        if m.media.lower() == "audio" and not m.disabled:
            return _payload_types(sdp, i)
    return {}


class PassiveCapture:
    """The capture core; see the module docstring."""

    def __init__(
        self,
        *,
        rtp_timeout: float = 60.0,
        ring_timeout: float = 300.0,
        challenge_timeout: float = 32.0,
        relatch_after: float = 1.0,
        keep_ended: float = 64.0,
    ) -> None:
        self.rtp_timeout = rtp_timeout
        self.ring_timeout = ring_timeout
        self.challenge_timeout = challenge_timeout
        self.relatch_after = relatch_after
        self.keep_ended = keep_ended
        self.net = NetDecoder()
        self.tcp = TcpReassembler()
        self._events: deque[Event] = deque()
        self._calls: dict[str, list[CallTrack]] = {}  # SIP Call-ID -> calls (newest last)
        self.active: dict[str, CallTrack] = {}  # our call id -> call, not ended
        self._ended: deque[CallTrack] = deque()  # kept a while for retransmissions
        self._media: dict[tuple[str, int], Channel] = {}  # receive address -> channel
        self._after_end: dict[tuple[str, int], str] = {}  # addresses of ended calls (bounded)
        self._fast: dict[bytes, Callable[[bytes], None]] = {}  # key -> channel.pending.append
        self._fast_off: dict[int, int] = dict(FIXED_L2)
        self._tcp_sip: dict[tuple[str, int, str, int], _TcpSip] = {}
        self._next_check = 0.0
        self.now = 0.0
        self.stats: dict[str, int] = {
            "packets": 0,
            "sip_messages": 0,
            "sip_errors": 0,
            "rtp_packets": 0,
            "other_udp": 0,
            "other_tcp": 0,
            "rtp_foreign": 0,
            "rtp_garbage": 0,
            "rtp_early": 0,
            "rtp_after_end": 0,
            "calls": 0,
        }

    # ------------------------------------------------------------------ input
    def process(self, records: Iterable[Record]) -> None:
        """Handle records in time order (the hot loop)."""
        fast = self._fast
        fast_off = self._fast_off
        next_check = self._next_check
        slow = self._slow
        count = 0
        last_lt = -1
        off = k0 = k1 = proto = frag = frag2 = payload = length = -1
        pack = _pack_record_header
        ts = self.now
        for ts, lt, frame in records:
            count += 1
            if ts >= next_check:
                self.tick(ts)
                next_check = self._next_check
            if lt != last_lt:
                last_lt = lt
                off = fast_off.get(lt, -1)
                k0, k1, proto, frag, frag2, payload = off + 12, off + 24, off + 9, off + 6, off + 7, off + 28
                length = off + 2
            if off >= 0:
                append = fast.get(frame[k0:k1])
                # plain IPv4 (no options), UDP, not a fragment: the addresses and ports are the key
                if (
                    append is not None
                    and frame[off] == 0x45
                    and frame[proto] == 17
                    and not frame[frag] & 0x3F
                    and not frame[frag2]
                ):
                    # the datagram ends where the IP total length says: Ethernet pads short frames
                    # to 60 bytes, and some mirror ports keep the 4-byte FCS at the end of every frame
                    rtp = frame[payload : off + (frame[length] << 8 | frame[length + 1])]
                    n = len(rtp)
                    if n >= 12:
                        append(pack(ts, n) + rtp)
                    else:  # shorter than an RTP header (a corrupt IP length): not audio
                        self.stats["rtp_garbage"] += 1
                    continue
            slow(ts, lt, frame)
            if fast_off.get(lt, -1) != off:
                last_lt = -1  # the slow path learnt another frame layout: recompute the offsets
        self.stats["packets"] += count
        if ts > self.now:
            self.now = ts

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        self.process(((ts, linktype, frame),))

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def channels(self) -> Iterable[Channel]:
        """Channels that may hold pending packets (every channel of every open call)."""
        for call in self.active.values():
            yield from call.channels

    def report_drops(self, count: int, since: float, until: float) -> None:
        """The capture says it dropped ``count`` packets between ``since`` and ``until``.

        Every call alive in that interval gets them as evidence of capture loss (see
        :func:`capture_loss`); calls that ended before ``since`` are not touched.
        """
        if count <= 0:
            return
        for call in [*self.active.values(), *self._ended]:
            if call.invite_ts <= until and (call.ended_ts is None or call.ended_ts >= since):
                call.capture_drops += count

    # ------------------------------------------------------------------ time
    def tick(self, now: float) -> None:
        """Advance packet time: timeouts of silent calls, ringing calls and lost final responses."""
        if now > self.now:
            self.now = now
        self._next_check = now + CHECK_INTERVAL
        for call in list(self.active.values()):
            if call.answered_ts is not None:
                last = call.last_activity()
                if not call.hold and now - last > self.rtp_timeout:
                    self._end(call, last, "rtp_timeout")
            elif call.cancel_ts is not None and now - call.cancel_ts > 5.0:
                self._end(call, call.cancel_ts, "cancel")
            elif call.challenged_ts is not None and now - call.challenged_ts > self.challenge_timeout:
                self._end(call, call.challenged_ts, "rejected")
            elif now - call.last_sip_ts > self.ring_timeout:
                self._end(call, call.last_sip_ts, "no_answer")
        while self._ended and (self._ended[0].ended_ts or 0.0) < now - self.keep_ended:
            old = self._ended.popleft()
            calls = self._calls.get(old.sip_call_id)
            if calls is not None:
                calls[:] = [c for c in calls if c is not old]
                if not calls:
                    del self._calls[old.sip_call_id]

    def finish(self, reason: str = "capture_end") -> None:
        """End of input (or shutdown): every open call ends at its last activity."""
        for call in list(self.active.values()):
            self._end(call, call.last_activity(), reason)

    # ------------------------------------------------------------------ slow path
    def _slow(self, ts: float, lt: int, frame: bytes) -> None:
        pkt = self.net.decode(ts, lt, frame)
        if pkt is None:
            return
        if type(pkt) is Datagram:
            address = (pkt.dst, pkt.dport)
            ch = self._media.get(address)
            if ch is not None:
                self._rtp(ch, ts, pkt, frame, lt)
                return
            if address in self._after_end:
                self.stats["rtp_after_end"] += 1  # the dialog has ended: not recorded
                return
            payload = pkt.payload
            if _looks_like_sip(payload):
                try:
                    msg = parse_message(payload)
                except SipParseError:
                    self.stats["sip_errors"] += 1
                    return
                self._sip(ts, msg, pkt.src, pkt.sport, "UDP")
            else:
                self.stats["other_udp"] += 1
        else:
            assert isinstance(pkt, Segment)
            self._tcp(ts, pkt)

    def _rtp(self, ch: Channel, ts: float, pkt: Datagram, frame: bytes, lt: int) -> None:
        call = ch.call
        if call.answered_ts is None:
            call.early_packets += 1
            self.stats["rtp_early"] += 1
            return
        payload = pkt.payload
        src = (pkt.src, pkt.sport)
        if ch.source != src:
            if len(payload) < 12 or payload[0] >> 6 != 2 or 72 <= payload[1] & 0x7F <= 76:
                ch.garbage += 1
                self.stats["rtp_garbage"] += 1
                return
            if ch.source is not None and ts - ch.last_activity() < self.relatch_after:
                ch.foreign += 1
                self.stats["rtp_foreign"] += 1
                return
            self._unfast(ch)
            ch.source = src
        ch.queue(ts, payload)
        off = pkt.fast_offset
        if off >= 0:
            key = frame[off + 12 : off + 24]
            self._fast[key] = ch.pending.append
            ch.fast_keys.add(key)
            self._fast_off[lt] = off

    def _unfast(self, ch: Channel) -> None:
        mine = ch.pending.append
        for key in ch.fast_keys:
            if self._fast.get(key) == mine:
                del self._fast[key]
        ch.fast_keys.clear()

    def _tcp(self, ts: float, seg: Segment) -> None:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        state = self._tcp_sip.get(key)
        if state is None:
            payload = seg.payload
            if not payload or not (_looks_like_sip(payload) or _START_LINE.search(payload[:4096])):
                self.stats["other_tcp"] += 1
                return
            state = self._tcp_sip[key] = _TcpSip()
        for data, gap in self.tcp.segment(seg, ts):
            if gap:
                state.framer = StreamFramer()
                state.resync = True
                state.scan = b""
            self._tcp_data(ts, state, data, seg)
        if seg.flags & 0x05:  # FIN or RST: the connection is gone
            self._tcp_sip.pop(key, None)

    def _tcp_data(self, ts: float, state: _TcpSip, data: bytes, seg: Segment) -> None:
        if state.resync:
            data = state.scan + data
            match = _START_LINE.search(data)
            if match is None:
                state.scan = data[-256:]
                return
            start = match.start() + (1 if data[match.start() : match.start() + 1] == b"\n" else 0)
            data = data[start:]
            state.resync = False
            state.scan = b""
        try:
            frames = state.framer.feed_frames(data)
        except SipParseError:
            self.stats["sip_errors"] += 1
            state.framer = StreamFramer()
            state.resync = True
            return
        for raw in frames:
            try:
                msg = parse_message(raw)
            except SipParseError:
                self.stats["sip_errors"] += 1
                continue
            self._sip(ts, msg, seg.src, seg.sport, "TCP")

    # ------------------------------------------------------------------ SIP
    def _find(self, sip_call_id: str, tags: tuple[str | None, ...]) -> CallTrack | None:
        for call in reversed(self._calls.get(sip_call_id, ())):
            if call.caller_tag in tags:
                return call
        return None

    def _sip(self, ts: float, msg: Request | Response, src: str, sport: int, transport: str) -> None:
        self.stats["sip_messages"] += 1
        try:
            sip_call_id = msg.call_id
            from_tag = msg.from_.tag
            to_tag = msg.to.tag
            cseq, method = msg.cseq
        except SipParseError:
            self.stats["sip_errors"] += 1
            return
        if isinstance(msg, Request) and msg.method == "INVITE" and not to_tag:
            self._invite(ts, msg, from_tag or "", cseq, src, sport, transport)
            return
        call = self._find(sip_call_id, (from_tag, to_tag))
        if call is None or call.ended:
            return
        call.last_sip_ts = ts
        from_caller = from_tag == call.caller_tag
        if isinstance(msg, Request):
            side = CALLER if from_caller else CALLEE
            if msg.method in ("INVITE", "UPDATE", "ACK"):
                sdp = _sdp_of(msg)
                if sdp is not None:
                    self._apply_sdp(call, side, sdp)
            elif msg.method == "BYE":
                self._end(call, ts, "bye")
                return
            elif msg.method == "CANCEL" and call.answered_ts is None:
                call.cancel_ts = ts
        else:
            side = CALLEE if from_caller else CALLER  # the responder
            status = msg.status
            sdp = _sdp_of(msg) if 100 < status < 300 else None
            if method == "INVITE" and call.answered_ts is None and from_caller:
                if sdp is not None:
                    self._apply_sdp(call, side, sdp)
                if 200 <= status < 300:
                    call.callee_tag = to_tag
                    call.answered_ts = ts
                    call.cancel_ts = None
                    self._events.append(CallAnswered(call, {"type": "answered", "t": ts}))
                elif status in (401, 407):
                    call.challenged_ts = ts
                elif status >= 300:
                    reason = (
                        "cancel"
                        if status == 487 or call.cancel_ts is not None
                        else "busy"
                        if status
                        in (
                            486,
                            600,
                        )
                        else "rejected"
                    )
                    self._end(call, ts, reason, status)
                    return
            elif sdp is not None and 200 <= status < 300 and method in ("INVITE", "UPDATE"):
                self._apply_sdp(call, side, sdp)
        if call.changed and not call.ended:
            call.changed = False
            self._events.append(
                CallUpdated(
                    call,
                    {
                        "type": "update",
                        "t": ts,
                        "method": msg.method if isinstance(msg, Request) else f"{msg.status}",
                        "streams": call.streams(),
                        "hold": call.hold,
                    },
                )
            )

    def _invite(
        self, ts: float, msg: Request, from_tag: str, cseq: int, src: str, sport: int, transport: str
    ) -> None:
        call = self._find(msg.call_id, (from_tag,))
        if call is not None:
            # a retransmission, or the same INVITE again with credentials after 401/407
            if not call.ended and cseq > call.invite_cseq:
                call.invite_cseq = cseq
                call.challenged_ts = None
                call.last_sip_ts = ts
                sdp = _sdp_of(msg)
                if sdp is not None:
                    self._apply_sdp(call, CALLER, sdp)
                    call.changed = False
            return
        key = f"{msg.call_id}\n{from_tag}\n{round(ts * 1000)}"
        host = f"[{src}]" if ":" in src else src
        call = CallTrack(
            call_id=str(uuid.uuid5(CALL_NAMESPACE, key)),
            sip_call_id=msg.call_id,
            caller_tag=from_tag,
            invite_ts=ts,
            invite_cseq=cseq,
            transport=transport,
            remote=f"{host}:{sport}",
            last_sip_ts=ts,
        )
        call.channels = [Channel(call, CALLER), Channel(call, CALLEE)]
        pai = msg.headers.get("P-Asserted-Identity")
        caller_no, caller_name, caller_aor = _party(msg.headers.get("From"))
        if pai:
            pai_no, pai_name, _ = _party(pai)
            caller_no = pai_no or caller_no
            caller_name = pai_name or caller_name
        callee_no, callee_name, callee_aor = _party(msg.headers.get("To"))
        if not callee_no:
            try:
                callee_no = (msg.request_uri.user or "").split(";")[0]
            except SipParseError:
                callee_no = ""
        call.participants = [
            {
                "participant_id": "caller",
                "aor": caller_aor,
                "name": caller_name,
                "number": caller_no,
                "role": "caller",
            },
            {
                "participant_id": "callee",
                "aor": callee_aor,
                "name": callee_name,
                "number": callee_no,
                "role": "callee",
            },
        ]
        self._calls.setdefault(msg.call_id, []).append(call)
        self.active[call.call_id] = call
        self.stats["calls"] += 1
        sdp = _sdp_of(msg)
        if sdp is not None:
            self._apply_sdp(call, CALLER, sdp)
        call.changed = False
        from callvault.phone import normalize
        from callvault.siprec.session import guess_direction

        record = {
            "type": "invite",
            "t": ts,
            "call_id": call.call_id,
            "source": "capture",
            "sip_call_id": msg.call_id,
            "session_id": "",
            "from": msg.headers.get("From") or "",
            "to": msg.headers.get("To") or "",
            "remote": call.remote,
            "transport": transport,
            "direction": guess_direction(normalize(caller_no), normalize(callee_no)),
            "participants": call.participants,
            "streams": call.streams(),
            "extensions": {},
        }
        self._events.append(CallStarted(call, record))

    def _apply_sdp(self, call: CallTrack, side: int, sdp: SessionDescription) -> None:
        """``side`` sent this SDP: it says where ``side`` receives, i.e. the *other* party's voice."""
        call.sdp[side] = sdp
        audio = next(
            (i for i, m in enumerate(sdp.media) if m.media.lower() == "audio" and not m.disabled), None
        )
        image = next(
            (i for i, m in enumerate(sdp.media) if m.media.lower() == "image" and not m.disabled), None
        )
        ch = call.channels[CALLEE if side == CALLER else CALLER]
        direction = "sendrecv"
        if audio is not None:
            direction = sdp.effective_direction(audio)
            address = sdp.connection_address(audio) or ""
            port = sdp.media[audio].port
            # The receiver's numbering first; the sender's own SDP fills in what a sloppy answer leaves out.
            sender = call.sdp.get(CALLEE if side == CALLER else CALLER)
            types = {**_audio_types(sender), **_payload_types(sdp, audio)}
            codec = next((str(t[0]) for t in types.values() if str(t[0]).lower() not in NON_AUDIO), "")
            audio_types = [t for t in types.values() if str(t[0]).lower() not in NON_AUDIO]
            unsupported = bool(audio_types) and not any(
                is_supported(str(t[0]), int(t[1])) for t in audio_types
            )
            if address and address not in ("0.0.0.0", "::") and port:
                self._route(ch, (address, port))
            record = {
                "index": ch.index,
                "label": "",
                "stream_id": "",
                "role": ch.role,
                "participant_id": ch.role,
                "payload_types": types,
                "codec": codec,
                "local_port": port,
                "remote": address,
                "direction": direction,
                "unsupported": unsupported,
            }
            if address in ("0.0.0.0", "::"):
                direction = "inactive"
        elif image is not None:
            # T.38 fax (UDPTL, not RTP): keep the call, mark the stream unsupported
            record = {
                **(
                    ch.record
                    or {
                        "index": ch.index,
                        "label": "",
                        "stream_id": "",
                        "role": ch.role,
                        "participant_id": ch.role,
                        "payload_types": {},
                        "local_port": None,
                    }
                ),
                "codec": "T.38",
                "unsupported": True,
                "remote": sdp.connection_address(image) or "",
                "direction": sdp.effective_direction(image),
            }
            self._drop_routes(ch)
        else:
            return
        other = call.channels[side]  # the side's own voice: its types may use this SDP's numbering
        if other.record and audio is not None:
            merged = {**_payload_types(sdp, audio), **other.record.get("payload_types", {})}
            if merged != other.record.get("payload_types"):
                other.record = {**other.record, "payload_types": merged}
                call.changed = True
        call.directions[side] = direction
        hold = any(d in HOLD_DIRECTIONS for d in call.directions.values())
        if record != ch.record or hold != call.hold:
            call.changed = True
        ch.record = record
        call.hold = hold

    def _route(self, ch: Channel, address: tuple[str, int]) -> None:
        self._after_end.pop(address, None)
        owner = self._media.get(address)
        if owner is ch:
            return
        if owner is not None:
            # the address belongs to a newer call now (ports are reused)
            owner.endpoints.discard(address)
            self._unfast(owner)
        self._media[address] = ch
        ch.endpoints.add(address)

    def _drop_routes(self, ch: Channel) -> None:
        for address in ch.endpoints:
            if self._media.get(address) is ch:
                del self._media[address]
        ch.endpoints.clear()
        self._unfast(ch)

    def _end(self, call: CallTrack, ts: float, reason: str, status: int | None = None) -> None:
        if call.ended:
            return
        call.ended_ts = max(ts, call.invite_ts)
        call.end_reason = reason
        call.end_status = status
        for ch in call.channels:
            for address in ch.endpoints:
                self._after_end[address] = call.call_id
            self._drop_routes(ch)
        while len(self._after_end) > 10000:
            del self._after_end[next(iter(self._after_end))]
        self.active.pop(call.call_id, None)
        self._ended.append(call)
        record: dict[str, Any] = {"type": "ended", "t": call.ended_ts, "reason": reason}
        if status is not None:
            record["sip_status"] = status
        self._events.append(CallEnded(call, record))


def capture_loss(lost: int, drops: int) -> int:
    """How many of a stream's ``lost`` packets the capture (not the network) missed.

    The rule (README, "Passive capture"): a sequence gap is capture loss only when the capture
    itself reported dropping packets while the call was alive (libpcap's kernel/interface
    counters when sniffing, pcapng Interface Statistics Blocks in a file), and at most as many
    as it reported; every other gap is network loss.  A classic pcap file carries no drop
    counters, so all of its gaps count as network loss.
    """
    return max(0, min(lost, drops))
