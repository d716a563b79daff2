"""SDP parsing/serialising (RFC 8866) and recorder answers (RFC 3264) against real-shaped offers."""

from __future__ import annotations

from typing import Any

import pytest

from callvault.sdp import (
    Attribute,
    Crypto,
    MediaChange,
    RtpMap,
    SdpError,
    SessionDescription,
    build_answer,
    compare_offers,
)
from tests.siprec.multipart import ALL_OFFERS, load_offer


def crlf_normalised(sdp: bytes) -> str:
    lines = [line.rstrip(" \t\r") for line in sdp.decode().split("\n")]
    return "".join(f"{line}\r\n" for line in lines if line)


def offer(name: str) -> SessionDescription:
    return SessionDescription.parse(load_offer(name).sdp)


def sdp_text(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


MINIMAL_HEAD = ("v=0", "o=- 1 1 IN IP4 192.0.2.10", "s=-", "c=IN IP4 192.0.2.10", "t=0 0")


# --- parsing and round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_OFFERS)
def test_every_fixture_sdp_round_trips_to_its_crlf_form(name: str) -> None:
    raw = load_offer(name).sdp
    parsed = SessionDescription.parse(raw)
    assert str(parsed) == crlf_normalised(raw)
    assert bytes(parsed) == crlf_normalised(raw).encode()
    assert SessionDescription.parse(bytes(parsed)) == parsed


def test_lf_and_crlf_line_endings_parse_identically() -> None:
    raw = load_offer("cisco-cube-offer.txt").sdp
    assert SessionDescription.parse(raw.replace(b"\n", b"\r\n")) == SessionDescription.parse(raw)


def test_cisco_offer_fields_are_parsed() -> None:
    sdp = offer("cisco-cube-offer.txt")
    assert (sdp.origin.username, sdp.origin.session_id, sdp.origin.session_version) == (
        "CiscoSystemsSIP-GW-UserAgent",
        "4821",
        "2203",
    )
    assert sdp.origin.version_number == 2203
    assert sdp.session_name == "SIP Call"
    assert [m.label for m in sdp.media] == ["1", "2"]
    first = sdp.media[0]
    assert (first.media, first.port, first.proto, first.formats) == ("audio", 16384, "RTP/AVP", ["0", "101"])
    assert first.rtpmap == {0: RtpMap("PCMU", 8000), 101: RtpMap("telephone-event", 8000)}
    assert first.fmtp == {101: "0-16"}
    assert first.ptime == 20
    assert first.direction == "sendonly"
    assert first.connection is not None and first.connection.address == "10.20.30.41"


def test_trailing_whitespace_and_unknown_lines_are_tolerated() -> None:
    text = (
        "v=0  \no=- 5 6 IN IP4 192.0.2.1\t\ns=-\nt=0 0\n"
        "x=unknown-type\nthis is not sdp\nm=audio 4000 RTP/AVP 0 \n"
    )
    sdp = SessionDescription.parse(text)
    assert sdp.origin.address == "192.0.2.1"
    assert sdp.media[0].formats == ["0"]
    assert str(sdp) == sdp_text("v=0", "o=- 5 6 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 4000 RTP/AVP 0")


def test_all_optional_session_lines_round_trip_in_rfc_order() -> None:
    text = sdp_text(
        "v=0",
        "o=jdoe 2890844526 2890842807 IN IP4 198.51.100.5",
        "s=録音テスト",
        "i=A Seminar",
        "u=http://www.example.com/seminars/sdp.pdf",
        "e=j.doe@example.com (Jane Doe)",
        "p=+81 3 1234 5678",
        "c=IN IP4 233.252.0.1/127",
        "b=AS:128",
        "t=2873397496 2873404696",
        "r=7d 1h 0 25h",
        "z=2882844526 -1h",
        "k=prompt",
        "a=recvonly",
        "m=audio 49170/2 RTP/AVP 0",
        "i=voice",
        "b=AS:64",
        "k=prompt",
        "a=ptime:30",
    )
    sdp = SessionDescription.parse(text)
    assert str(sdp) == text
    assert sdp.session_name == "録音テスト"
    assert sdp.timings[0].repeats == ["7d 1h 0 25h"]
    assert sdp.media[0].port_count == 2
    assert sdp.connection_address(0) == "233.252.0.1"
    assert sdp.media[0].bandwidths[0].bandwidth == 64


def test_non_utf8_session_name_survives_a_bytes_round_trip() -> None:
    raw = sdp_text(*MINIMAL_HEAD[:2], "s=通話", *MINIMAL_HEAD[3:], "m=audio 4000 RTP/AVP 0").encode(
        "shift_jis"
    )
    assert bytes(SessionDescription.parse(raw)) == raw


def test_static_payload_types_get_rfc3551_defaults_without_rtpmap() -> None:
    sdp = SessionDescription.parse(sdp_text(*MINIMAL_HEAD, "m=audio 4000 RTP/AVP 0 8 9 13 18 3 96"))
    assert sdp.media[0].rtpmap == {
        0: RtpMap("PCMU", 8000),
        8: RtpMap("PCMA", 8000),
        9: RtpMap("G722", 8000),
        13: RtpMap("CN", 8000),
        18: RtpMap("G729", 8000),
        3: RtpMap("GSM", 8000),
    }


def test_explicit_rtpmap_wins_and_channels_are_parsed_while_malformed_ones_are_skipped() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            *MINIMAL_HEAD,
            "m=audio 4000 RTP/AVP 111 0 98",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:0 pcmu/8000",
            "a=rtpmap:98 broken",
            "a=fmtp:111 minptime=10;useinbandfec=1",
        )
    )
    media = sdp.media[0]
    assert media.rtpmap == {111: RtpMap("opus", 48000, 2), 0: RtpMap("pcmu", 8000)}
    assert str(media.rtpmap[111]) == "opus/48000/2"
    assert media.fmtp == {111: "minptime=10;useinbandfec=1"}
    assert media.codecs() == [(111, RtpMap("opus", 48000, 2)), (0, RtpMap("pcmu", 8000)), (98, None)]


