"""Link, network and transport layers of captured frames (sans-I/O).

:class:`NetDecoder` turns ``(timestamp, link type, frame)`` into :class:`Datagram` (UDP)
or :class:`Segment` (TCP) values:

* link types Ethernet (with any number of 802.1Q / 802.1ad QinQ tags), Linux cooked
  capture v1 (SLL) and v2 (SLL2), raw IP, BSD loopback (NULL, LOOP);
* IPv4 (options, trailing Ethernet padding trimmed by the total length) and IPv6 with
  its extension headers (hop-by-hop, routing, destination options, fragment, AH);
* IPv4 and IPv6 fragments are reassembled by :class:`Defragmenter` with bounded memory
  (at most ``max_datagrams`` in progress, each at most 64 KiB) and a timeout measured in
  *packet* time, so a file is read exactly as a live capture would have been.

:class:`TcpReassembler` puts one direction of a TCP connection back in order: out-of-order
segments wait (bounded), retransmissions and overlaps are delivered once, and a hole the
capture never fills is skipped after ``gap_timeout`` seconds (the caller is told, so it can
resynchronise its framing).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "Datagram",
    "Defragmenter",
    "NetDecoder",
    "Segment",
    "TcpReassembler",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
DLT_RAW_BSD = (12, 14)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100)
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV6_HOP = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_NONE = 59
IPV6_DSTOPTS = 60
IPV6_MOBILITY = 135
# BSD loopback address families (host byte order): AF_INET, and AF_INET6 on the BSDs / macOS
NULL_AF_INET = 2
NULL_AF_INET6 = (10, 24, 28, 30)

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04

# The link-layer header length when it is fixed, for the capture fast path.
FIXED_L2 = {
    LINKTYPE_ETHERNET: 14,
    LINKTYPE_LINUX_SLL: 16,
    LINKTYPE_LINUX_SLL2: 20,
    LINKTYPE_RAW: 0,
    LINKTYPE_IPV4: 0,
    LINKTYPE_NULL: 4,
    LINKTYPE_LOOP: 4,
    12: 0,
    14: 0,
}

_u16 = struct.Struct("!H").unpack_from
_udp = struct.Struct("!HHH").unpack_from
_tcp = struct.Struct("!HHIIBB").unpack_from


@dataclass(frozen=True, slots=True)
class Datagram:
    """A UDP datagram (reassembled if it came in fragments).

    ``fast_offset`` is where a plain IPv4 header (no options, not a fragment) starts in
    the frame, else -1: the capture uses it to recognise the same flow later from raw bytes.
    """

    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    fast_offset: int = -1


@dataclass(frozen=True, slots=True)
class Segment:
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int
    payload: bytes


@dataclass
class _Pending:
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    size: int = 0


class Defragmenter:
    """IPv4/IPv6 fragment reassembly with bounded memory; time is packet time."""

    MAX_DATAGRAM = 65535

    def __init__(self, *, timeout: float = 30.0, max_datagrams: int = 1024) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self._pending: dict[tuple[object, ...], _Pending] = {}
        self.reassembled = 0
        self.dropped = 0  # datagrams given up (timeout, memory bound, inconsistent fragments)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: tuple[object, ...], offset: int, more: bool, data: bytes, ts: float) -> bytes | None:
        """Add one fragment; return the whole payload once every byte of it is there."""
        self._expire(ts)
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_datagrams:
                oldest = next(iter(self._pending))
                del self._pending[oldest]
                self.dropped += 1
            entry = self._pending[key] = _Pending(ts)
        end = offset + len(data)
        if end > self.MAX_DATAGRAM or (entry.total is not None and end > entry.total):
            del self._pending[key]
            self.dropped += 1
            return None
        if not more:
            entry.total = end
        if offset not in entry.parts:
            entry.parts[offset] = data
            entry.size += len(data)
        if entry.total is None or entry.size < entry.total:
            return None
        out = bytearray(entry.total)
        covered = 0
        for start in sorted(entry.parts):
            piece = entry.parts[start]
            if start > covered:
                return None  # a hole (overlapping retransmitted pieces inflated size): keep waiting
            out[start : start + len(piece)] = piece
            covered = max(covered, start + len(piece))
        del self._pending[key]
        if covered < entry.total:
            self.dropped += 1
            return None
        self.reassembled += 1
        return bytes(out[: entry.total])

    def _expire(self, ts: float) -> None:
        limit = ts - self.timeout
        while self._pending:
            key = next(iter(self._pending))
            if self._pending[key].first_seen >= limit:
                break
            del self._pending[key]
            self.dropped += 1


class NetDecoder:
    """Frames to UDP datagrams and TCP segments; see the module docstring."""

    def __init__(self, defrag: Defragmenter | None = None) -> None:
        self.defrag = defrag or Defragmenter()
        self.not_ip = 0
        self.unknown_linktype = 0
        self.malformed = 0
        self.other_protocol = 0

    def decode(self, ts: float, linktype: int, frame: bytes) -> Datagram | Segment | None:
        try:
            return self._decode(ts, linktype, frame)
        except (struct.error, IndexError, ValueError, OSError):
            self.malformed += 1
            return None

    def _decode(self, ts: float, linktype: int, frame: bytes) -> Datagram | Segment | None:
        if linktype == LINKTYPE_ETHERNET:
            ethertype = _u16(frame, 12)[0]
            off = 14
            while ethertype in ETH_VLAN:
                ethertype = _u16(frame, off + 2)[0]
                off += 4
        elif linktype == LINKTYPE_LINUX_SLL:
            ethertype, off = _u16(frame, 14)[0], 16
        elif linktype == LINKTYPE_LINUX_SLL2:
            ethertype, off = _u16(frame, 0)[0], 20
        elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *DLT_RAW_BSD):
            off = 0
            ethertype = ETH_IPV6 if frame[0] >> 4 == 6 else ETH_IPV4
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            fam = frame[0:4]
            family = int.from_bytes(fam, "big") if linktype == LINKTYPE_LOOP else max(fam[0], fam[3])
            off = 4
            ethertype = ETH_IPV4 if family == NULL_AF_INET else ETH_IPV6 if family in NULL_AF_INET6 else 0
        else:
            self.unknown_linktype += 1
            return None
        if ethertype == ETH_IPV4:
            return self._ipv4(ts, frame, off)
        if ethertype == ETH_IPV6:
            return self._ipv6(ts, frame, off)
        self.not_ip += 1
        return None

    def _ipv4(self, ts: float, frame: bytes, off: int) -> Datagram | Segment | None:
        first = frame[off]
        if first >> 4 != 4:
            self.malformed += 1
            return None
        ihl = (first & 0x0F) * 4
        total = _u16(frame, off + 2)[0]
        if ihl < 20 or total < ihl or off + total > len(frame):
            self.malformed += 1
            return None
        frag = _u16(frame, off + 6)[0]
        proto = frame[off + 9]
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16 : off + 20])
        payload = frame[off + ihl : off + total]
        fast = off if ihl == 20 and not frag & 0x3FFF else -1
        if frag & 0x3FFF:  # MF set or offset non-zero
            ident = _u16(frame, off + 4)[0]
            whole = self.defrag.add(
                (4, src, dst, proto, ident), (frag & 0x1FFF) * 8, bool(frag & 0x2000), payload, ts
            )
            if whole is None:
                return None
            payload = whole
        return self._transport(proto, src, dst, payload, fast)

    def _ipv6(self, ts: float, frame: bytes, off: int) -> Datagram | Segment | None:
        if frame[off] >> 4 != 6:
            self.malformed += 1
            return None
        plen = _u16(frame, off + 4)[0]
        nh = frame[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24 : off + 40])
        end = off + 40 + plen
        if end > len(frame):
            self.malformed += 1
            return None
        pos = off + 40
        fragment: tuple[int, bool, int] | None = None
        while True:
            if nh in (IPV6_HOP, IPV6_ROUTING, IPV6_DSTOPTS, IPV6_MOBILITY):
                length = (frame[pos + 1] + 1) * 8
                nh = frame[pos]
                pos += length
            elif nh == IPV6_AH:
                length = (frame[pos + 1] + 2) * 4
                nh = frame[pos]
                pos += length
            elif nh == IPV6_FRAGMENT:
                value = _u16(frame, pos + 2)[0]
                ident = int.from_bytes(frame[pos + 4 : pos + 8], "big")
                fragment = (value & 0xFFF8, bool(value & 1), ident)
                nh = frame[pos]
                pos += 8
            else:
                break
            if pos > end:
                self.malformed += 1
                return None
        payload = frame[pos:end]
        if fragment is not None:
            offset, more, ident = fragment
            if offset or more:
                whole = self.defrag.add((6, src, dst, ident), offset, more, payload, ts)
                if whole is None:
                    return None
                payload = whole
        return self._transport(nh, src, dst, payload, -1)

    def _transport(
        self, proto: int, src: str, dst: str, payload: bytes, fast: int
    ) -> Datagram | Segment | None:
        if proto == IPPROTO_UDP:
            sport, dport, length = _udp(payload, 0)
            if length < 8 or length > len(payload):
                length = len(payload)  # checksum offload / zero length (jumbograms): take what is there
            return Datagram(src, sport, dst, dport, payload[8:length], fast)
        if proto == IPPROTO_TCP:
            sport, dport, seq, _ack, offres, flags = _tcp(payload, 0)
            hlen = (offres >> 4) * 4
            if hlen < 20:
                self.malformed += 1
                return None
            return Segment(src, sport, dst, dport, seq, flags, payload[hlen:])
        self.other_protocol += 1
        return None


_SEQ_MOD = 1 << 32
_SEQ_HALF = 1 << 31


def _seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space (RFC 1982 style)."""
    return ((a - b + _SEQ_HALF) % _SEQ_MOD) - _SEQ_HALF


