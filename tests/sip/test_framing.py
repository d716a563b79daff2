"""TCP framing: partial input, pipelining, keep-alives and framing errors."""

from __future__ import annotations

import pytest

from callvault.sip.framing import PONG, StreamFramer
from callvault.sip.message import MAX_MESSAGE_SIZE, Request, SipParseError
from tests.sip.samples import CUBE_INVITE, OPTIONS_PING, SBC_INVITE


def test_it_frames_a_siprec_invite_fed_one_byte_at_a_time() -> None:
    framer = StreamFramer()
    messages = []

    for index in range(len(SBC_INVITE)):
        messages += framer.feed(SBC_INVITE[index : index + 1])
        if index < len(SBC_INVITE) - 1:
            assert messages == []

    assert [bytes(message) for message in messages] == [SBC_INVITE]
    assert framer.buffered == 0


def test_it_frames_several_messages_from_one_chunk() -> None:
    framer = StreamFramer()

    messages = framer.feed(OPTIONS_PING + CUBE_INVITE + SBC_INVITE)

    assert [bytes(message) for message in messages] == [OPTIONS_PING, CUBE_INVITE, SBC_INVITE]


def test_it_frames_messages_split_at_awkward_places() -> None:
    stream = CUBE_INVITE + OPTIONS_PING + SBC_INVITE
    head_end = CUBE_INVITE.index(b"\r\n\r\n")
    cuts = [head_end + 1, head_end + 3, len(CUBE_INVITE) + 5, len(stream) - 1]
    framer = StreamFramer()
    frames: list[bytes] = []
    previous = 0

    for cut in [*cuts, len(stream)]:
        frames += framer.feed_frames(stream[previous:cut])
        previous = cut

    assert frames == [CUBE_INVITE, OPTIONS_PING, SBC_INVITE]


def test_it_reports_double_crlf_pings_and_skips_single_crlfs() -> None:
    framer = StreamFramer()

    assert framer.feed(b"\r\n\r\n") == []
    assert framer.take_pings() == 1
    assert framer.take_pings() == 0
    assert framer.feed(b"\r\n") == []
    assert framer.take_pings() == 0
    messages = framer.feed(OPTIONS_PING + b"\r\n\r\n\r\n\r\n")
    assert [message.call_id for message in messages] == ["options-1@10.1.1.10"]
    assert framer.take_pings() == 2
    assert PONG == b"\r\n"


def test_a_ping_split_across_reads_still_counts_once() -> None:
    framer = StreamFramer()

    for byte in b"\r\n\r\n":
        framer.feed(bytes([byte]))

    assert framer.take_pings() == 1


def test_it_accepts_lf_only_messages_on_a_stream() -> None:
    raw = OPTIONS_PING.replace(b"\r\n", b"\n")

    messages = StreamFramer().feed(raw + raw)

    assert [type(message) for message in messages] == [Request, Request]


def test_a_missing_content_length_breaks_the_stream() -> None:
    framer = StreamFramer()

    with pytest.raises(SipParseError) as info:
        framer.feed(OPTIONS_PING.replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(SipParseError) as again:
        framer.feed(OPTIONS_PING)

    assert str(info.value) == "missing Content-Length on stream transport"
    assert str(again.value) == "stream already failed: missing Content-Length on stream transport"
    assert framer.error == "missing Content-Length on stream transport"


def test_an_oversize_header_section_breaks_the_stream() -> None:
    framer = StreamFramer()
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")

    with pytest.raises(SipParseError) as info:
        framer.feed(b"X-Filler: " + b"x" * MAX_MESSAGE_SIZE)

    assert str(info.value) == "header section exceeds 65535 bytes"


def test_a_body_over_the_limit_breaks_the_stream_before_it_arrives() -> None:
    framer = StreamFramer(max_message_size=1000)

    with pytest.raises(SipParseError) as info:
        framer.feed(OPTIONS_PING.replace(b"Content-Length: 0", b"Content-Length: 5000"))

    assert (
        str(info.value) == f"message of {len(OPTIONS_PING) + 3 + 5000} bytes exceeds the limit of 1000 bytes"
    )


def test_a_bad_content_length_breaks_the_stream() -> None:
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(OPTIONS_PING.replace(b"Content-Length: 0", b"Content-Length: -1"))

    assert str(info.value) == "invalid Content-Length: '-1'"


def test_a_malformed_but_framed_message_raises_from_feed_but_not_from_feed_frames() -> None:
    bad = OPTIONS_PING.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")

    frames = StreamFramer().feed_frames(bad + OPTIONS_PING)
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(bad)

    assert frames == [bad, OPTIONS_PING]
    assert str(info.value) == "CSeq method 'INVITE' does not match request method 'OPTIONS'"