def test_direction_defaults_to_session_level_then_sendrecv_and_port_zero_is_inactive() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            *MINIMAL_HEAD,
            "a=sendonly",
            "m=audio 4000 RTP/AVP 0",
            "m=audio 4002 RTP/AVP 0",
            "a=recvonly",
            "m=audio 0 RTP/AVP 0",
            "a=sendonly",
        )
    )
    assert sdp.direction == "sendonly"
    assert [sdp.effective_direction(i) for i in range(3)] == ["sendonly", "recvonly", "inactive"]
    assert sdp.media[0].direction is None
    assert sdp.media[2].disabled
    bare = SessionDescription.parse(sdp_text(*MINIMAL_HEAD, "m=audio 4000 RTP/AVP 0"))
    assert bare.effective_direction(bare.media[0]) == "sendrecv"


def test_media_connection_overrides_session_connection() -> None:
    sonus = offer("sonus-calldata-offer.txt")
    assert sonus.connection is None
    assert sonus.connection_address(0) == "192.0.2.132"
    broadworks = offer("broadworks-offer.txt")
    assert [broadworks.connection_address(i) for i in range(2)] == ["10.44.1.168", "10.44.1.168"]
    transfer = offer("cisco-cube-transfer-reinvite.txt")
    assert [transfer.connection_address(i) for i in range(2)] == ["10.20.30.41", "10.20.30.42"]


def test_offer_without_any_connection_line_has_no_address() -> None:
    sdp = offer("opensips-offer.txt")
    assert sdp.origin.address == "0.0.0.0"
    assert sdp.connection_address(0) is None
    assert sdp.media[0].maxptime == 150
    assert sdp.media[0].ptime is None


def test_rtcp_mux_and_sdes_crypto_lines_are_parsed() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            *MINIMAL_HEAD,
            "m=audio 4000 RTP/SAVP 0",
            "a=rtcp-mux",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj KDR=1",
            "a=crypto:bogus",
        )
    )
    media = sdp.media[0]
    assert media.rtcp_mux
    assert media.crypto == [
        Crypto(1, "AES_CM_128_HMAC_SHA1_80", "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"),
        Crypto(2, "AES_CM_128_HMAC_SHA1_32", "inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj", ("KDR=1",)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty session description"),
        ("\r\n  \r\n", "empty session description"),
        ("o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", "session description must start with v="),
        ("v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n", "unsupported SDP version: '1'"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "missing o= line"),
        ("v=0\r\no=- 1 IN IP4 192.0.2.1\r\n", "invalid o= line: '- 1 IN IP4 192.0.2.1'"),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4\r\n", "invalid c= line: 'IN IP4'"),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=now\r\n", "invalid t= line: 'now'"),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nb=AS\r\n", "invalid b= line: 'AS'"),
        (
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio x RTP/AVP 0\r\n",
            "invalid m= line: 'audio x RTP/AVP 0'",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 70000 RTP/AVP 0\r\n",
            "invalid m= line: 'audio 70000 RTP/AVP 0'",
        ),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio\r\n", "invalid m= line: 'audio'"),
    ],
)
def test_unusable_descriptions_raise_precise_errors(text: str, message: str) -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(text)
    assert str(caught.value) == message


