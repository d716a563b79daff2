"""pcap and pcapng files: byte orders, resolutions, interfaces, statistics, damage."""

from __future__ import annotations

import struct

import pytest

from callvault.pcap.build import PcapngWriter, pcap_bytes, udp_frame
from callvault.pcap.net import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW
from callvault.pcap.reader import PcapError, PcapReader, PcapTruncated

FRAMES = [udp_frame("192.0.2.1", 5060, "192.0.2.2", 5060, bytes([i]) * (20 + i)) for i in range(5)]
TIMES = [1795000000.123456, 1795000000.5, 1795000001.000001, 1795000002.25, 1795000003.75]


def read_all(data: bytes, chunk: int | None = None) -> tuple[PcapReader, list[tuple[float, int, bytes]]]:
    reader = PcapReader()
    out: list[tuple[float, int, bytes]] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])
        out.extend(reader.records())
    reader.close()
    return reader, out


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nanos", [False, True])
def test_it_reads_classic_pcap_in_both_byte_orders_and_resolutions(big: bool, nanos: bool) -> None:
    data = pcap_bytes(zip(TIMES, FRAMES, strict=True), nanos=nanos, big=big)
    reader, records = read_all(data)
    assert [r[2] for r in records] == FRAMES
    assert all(r[1] == LINKTYPE_ETHERNET for r in records)
    assert [round(r[0], 6) for r in records] == TIMES
    assert reader.kind == "pcap" and reader.packets == 5


def test_it_reads_a_file_fed_one_byte_at_a_time() -> None:
    data = pcap_bytes(zip(TIMES, FRAMES, strict=True))
    _, records = read_all(data, chunk=1)
    assert [r[2] for r in records] == FRAMES


@pytest.mark.parametrize("big", [False, True])
def test_it_reads_pcapng_with_several_interfaces_link_types_and_resolutions(big: bool) -> None:
    w = PcapngWriter(big=big)
    eth = w.interface(LINKTYPE_ETHERNET)
    raw = w.interface(LINKTYPE_RAW, tsresol=9)
    w.packet(TIMES[0], FRAMES[0], eth)
    w.packet(TIMES[1], FRAMES[1][14:], raw)
    w.simple_packet(FRAMES[2])
    w.statistics(TIMES[3], ifdrop=7, osdrop=2, iface=eth)
    reader, records = read_all(w.getvalue(), chunk=13)
    assert [(r[1], r[2]) for r in records] == [
        (LINKTYPE_ETHERNET, FRAMES[0]),
        (LINKTYPE_RAW, FRAMES[1][14:]),
        (LINKTYPE_ETHERNET, FRAMES[2]),
    ]
    assert abs(records[0][0] - TIMES[0]) < 1e-6 and abs(records[1][0] - TIMES[1]) < 1e-9
    assert records[2][0] == records[1][0], "a simple packet block has no time: the last one is kept"
    assert reader.stats.drops == 9 and reader.stats_changed


def test_statistics_counters_are_cumulative_per_interface() -> None:
    w = PcapngWriter()
    w.interface(LINKTYPE_LINUX_SLL)
    w.statistics(1.0, ifdrop=5)
    w.statistics(2.0, ifdrop=8)
    reader, _ = read_all(w.getvalue())
    assert reader.stats.drops == 8


def test_a_cut_off_file_reports_how_much_was_read() -> None:
    data = pcap_bytes(zip(TIMES, FRAMES, strict=True))
    with pytest.raises(
        PcapTruncated, match=r"capture is cut off: 4 packets read, the record at byte \d+ is incomplete"
    ):
        read_all(data[:-10])


def test_a_cut_off_pcapng_keeps_the_packets_before_the_cut() -> None:
    w = PcapngWriter()
    w.interface()
    for ts, frame in zip(TIMES, FRAMES, strict=True):
        w.packet(ts, frame)
    data = w.getvalue()[:-5]
    reader = PcapReader()
    reader.feed(data)
    records = list(reader.records())
    assert len(records) == 4
    with pytest.raises(PcapTruncated, match="4 packets read"):
        reader.close()


def test_it_rejects_a_file_that_is_not_a_capture() -> None:
    reader = PcapReader()
    reader.feed(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(PcapError, match=r"not a pcap or pcapng file \(starts with 52 49 46 46\)"):
        list(reader.records())


def test_it_rejects_an_empty_file() -> None:
    with pytest.raises(PcapError, match="empty file"):
        PcapReader().close()


def test_a_corrupt_record_length_names_its_byte_offset() -> None:
    data = bytearray(pcap_bytes(zip(TIMES, FRAMES, strict=True)))
    first = 24
    second = first + 16 + len(FRAMES[0])
    data[second + 8 : second + 12] = (10_000_000).to_bytes(4, "little")
    reader = PcapReader()
    reader.feed(bytes(data))
    got = []
    with pytest.raises(PcapError, match=rf"corrupt record at byte {second} \(after 1 packets\)"):
        for record in reader.records():
            got.append(record)
    assert len(got) == 1


def test_a_corrupt_pcapng_block_is_reported() -> None:
    w = PcapngWriter()
    w.interface()
    w.packet(1.0, FRAMES[0])
    data = bytearray(w.getvalue())
    data[-4:] = b"\x01\x00\x00\x00"  # trailing length no longer matches
    reader = PcapReader()
    reader.feed(bytes(data))
    with pytest.raises(PcapError, match="trailing length does not match"):
        list(reader.records())


def test_a_packet_on_an_undescribed_interface_is_an_error() -> None:
    w = PcapngWriter()
    w.ifaces = [6]  # the writer knows the interface, but no Interface Description Block is written
    w.packet(1.0, FRAMES[0], iface=0)
    reader = PcapReader()
    reader.feed(w.getvalue())
    with pytest.raises(PcapError, match="interface 0 was never described"):
        list(reader.records())


def test_it_reads_the_obsolete_packet_block() -> None:
    w = PcapngWriter()
    w.interface()
    units = round(TIMES[0] * 1e6)
    body = (
        struct.pack("<HHIIII", 0, 0, units >> 32, units & 0xFFFFFFFF, len(FRAMES[0]), len(FRAMES[0]))
        + FRAMES[0]
    )
    w.parts.append(w._block(2, body))
    _, records = read_all(w.getvalue())
    assert [(round(r[0], 6), r[2]) for r in records] == [(TIMES[0], FRAMES[0])]
