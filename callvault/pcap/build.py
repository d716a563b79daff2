"""Build frames and capture files (tests, benchmarks, and reproducing a customer's capture).

Checksums are left zero (capture files from checksum-offloading NICs look the same).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from callvault.pcap.net import LINKTYPE_ETHERNET

_ETH_SRC = bytes.fromhex("020000000001")
_ETH_DST = bytes.fromhex("020000000002")


def _addr(ip: str) -> tuple[int, bytes]:
    if ":" in ip:
        return 6, socket.inet_pton(socket.AF_INET6, ip)
    return 4, socket.inet_pton(socket.AF_INET, ip)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, seq: int, payload: bytes = b"", *, flags: int = 0x18, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq % (1 << 32), ack, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4(
    src: str, dst: str, proto: int, payload: bytes, *, ident: int = 1, frag: int = 0, options: bytes = b""
) -> bytes:
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        total,
        ident,
        frag,
        64,
        proto,
        0,
        socket.inet_pton(socket.AF_INET, src),
        socket.inet_pton(socket.AF_INET, dst),
    )
    return head + options + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, *, ext: bytes = b"") -> bytes:
    body = ext + payload
    return (
        struct.pack("!IHBB", 6 << 28, len(body), next_header, 64)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + body
    )


def ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return ipv6(src, dst, proto, payload) if ":" in src else ipv4(src, dst, proto, payload)


def ethernet(packet: bytes, *, vlans: Iterable[int] = (), qinq: bool = False) -> bytes:
    version = packet[0] >> 4
    ethertype = 0x86DD if version == 6 else 0x0800
    tags = b""
    for n, vid in enumerate(vlans):
        tpid = 0x88A8 if qinq and n == 0 else 0x8100
        tags += struct.pack("!HH", tpid, vid)
    return _ETH_DST + _ETH_SRC + tags + struct.pack("!H", ethertype) + packet


def sll(packet: bytes) -> bytes:
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, ethertype) + packet


def sll2(packet: bytes) -> bytes:
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHIHBB8s", ethertype, 0, 1, 772, 0, 6, b"\0" * 8) + packet


def null_loopback(packet: bytes) -> bytes:
    family = 30 if packet[0] >> 4 == 6 else 2
    return struct.pack("<I", family) + packet


def udp_frame(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    return ethernet(ip(src, dst, 17, udp(sport, dport, payload)))


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, *, pt: int = 8, marker: bool = False) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        + payload
    )


def pcap_bytes(
    records: Iterable[tuple[float, bytes]],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    nanos: bool = False,
    big: bool = False,
) -> bytes:
    """A classic pcap file."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    scale = 1_000_000_000 if nanos else 1_000_000
    for ts, frame in records:
        sec = int(ts)
        frac = round((ts - sec) * scale)
        if frac >= scale:
            sec, frac = sec + 1, frac - scale
        out.append(struct.pack(e + "IIII", sec, frac, len(frame), len(frame)) + frame)
    return b"".join(out)


class PcapngWriter:
    """A pcapng file: one section, interfaces added as needed, EPBs, optional statistics."""

    def __init__(self, *, big: bool = False) -> None:
        self.e = ">" if big else "<"
        self.parts: list[bytes] = [
            self._block(0x0A0D0D0A, struct.pack(self.e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        ]
        self.ifaces: list[int] = []  # tsresol exponent (10^-n) per interface

    def _block(self, btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack(self.e + "II", btype, n) + body + struct.pack(self.e + "I", n)

    def interface(self, linktype: int = LINKTYPE_ETHERNET, *, tsresol: int = 6) -> int:
        opts = b""
        if tsresol != 6:
            opts = (
                struct.pack(self.e + "HH", 9, 1)
                + bytes([tsresol])
                + b"\0\0\0"
                + struct.pack(self.e + "HH", 0, 0)
            )
        self.parts.append(self._block(1, struct.pack(self.e + "HHI", linktype, 0, 262144) + opts))
        self.ifaces.append(tsresol)
        return len(self.ifaces) - 1

    def _ts(self, iface: int, ts: float) -> tuple[int, int]:
        units = round(ts * 10 ** self.ifaces[iface])
        return units >> 32, units & 0xFFFFFFFF

    def packet(self, ts: float, frame: bytes, iface: int = 0) -> None:
        hi, lo = self._ts(iface, ts)
        body = struct.pack(self.e + "IIIII", iface, hi, lo, len(frame), len(frame)) + frame
        self.parts.append(self._block(6, body))

    def simple_packet(self, frame: bytes) -> None:
        self.parts.append(self._block(3, struct.pack(self.e + "I", len(frame)) + frame))

    def statistics(self, ts: float, *, ifdrop: int = 0, osdrop: int = 0, iface: int = 0) -> None:
        hi, lo = self._ts(iface, ts)
        opts = struct.pack(self.e + "HHQ", 4, 8, ifdrop) + struct.pack(self.e + "HHQ", 7, 8, osdrop)
        opts += struct.pack(self.e + "HH", 0, 0)
        self.parts.append(self._block(5, struct.pack(self.e + "III", iface, hi, lo) + opts))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)