# --- answers ---------------------------------------------------------------------------------------


def test_answer_to_cisco_offer_is_recvonly_with_labels_echoed() -> None:
    answer = build_answer(
        offer("cisco-cube-offer.txt"),
        local_ip="192.0.2.50",
        ports=[40000, 40002],
        session_id=1712000000,
        session_version=1,
    )
    assert str(answer) == sdp_text(
        "v=0",
        "o=- 1712000000 1 IN IP4 192.0.2.50",
        "s=-",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=label:1",
        "a=recvonly",
        "m=audio 40002 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=label:2",
        "a=recvonly",
    )


def test_answer_keeps_first_supported_audio_codec_in_offer_order() -> None:
    answer = build_answer(
        offer("opensips-offer.txt"),
        local_ip="192.0.2.50",
        ports=[40000, 40002],
        session_id=7,
        session_version=7,
    )
    assert [m.formats for m in answer.media] == [["0", "101"], ["8", "101"]]
    assert [m.label for m in answer.media] == ["1", "2"]


def test_answer_skips_unsupported_codecs_and_keeps_comfort_noise() -> None:
    avaya = build_answer(
        offer("avaya-draft-offer.txt"),
        local_ip="192.0.2.50",
        ports=[40000, 40002],
        supported={"PCMA", "G729", "telephone-event"},
        session_id=1,
        session_version=1,
    )
    assert [m.formats for m in avaya.media] == [["18", "127"], ["18", "127"]]
    assert avaya.media[0].get_attributes("fmtp")[0].value == "18 annexb=no"
    mixed = build_answer(
        offer("metaswitch-mixed-offer.txt"),
        local_ip="192.0.2.50",
        ports=[40000],
        session_id=1,
        session_version=1,
    )
    assert mixed.media[0].formats == ["8", "101", "13"]
    assert mixed.media[0].label == "mixed-1"


def test_answer_pairs_telephone_event_with_the_codec_clock_rate() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            *MINIMAL_HEAD,
            "m=audio 4000 RTP/AVP 111 101 100",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtpmap:100 telephone-event/48000",
            "a=sendonly",
        )
    )
    answer = build_answer(sdp, local_ip="192.0.2.50", ports=[40000], session_id=1, session_version=1)
    assert answer.media[0].formats == ["111", "100"]
    assert answer.media[0].rtpmap[111] == RtpMap("opus", 48000, 2)


def test_answer_rejects_video_unsupported_codecs_srtp_and_unallocated_ports_with_port_zero() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            *MINIMAL_HEAD,
            "m=audio 4000 RTP/AVP 0",
            "a=sendonly",
            "a=label:1",
            "m=video 4002 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "a=label:2",
            "m=audio 4004 RTP/AVP 3 18",
            "a=label:3",
            "m=audio 4006 RTP/SAVP 0",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "m=audio 4008 RTP/AVP 8",
            "m=audio 0 RTP/AVP 0",
        )
    )
    answer = build_answer(
        sdp,
        local_ip="192.0.2.50",
        ports=[40000, 40002, 40004, 40006, None, 40010],
        session_id=1,
        session_version=1,
    )
    assert [(m.media, m.port, m.proto, m.formats) for m in answer.media] == [
        ("audio", 40000, "RTP/AVP", ["0"]),
        ("video", 0, "RTP/AVP", ["96"]),
        ("audio", 0, "RTP/AVP", ["3", "18"]),
        ("audio", 0, "RTP/SAVP", ["0"]),
        ("audio", 0, "RTP/AVP", ["8"]),
        ("audio", 0, "RTP/AVP", ["0"]),
    ]
    assert all(m.attributes == [] for m in answer.media[1:])


def test_inactive_offer_is_answered_inactive() -> None:
    answer = build_answer(
        offer("cisco-inactive-offer.txt"),
        local_ip="192.0.2.50",
        ports=[40000, 40002],
        session_id=1,
        session_version=2,
    )
    assert [m.direction for m in answer.media] == ["inactive", "inactive"]
    assert [m.formats for m in answer.media] == [["0", "101", "19"], ["0", "101", "19"]]


