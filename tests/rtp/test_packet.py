import struct

import pytest

from callvault.rtp.packet import RtpError, RtpPacket, is_rtcp, peek


def test_minimal_packet_round_trips_through_bytes():
    packet = RtpPacket(
        payload_type=0, sequence_number=65535, timestamp=0xFFFFFFFF, ssrc=0xDEADBEEF, payload=b"abc"
    )
    data = bytes(packet)
    assert data[:2] == b"\x80\x00"
    assert len(data) == 12 + 3
    assert RtpPacket.parse(data) == packet


def test_all_optional_fields_round_trip():
    packet = RtpPacket(
        payload_type=101,
        sequence_number=7,
        timestamp=123456,
        ssrc=42,
        payload=b"\x01\x02\x03\x04",
        marker=True,
        csrc=[1, 2, 0xFFFFFFFF],
        extension_profile=0xBEDE,
        extension_data=b"\x10\xaa\x00\x00",
        padding=4,
    )
    data = bytes(packet)
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert parsed.extension
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[1] == 0x80 | 101
    assert data[-1] == 4


def test_parse_reads_fields_of_a_hand_built_header():
    data = struct.pack("!BBHII", 0x80, 0x80 | 8, 513, 160, 99) + b"\xd5" * 160
    parsed = RtpPacket.parse(data)
    assert (parsed.payload_type, parsed.marker, parsed.sequence_number) == (8, True, 513)
    assert (parsed.timestamp, parsed.ssrc, len(parsed.payload)) == (160, 99, 160)
    assert parsed.csrc == [] and parsed.extension_profile is None and parsed.padding == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "RTP packet too short: 3 bytes, need at least 12"),
        (struct.pack("!BBHII", 0x40, 0, 1, 1, 1), "unsupported RTP version 1, expected 2"),
        (
            struct.pack("!BBHII", 0x82, 0, 1, 1, 1) + b"\0\0\0\1",
            "CSRC count 2 needs 20 bytes but packet has 16",
        ),
        (
            struct.pack("!BBHII", 0x90, 0, 1, 1, 1) + b"\xbe",
            "extension header truncated at offset 12 (packet has 13 bytes)",
        ),
        (
            struct.pack("!BBHII", 0x90, 0, 1, 1, 1) + struct.pack("!HH", 0xBEDE, 2) + b"\0" * 4,
            "extension length 2 words needs 24 bytes but packet has 20",
        ),
        (struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"ab\x00", "padding bit set but padding count is 0"),
        (
            struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"ab\x04",
            "padding count 4 exceeds the 3 bytes after the header",
        ),
    ],
)
def test_parse_rejects_malformed_packets_with_a_precise_reason(data, message):
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"payload_type": 128}, "payload type 128 out of range 0-127"),
        ({"sequence_number": 65536}, "sequence number 65536 out of range 0-65535"),
        ({"timestamp": -1}, "timestamp -1 out of range 0-4294967295"),
        ({"csrc": list(range(16))}, "16 CSRCs, at most 15 allowed"),
        (
            {"extension_profile": 1, "extension_data": b"abc"},
            "extension data length 3 is not a multiple of 4",
        ),
    ],
)
def test_serialising_out_of_range_fields_is_refused(fields, message):
    base = {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0}
    packet = RtpPacket(**{**base, **fields})
    with pytest.raises(RtpError) as info:
        bytes(packet)
    assert str(info.value) == message


def test_rtp_error_is_a_value_error():
    assert issubclass(RtpError, ValueError)


def test_peek_returns_header_fields_without_full_parse():
    data = bytes(RtpPacket(payload_type=9, sequence_number=3, timestamp=4, ssrc=5, marker=True, csrc=[7]))
    assert peek(data) == (9, 3, 4, 5)


@pytest.mark.parametrize("data", [b"", b"\x80" * 11, struct.pack("!BBHII", 0x00, 0, 1, 1, 1)])
def test_peek_returns_none_for_non_rtp(data):
    assert peek(data) is None


@pytest.mark.parametrize("packet_type", [200, 201, 202, 203, 204, 205, 206, 207])
def test_muxed_rtcp_packets_are_recognised(packet_type):
    rtcp = struct.pack("!BBHI", 0x81, packet_type, 1, 0x1234)
    assert is_rtcp(rtcp)


@pytest.mark.parametrize("pt", [0, 8, 9, 13, 101, 111, 127])
def test_audio_rtp_is_not_rtcp_with_or_without_marker(pt):
    for marker in (False, True):
        assert not is_rtcp(bytes(RtpPacket(pt, 1, 1, 1, b"x", marker=marker)))


def test_short_or_wrong_version_datagrams_are_not_rtcp():
    assert not is_rtcp(b"\x80\xc8")
    assert not is_rtcp(struct.pack("!BBHI", 0x41, 200, 1, 1))
