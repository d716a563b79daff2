"""Link types, VLANs, IPv4/IPv6 (extension headers), fragment and TCP reassembly."""

from __future__ import annotations

import struct

import pytest

from callvault.pcap.build import ethernet, ipv4, ipv6, null_loopback, sll, sll2, tcp, udp
from callvault.pcap.net import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Datagram,
    Defragmenter,
    NetDecoder,
    Segment,
    TcpReassembler,
)

PAYLOAD = b"\x80\x08" + b"x" * 170
V4 = ipv4("192.0.2.1", "192.0.2.2", 17, udp(4000, 5000, PAYLOAD))
V6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(4000, 5000, PAYLOAD))


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (LINKTYPE_ETHERNET, ethernet(V4)),
        (LINKTYPE_ETHERNET, ethernet(V4, vlans=[100])),
        (LINKTYPE_ETHERNET, ethernet(V4, vlans=[10, 200], qinq=True)),
        (LINKTYPE_LINUX_SLL, sll(V4)),
        (LINKTYPE_LINUX_SLL2, sll2(V4)),
        (LINKTYPE_RAW, V4),
        (LINKTYPE_NULL, null_loopback(V4)),
        (LINKTYPE_ETHERNET, ethernet(V6)),
        (LINKTYPE_ETHERNET, ethernet(V6, vlans=[5])),
        (LINKTYPE_LINUX_SLL2, sll2(V6)),
        (LINKTYPE_NULL, null_loopback(V6)),
    ],
)
def test_it_finds_the_udp_datagram_in_every_link_type(linktype: int, frame: bytes) -> None:
    got = NetDecoder().decode(1.0, linktype, frame)
    assert isinstance(got, Datagram)
    assert (got.sport, got.dport, got.payload) == (4000, 5000, PAYLOAD)
    assert got.src in ("192.0.2.1", "2001:db8::1")


def test_the_fast_offset_is_only_given_for_plain_ipv4() -> None:
    dec = NetDecoder()
    assert dec.decode(1.0, LINKTYPE_ETHERNET, ethernet(V4)).fast_offset == 14  # type: ignore[union-attr]
    assert dec.decode(1.0, LINKTYPE_ETHERNET, ethernet(V4, vlans=[7])).fast_offset == 18  # type: ignore[union-attr]
    with_options = ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2, b"abc"), options=b"\x01\x01\x01\x00")
    got = dec.decode(1.0, LINKTYPE_ETHERNET, ethernet(with_options))
    assert isinstance(got, Datagram) and got.payload == b"abc" and got.fast_offset == -1


def test_ethernet_padding_is_trimmed_by_the_ip_length() -> None:
    small = ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2, b"hi"))
    got = NetDecoder().decode(1.0, LINKTYPE_ETHERNET, ethernet(small) + b"\0" * 20)
    assert isinstance(got, Datagram) and got.payload == b"hi"


def test_ipv6_extension_headers_are_skipped() -> None:
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"  # next: destination options
    dst = bytes([17, 0]) + b"\x01\x04\0\0\0\0"  # next: UDP
    frame = ethernet(ipv6("2001:db8::1", "2001:db8::2", 0, udp(1, 2, b"payload"), ext=hop + dst))
    got = NetDecoder().decode(1.0, LINKTYPE_ETHERNET, frame)
    assert isinstance(got, Datagram) and got.payload == b"payload"


def test_ipv6_fragments_are_reassembled() -> None:
    datagram = udp(5060, 5060, b"INVITE " + b"y" * 3000)
    parts = [datagram[:1448], datagram[1448:2896], datagram[2896:]]
    dec = NetDecoder()
    out = []
    offset = 0
    for n, part in enumerate(parts):
        more = n < len(parts) - 1
        frag = bytes([17, 0]) + struct.pack("!HI", offset | int(more), 0xABCD)
        out.append(
            dec.decode(
                1.0 + n, LINKTYPE_ETHERNET, ethernet(ipv6("2001:db8::1", "2001:db8::2", 44, part, ext=frag))
            )
        )
        offset += len(part)
    assert out[:2] == [None, None]
    assert isinstance(out[2], Datagram) and out[2].payload == datagram[8:]