@dataclass
class _Flow:
    next_seq: int | None
    last_seen: float
    waiting: dict[int, bytes] = field(default_factory=dict)
    waiting_bytes: int = 0
    gap_since: float | None = None


class TcpReassembler:
    """In-order bytes of TCP flows (one direction each); see the module docstring."""

    def __init__(
        self, *, max_flows: int = 4096, max_waiting: int = 1 << 20, gap_timeout: float = 2.0
    ) -> None:
        self.max_flows = max_flows
        self.max_waiting = max_waiting
        self.gap_timeout = gap_timeout
        self._flows: dict[tuple[str, int, str, int], _Flow] = {}
        self.retransmitted = 0
        self.gaps = 0  # holes skipped: bytes the capture missed
        self.gap_bytes = 0

    def __len__(self) -> int:
        return len(self._flows)

    def segment(self, seg: Segment, ts: float) -> list[tuple[bytes, bool]]:
        """Feed one segment; return in-order chunks as ``(data, after_gap)``."""
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        flow = self._flows.get(key)
        if flow is None:
            if seg.flags & TCP_RST:
                return []
            if len(self._flows) >= self.max_flows:
                oldest = min(self._flows, key=lambda k: self._flows[k].last_seen)
                del self._flows[oldest]
            start = (seg.seq + 1) % _SEQ_MOD if seg.flags & TCP_SYN else (seg.seq if seg.payload else None)
            flow = self._flows[key] = _Flow(start, ts)
        flow.last_seen = ts
        out: list[tuple[bytes, bool]] = []
        if seg.flags & TCP_SYN:
            flow.next_seq = (seg.seq + 1) % _SEQ_MOD
        elif seg.payload:
            if flow.next_seq is None:
                flow.next_seq = seg.seq
            self._accept(flow, seg.seq, seg.payload, out)
            self._skip_gap_if_stuck(flow, ts, out)
        if seg.flags & (TCP_FIN | TCP_RST):
            if flow.waiting:
                self._skip_gap_if_stuck(flow, ts, out, force=True)
            del self._flows[key]
        return out

    def _accept(self, flow: _Flow, seq: int, data: bytes, out: list[tuple[bytes, bool]]) -> None:
        assert flow.next_seq is not None
        diff = _seq_diff(seq, flow.next_seq)
        if diff < 0:
            if -diff >= len(data):
                self.retransmitted += 1
                return
            data = data[-diff:]
            seq = flow.next_seq
            diff = 0
        if diff > 0:
            if seq not in flow.waiting or len(flow.waiting[seq]) < len(data):
                flow.waiting_bytes += len(data) - len(flow.waiting.get(seq, b""))
                flow.waiting[seq] = data
            return
        out.append((data, False))
        flow.next_seq = (seq + len(data)) % _SEQ_MOD
        self._drain(flow, out)

    def _drain(self, flow: _Flow, out: list[tuple[bytes, bool]], gap: bool = False) -> None:
        assert flow.next_seq is not None
        progressed = True
        while progressed and flow.waiting:
            progressed = False
            for seq in list(flow.waiting):
                diff = _seq_diff(seq, flow.next_seq)
                if diff > 0:
                    continue
                data = flow.waiting.pop(seq)
                flow.waiting_bytes -= len(data)
                if -diff < len(data):
                    out.append((data[-diff:] if diff else data, gap))
                    gap = False
                    flow.next_seq = (seq + len(data)) % _SEQ_MOD
                else:
                    self.retransmitted += 1
                progressed = True
        flow.gap_since = None if not flow.waiting else flow.gap_since

    def _skip_gap_if_stuck(
        self, flow: _Flow, ts: float, out: list[tuple[bytes, bool]], force: bool = False
    ) -> None:
        if not flow.waiting:
            flow.gap_since = None
            return
        if flow.gap_since is None:
            flow.gap_since = ts
        if force or flow.waiting_bytes > self.max_waiting or ts - flow.gap_since >= self.gap_timeout:
            assert flow.next_seq is not None
            nxt = flow.next_seq
            first = min(flow.waiting, key=lambda s: _seq_diff(s, nxt))
            self.gaps += 1
            self.gap_bytes += _seq_diff(first, nxt)
            flow.next_seq = first
            flow.gap_since = None
            self._drain(flow, out, gap=True)
            if flow.waiting:
                flow.gap_since = ts