def test_recvonly_or_sendrecv_offers_and_explicit_hold_get_a_direction_a_recorder_can_honour() -> None:
    sdp = SessionDescription.parse(
        sdp_text(*MINIMAL_HEAD, "m=audio 4000 RTP/AVP 0", "a=recvonly", "m=audio 4002 RTP/AVP 0")
    )
    answer = build_answer(sdp, local_ip="192.0.2.50", ports=[40000, 40002], session_id=1, session_version=1)
    assert [m.direction for m in answer.media] == ["inactive", "recvonly"]
    held = build_answer(
        sdp,
        local_ip="192.0.2.50",
        ports=[40000, 40002],
        session_id=1,
        session_version=2,
        direction="inactive",
    )
    assert [m.direction for m in held.media] == ["inactive", "inactive"]


def test_answer_over_ipv6_uses_ip6_address_type() -> None:
    answer = build_answer(
        offer("broadworks-offer.txt"),
        local_ip="2001:db8::50",
        ports=[40000, 40002],
        session_id=3,
        session_version=4,
    )
    assert str(answer.origin) == "- 3 4 IN IP6 2001:db8::50"
    assert str(answer.connection) == "IN IP6 2001:db8::50"


def test_nothing_acceptable_raises_so_the_server_can_answer_488() -> None:
    sdp = SessionDescription.parse(
        sdp_text(*MINIMAL_HEAD, "m=audio 4000 RTP/AVP 3", "m=video 4002 RTP/AVP 31")
    )
    with pytest.raises(SdpError) as caught:
        build_answer(sdp, local_ip="192.0.2.50", ports=[40000, 40002], session_id=1, session_version=1)
    assert str(caught.value) == "no acceptable media"


def test_all_ports_unavailable_is_also_not_acceptable() -> None:
    with pytest.raises(SdpError) as caught:
        build_answer(
            offer("cisco-cube-offer.txt"),
            local_ip="192.0.2.50",
            ports=[None, None],
            session_id=1,
            session_version=1,
        )
    assert str(caught.value) == "no acceptable media"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ports": [40000]}, "ports has 1 entries for 2 offered m-lines"),
        ({"local_ip": "recorder.example.jp"}, "invalid local_ip: 'recorder.example.jp'"),
        ({"direction": "sendrecv"}, "answer direction must be recvonly or inactive, got 'sendrecv'"),
        ({"session_id": -1}, "session_id and session_version must be unsigned 64-bit integers"),
        ({"ports": [40000, 0]}, "invalid port for m-line 1: 0"),
        ({"ports": [65536, None]}, "invalid port for m-line 0: 65536"),
    ],
)
def test_bad_answer_arguments_raise_precise_errors(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "local_ip": "192.0.2.50",
        "ports": [40000, 40002],
        "session_id": 1,
        "session_version": 1,
    }
    arguments.update(kwargs)
    with pytest.raises(SdpError) as caught:
        build_answer(offer("cisco-cube-offer.txt"), **arguments)
    assert str(caught.value) == message


# --- re-INVITE comparison --------------------------------------------------------------------------


def test_transfer_reinvite_reports_new_port_address_and_codec_on_the_second_stream_only() -> None:
    comparison = compare_offers(offer("cisco-cube-offer.txt"), offer("cisco-cube-transfer-reinvite.txt"))
    assert comparison.version_changed
    assert comparison.changed_indexes == [1]
    assert comparison.media == (
        MediaChange(0, "1"),
        MediaChange(1, "2", address=True, port=True, codecs=True),
    )


def test_identical_refresh_reports_no_change() -> None:
    comparison = compare_offers(offer("cisco-cube-offer.txt"), offer("cisco-cube-offer.txt"))
    assert not comparison.version_changed
    assert not comparison.changed
    assert comparison.changed_indexes == []


def test_hold_shows_up_as_a_direction_change() -> None:
    previous = offer("cisco-cube-offer.txt")
    held = offer("cisco-cube-offer.txt")
    for media in held.media:
        media.attributes = [a for a in media.attributes if a.name != "sendonly"]
        media.attributes.append(Attribute("inactive"))
    comparison = compare_offers(previous, held)
    assert [c.direction for c in comparison.media] == [True, True]
    assert [c.port or c.codecs or c.address for c in comparison.media] == [False, False]


def test_added_and_removed_m_lines_are_reported() -> None:
    two = offer("cisco-cube-offer.txt")
    one = offer("metaswitch-mixed-offer.txt")
    grown = compare_offers(one, two)
    assert grown.media[1] == MediaChange(1, "2", added=True)
    shrunk = compare_offers(two, one)
    assert shrunk.removed == (1,)
    assert shrunk.changed