def test_ipv4_fragments_arriving_out_of_order_are_reassembled() -> None:
    datagram = udp(5060, 5060, b"z" * 4000)
    chunks = [(i, datagram[i : i + 1480]) for i in range(0, len(datagram), 1480)]
    dec = NetDecoder()
    results = []
    for offset, chunk in reversed(chunks):
        more = offset + len(chunk) < len(datagram)
        frame = ethernet(
            ipv4("192.0.2.1", "192.0.2.2", 17, chunk, ident=9, frag=(offset // 8) | (0x2000 if more else 0))
        )
        results.append(dec.decode(1.0, LINKTYPE_ETHERNET, frame))
    assert isinstance(results[-1], Datagram) and results[-1].payload == datagram[8:]
    assert len(dec.defrag) == 0


def test_incomplete_fragments_expire_in_packet_time_and_memory_is_bounded() -> None:
    d = Defragmenter(timeout=30.0, max_datagrams=3)
    for ident in range(5):
        assert d.add((4, "a", "b", 17, ident), 0, True, b"x" * 8, ts=float(ident)) is None
    assert len(d) == 3 and d.dropped == 2
    d.add((4, "a", "b", 17, 99), 0, True, b"x" * 8, ts=100.0)
    assert len(d) == 1 and d.dropped == 5


def test_a_fragment_beyond_64k_is_dropped() -> None:
    d = Defragmenter()
    assert d.add((4, "a", "b", 17, 1), 65528, False, b"x" * 100, ts=1.0) is None
    assert d.dropped == 1


@pytest.mark.parametrize("frame", [b"", b"\x00" * 10, ethernet(b"\x45\x00"), ethernet(b"\x60" + b"\0" * 10)])
def test_malformed_frames_are_counted_never_raised(frame: bytes) -> None:
    dec = NetDecoder()
    assert dec.decode(1.0, LINKTYPE_ETHERNET, frame) is None
    assert dec.malformed + dec.not_ip == 1


def test_unknown_link_types_are_counted() -> None:
    dec = NetDecoder()
    assert dec.decode(1.0, 147, b"whatever") is None and dec.unknown_linktype == 1


def seg(seq: int, data: bytes, flags: int = 0x18) -> Segment:
    got = NetDecoder().decode(
        1.0, LINKTYPE_ETHERNET, ethernet(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, seq, data, flags=flags)))
    )
    assert isinstance(got, Segment)
    return got


def test_tcp_reassembly_orders_segments_and_drops_retransmissions() -> None:
    r = TcpReassembler()
    out = []
    out += r.segment(seg(99, b"", 0x02), 1.0)
    out += r.segment(seg(105, b"world"), 1.0)
    out += r.segment(seg(100, b"hello"), 1.1)
    out += r.segment(seg(100, b"hello"), 1.2)  # retransmitted
    out += r.segment(seg(108, b"ld!!"), 1.3)  # overlaps what was delivered
    assert b"".join(d for d, _ in out) == b"helloworld!!"
    assert r.retransmitted == 1


def test_tcp_sequence_numbers_wrap() -> None:
    r = TcpReassembler()
    start = (1 << 32) - 3
    out = r.segment(seg(start, b"abc"), 1.0) + r.segment(seg(0, b"def"), 1.1)
    assert b"".join(d for d, _ in out) == b"abcdef"


def test_a_hole_the_capture_never_fills_is_skipped_and_reported() -> None:
    r = TcpReassembler(gap_timeout=2.0)
    out = r.segment(seg(100, b"first"), 1.0)
    out += r.segment(seg(200, b"after the hole"), 1.5)
    assert [d for d, _ in out] == [b"first"]
    out = r.segment(seg(214, b"!"), 4.0)
    assert out == [(b"after the hole", True), (b"!", False)]
    assert r.gaps == 1 and r.gap_bytes == 95
