"""Real-shaped SIP dialogs and RTP as captured frames, for the passive-capture tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from callvault.pcap.build import ethernet, ip, rtp, tcp, udp
from callvault.pcap.follower import CallAnswered, CallEnded, CallStarted, CallUpdated, PassiveCapture

Addr = tuple[str, int]


def sdp(
    ip_addr: str, port: int, *, codecs: str = "8 101", direction: str = "sendrecv", media: str = "audio"
) -> str:
    kind = "IP6" if ":" in ip_addr else "IP4"
    lines = ["v=0", f"o=- 1 1 IN {kind} {ip_addr}", "s=-", f"c=IN {kind} {ip_addr}", "t=0 0"]
    if media == "image":
        lines += [f"m=image {port} udptl t38", "a=T38FaxVersion:0"]
    else:
        lines.append(f"m=audio {port} RTP/AVP {codecs}")
        names = {
            "0": "PCMU/8000",
            "8": "PCMA/8000",
            "18": "G729/8000",
            "101": "telephone-event/8000",
            "9": "G722/8000",
        }
        lines += [f"a=rtpmap:{pt} {names[pt]}" for pt in codecs.split() if pt in names]
        lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def message(start: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    raw = body.encode()
    hdrs = [*headers]
    if body:
        hdrs.append(("Content-Type", "application/sdp"))
    hdrs.append(("Content-Length", str(len(raw))))
    return (start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n").encode() + raw


@dataclass
class Dialog:
    """One call between a caller (a) and a callee (b), as their SIP messages."""

    call_id: str = "8c1f4d2a@pbx.example.jp"
    a: Addr = ("192.0.2.10", 5060)
    b: Addr = ("192.0.2.20", 5060)
    caller: str = '"山田 太郎" <sip:0312345678@pbx.example.jp>'
    callee: str = "<sip:201@pbx.example.jp>"
    from_tag: str = "a1"
    to_tag: str = "b2"
    transport: str = "UDP"
    pai: str | None = None
    cseq: dict[str, int] = field(default_factory=lambda: {"a": 1, "b": 100})

    def _common(
        self, method: str, cseq: int, *, from_a: bool = True, to_tag: bool = True
    ) -> list[tuple[str, str]]:
        src = self.a if from_a else self.b
        frm = f"{self.caller};tag={self.from_tag}" if from_a else f"{self.callee};tag={self.to_tag}"
        to = self.callee if from_a else f"{self.caller};tag={self.from_tag}"
        if from_a and to_tag:
            to = f"{self.callee};tag={self.to_tag}"
        return [
            ("Via", f"SIP/2.0/{self.transport} {host(src[0])}:{src[1]};branch=z9hG4bK{method}{cseq}"),
            ("From", frm),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
        ]

    def invite(self, body: str = "", *, cseq: int = 1) -> bytes:
        headers = self._common("INVITE", cseq, to_tag=False)
        headers.append(("Contact", f"<sip:0312345678@{host(self.a[0])}:{self.a[1]}>"))
        if self.pai:
            headers.append(("P-Asserted-Identity", self.pai))
        return message("INVITE sip:201@pbx.example.jp SIP/2.0", headers, body)

    def response(
        self,
        status: int,
        body: str = "",
        *,
        method: str = "INVITE",
        cseq: int = 1,
        from_a: bool = True,
        to_tag: bool = True,
    ) -> bytes:
        """A response to a request of ``a`` (from_a) or ``b``."""
        reason = {
            100: "Trying",
            180: "Ringing",
            183: "Session Progress",
            200: "OK",
            407: "Proxy Authentication Required",
            486: "Busy Here",
            487: "Request Terminated",
        }.get(status, "X")
        headers = self._common(method, cseq, from_a=from_a, to_tag=to_tag and status != 100)
        return message(f"SIP/2.0 {status} {reason}", headers, body)

    def request(self, method: str, body: str = "", *, from_a: bool = True, cseq: int | None = None) -> bytes:
        side = "a" if from_a else "b"
        if cseq is None:
            self.cseq[side] += 1
            cseq = self.cseq[side]
        headers = self._common(method, cseq, from_a=from_a)
        uri = "sip:201@pbx.example.jp" if from_a else "sip:0312345678@pbx.example.jp"
        return message(f"{method} {uri} SIP/2.0", headers, body)


class Traffic:
    """Timestamped Ethernet frames."""

    def __init__(self) -> None:
        self.records: list[tuple[float, int, bytes]] = []

    def add(self, ts: float, frame: bytes) -> None:
        self.records.append((ts, 1, frame))

    def udp(self, ts: float, src: Addr, dst: Addr, payload: bytes) -> None:
        self.add(ts, ethernet(ip(src[0], dst[0], 17, udp(src[1], dst[1], payload))))

    def sip(self, ts: float, src: Addr, dst: Addr, data: bytes) -> None:
        self.udp(ts, src, dst, data)

    def rtp(
        self,
        start: float,
        src: Addr,
        dst: Addr,
        count: int,
        *,
        ssrc: int = 0x1234,
        seq: int = 1000,
        rtp_ts: int = 0,
        pt: int = 8,
        fill: int = 0x55,
        skip: frozenset[int] = frozenset(),
    ) -> None:
        for i in range(count):
            if i in skip:
                continue
            self.udp(
                start + i * 0.02, src, dst, rtp(seq + i, rtp_ts + 160 * i, ssrc, bytes([fill]) * 160, pt=pt)
            )

    def tcp(self, ts: float, src: Addr, dst: Addr, seq: int, data: bytes, flags: int = 0x18) -> None:
        self.add(ts, ethernet(ip(src[0], dst[0], 6, tcp(src[1], dst[1], seq, data, flags=flags))))

    def sorted(self) -> list[tuple[float, int, bytes]]:
        return sorted(self.records, key=lambda r: r[0])


@dataclass
class Followed:
    core: PassiveCapture
    events: list[object]
    packets: dict[str, list[list[tuple[float, bytes]]]]

    def calls(self) -> list[CallStarted]:
        return [e for e in self.events if isinstance(e, CallStarted)]

    def of(self, kind: type, n: int | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def ended(self) -> list[CallEnded]:
        return [e for e in self.events if isinstance(e, CallEnded)]

    def updates(self) -> list[CallUpdated]:
        return [e for e in self.events if isinstance(e, CallUpdated)]

    def answered(self) -> list[CallAnswered]:
        return [e for e in self.events if isinstance(e, CallAnswered)]


def follow(records: list[tuple[float, int, bytes]], *, finish: bool = True, **options: object) -> Followed:
    core = PassiveCapture(**options)  # type: ignore[arg-type]
    events: list[object] = []
    packets: dict[str, list[list[tuple[float, bytes]]]] = {}
    calls = []
    core.process(records)
    if finish:
        core.finish()
    while (ev := core.next_event()) is not None:
        events.append(ev)
        if isinstance(ev, CallStarted):
            calls.append(ev.call)
    for call in calls:
        packets[call.call_id] = [ch.take() for ch in call.channels]
    return Followed(core, events, packets)
