"""Parser, serializer and typed accessors of callvault.sip.message."""

from __future__ import annotations

import pytest

from callvault.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Headers,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_tag,
    parse_content_type,
    parse_message,
    parse_uri,
    reason_phrase,
    split_header_list,
    try_bad_request_response,
)
from tests.sip.samples import (
    CUBE_INVITE,
    CUBE_METADATA,
    CUBE_SDP,
    OPTIONS_PING,
    SBC_INVITE,
    SBC_METADATA,
    SBC_SDP,
    invite,
)

RESPONSE_180 = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKsrs1;received=10.20.30.40\r\n"
    b"From: <sip:srs@10.20.30.40>;tag=s1\r\n"
    b"To: <sip:src@10.1.1.10>;tag=r1\r\n"
    b"Call-ID: c1@10.20.30.40\r\n"
    b"CSeq: 7 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("raw", [CUBE_INVITE, SBC_INVITE, OPTIONS_PING, RESPONSE_180, invite()])
def test_it_round_trips_canonical_messages_byte_for_byte(raw: bytes) -> None:
    assert bytes(parse_message(raw)) == raw


def test_it_keeps_the_original_spacing_after_the_colon() -> None:
    message = parse_message(CUBE_INVITE)

    assert message.headers.get("Min-SE") == "1800"
    assert b"Min-SE:  1800\r\n" in bytes(message)


def test_it_reads_a_cisco_cube_siprec_invite() -> None:
    message = parse_message(CUBE_INVITE)

    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert message.request_uri == SipUri(user="srs", host="10.20.30.40", port=5060)
    assert message.call_id == "5E2D4C10-DF6A11EE-8F3AB2C4-1F00A1B2@10.1.1.10"
    assert message.cseq == (101, "INVITE")
    assert message.headers.get_all("Require") == ["siprec"]
    assert message.headers.get_all("Supported") == [
        "100rel",
        "timer",
        "resource-priority",
        "replaces",
        "sdp-anat",
    ]
    assert message.from_.tag == "8B5C0E-1A3"
    assert message.to.tag is None
    assert message.max_forwards == 70
    assert message.content_type == ("multipart/mixed", {"boundary": "uniqueBoundary"})
    contact = message.contact
    assert contact is not None and contact.params == {"+sip.src": None}
    parts = message.body_parts()
    assert [part.content_type for part in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert [part.content_disposition for part in parts] == ["session", "recording-session"]
    assert parts[0].body == CUBE_SDP
    assert parts[1].body == CUBE_METADATA


def test_it_reads_an_sbc_invite_with_quoted_boundary_display_names_and_ipv6() -> None:
    message = parse_message(SBC_INVITE)

    assert isinstance(message, Request)
    assert message.from_.display_name == 'Recorder "SRC" Agent'
    assert message.to.display_name == "Recorder"
    first, second = message.vias
    assert (first.transport, first.host, first.port, first.branch) == (
        "TCP",
        "192.0.2.20",
        5060,
        "z9hG4bK-sbc-4711-1",
    )
    assert first.rport_requested and first.rport is None
    assert (second.host, second.port, second.received) == ("2001:db8::9", 5062, "2001:db8::9")
    contact = message.contact
    assert contact is not None
    assert (contact.uri.host, contact.uri.port, contact.uri.transport) == ("2001:db8::20", 5060, "TCP")
    assert [str(route) for route in message.record_route] == ["<sip:192.0.2.20:5060;transport=tcp;lr>"]
    parts = message.body_parts()
    assert [part.body for part in parts] == [SBC_SDP, SBC_METADATA]
    assert parts[1].content_id == "rs-meta@sbc.example.net"


def test_it_parses_a_response() -> None:
    message = parse_message(RESPONSE_180)

    assert isinstance(message, Response)
    assert (message.status, message.reason) == (180, "Ringing")
    assert message.cseq == (7, "OPTIONS")
    assert message.to.tag == "r1"


def test_request_parse_and_response_parse_check_the_message_kind() -> None:
    assert Request.parse(OPTIONS_PING).method == "OPTIONS"
    assert Response.parse(RESPONSE_180).status == 180
    with pytest.raises(SipParseError) as request_error:
        Request.parse(RESPONSE_180)
    with pytest.raises(SipParseError) as response_error:
        Response.parse(OPTIONS_PING)
    assert str(request_error.value) == "expected a request, got a response"
    assert str(response_error.value) == "expected a response, got a request"


# --------------------------------------------------------------------------- liberal input


def test_it_understands_compact_header_forms() -> None:
    raw = crlf(
        "OPTIONS sip:srs@10.20.30.40 SIP/2.0\n"
        "v: SIP/2.0/UDP 10.1.1.10;branch=z9hG4bKc1\n"
        "f: <sip:a@10.1.1.10>;tag=1\n"
        "t: <sip:srs@10.20.30.40>\n"
        "i: compact@10.1.1.10\n"
        "CSeq: 3 OPTIONS\n"
        "m: <sip:a@10.1.1.10>\n"
        "k: timer, 100rel\n"
        "c: application/sdp\n"
        "l: 4\n"
        "\n"
        "v=0\n"
    )

    message = parse_message(raw)

    assert message.call_id == "compact@10.1.1.10"
    assert message.vias[0].branch == "z9hG4bKc1"
    assert message.headers.get_all("Supported") == ["timer", "100rel"]
    assert message.content_type == ("application/sdp", {})
    assert message.body == b"v=0\r"
    assert bytes(message) == raw[: len(raw) - 1]


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("u", "Allow-Events"),
        ("a", "Accept-Contact"),
        ("j", "Reject-Contact"),
        ("d", "Request-Disposition"),
    ],
)
def test_headers_map_every_compact_form_to_its_full_name(compact: str, full: str) -> None:
    headers = Headers([(compact.upper(), "value")])

    assert headers.get(full) == "value"
    assert headers.get(full.upper()) == "value"


def test_it_unfolds_continuation_lines() -> None:
    raw = crlf(
        "OPTIONS sip:srs@10.20.30.40 SIP/2.0\n"
        "Via: SIP/2.0/UDP 10.1.1.10;branch=z9hG4bKf1\n"
        "From: <sip:a@10.1.1.10>\n"
        " ;tag=folded\n"
        "To: <sip:srs@10.20.30.40>\n"
        "Subject: a subject that\n"
        "\t   continues here\n"
        "Call-ID: fold@10.1.1.10\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n"
        "\n"
    )

    message = parse_message(raw)

    assert message.from_.tag == "folded"
    assert message.headers.get("Subject") == "a subject that continues here"
    assert b"Subject: a subject that continues here\r\n" in bytes(message)


def test_it_accepts_bare_lf_line_endings_and_answers_with_crlf() -> None:
    raw = OPTIONS_PING.replace(b"\r\n", b"\n")

    message = parse_message(raw)

    assert message.call_id == "options-1@10.1.1.10"
    assert bytes(message) == OPTIONS_PING


def test_it_skips_leading_crlf_keepalives() -> None:
    assert bytes(parse_message(b"\r\n\r\n" + OPTIONS_PING)) == OPTIONS_PING


def test_without_content_length_the_body_is_the_rest_of_the_datagram() -> None:
    raw = OPTIONS_PING.replace(b"Content-Length: 0\r\n", b"") + b"hello"

    message = parse_message(raw)

    assert message.body == b"hello"
    assert bytes(message).endswith(b"Content-Length: 5\r\n\r\nhello")


def test_a_body_longer_than_content_length_is_truncated() -> None:
    raw = OPTIONS_PING.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abcdef"

    assert parse_message(raw).body == b"abc"


def test_a_message_without_the_empty_line_is_read_as_headers_only() -> None:
    raw = OPTIONS_PING.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 0")

    assert parse_message(raw).headers.get("Content-Length") == "0"


def test_identical_repeated_content_lengths_are_tolerated() -> None:
    raw = OPTIONS_PING.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 0\r\n")

    message = parse_message(raw)

    assert message.body == b""
    assert bytes(message).count(b"Content-Length") == 1
    assert b"\r\nl: 0" not in bytes(message)


def test_header_values_keep_non_utf8_bytes_for_the_round_trip() -> None:
    raw = OPTIONS_PING.replace(b"Content-Length: 0", b"Subject: caf\xe9\r\nContent-Length: 0")

    assert bytes(parse_message(raw)) == raw


# --------------------------------------------------------------------------- errors


def error_of(raw: bytes) -> str:
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    return str(info.value)


def test_it_rejects_an_empty_message() -> None:
    assert error_of(b"\r\n\r\n") == "empty message"


def test_it_rejects_messages_over_the_size_limit() -> None:
    raw = OPTIONS_PING + b"x" * MAX_MESSAGE_SIZE

    assert error_of(raw) == f"message of {len(raw)} bytes exceeds the limit of 65535 bytes"


def test_it_rejects_more_than_256_headers() -> None:
    extra = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(MAX_HEADERS))

    assert error_of(OPTIONS_PING.replace(b"Max-Forwards", extra + b"Max-Forwards")) == (
        "too many headers (limit 256)"
    )


@pytest.mark.parametrize(
    ("start_line", "message"),
    [
        (b"INVITE sip:srs@10.20.30.40", "malformed request line: 'INVITE sip:srs@10.20.30.40'"),
        (
            b"INVITE sip:srs@10.20.30.40 HTTP/1.1",
            "malformed request line: 'INVITE sip:srs@10.20.30.40 HTTP/1.1'",
        ),
        (b"INVITE sip:srs@10.20.30.40 SIP/7.0", "unsupported SIP version: 'SIP/7.0'"),
        (b"INV<TE sip:srs@10.20.30.40 SIP/2.0", "invalid method: 'INV<TE'"),
        (b"INVITE srs@10.20.30.40 SIP/2.0", "invalid Request-URI: 'srs@10.20.30.40'"),
        (b"SIP/2.0 2000 OK", "invalid status code: '2000'"),
        (b"SIP/2.0 099 Odd", "invalid status code: '099'"),
        (b"SIP/2.0 2x0 OK", "invalid status code: '2x0'"),
        (b"SIP/3.0 200 OK", "unsupported SIP version: 'SIP/3.0'"),
        (b"SIP/2.0", "malformed status line: 'SIP/2.0'"),
        (
            b" INVITE sip:srs@10.20.30.40 SIP/2.0",
            "malformed start line: ' INVITE sip:srs@10.20.30.40 SIP/2.0'",
        ),
    ],
)
def test_it_rejects_bad_start_lines(start_line: bytes, message: str) -> None:
    raw = start_line + OPTIONS_PING[OPTIONS_PING.index(b"\r\n") :]

    assert error_of(raw) == message


@pytest.mark.parametrize("name", ["Call-ID", "CSeq", "From", "To", "Via"])
def test_it_rejects_a_request_missing_a_mandatory_header(name: str) -> None:
    lines = [line for line in OPTIONS_PING.split(b"\r\n") if not line.startswith(name.encode() + b":")]

    assert error_of(b"\r\n".join(lines)) == f"missing mandatory header: {name}"


def test_it_rejects_a_cseq_method_that_differs_from_the_request_method() -> None:
    raw = OPTIONS_PING.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")

    assert error_of(raw) == "CSeq method 'INVITE' does not match request method 'OPTIONS'"


@pytest.mark.parametrize(
    ("cseq", "message"),
    [
        (b"one OPTIONS", "invalid CSeq: 'one OPTIONS'"),
        (b"-1 OPTIONS", "invalid CSeq: '-1 OPTIONS'"),
        (b"1", "invalid CSeq: '1'"),
        (b"1 OPTIONS extra", "invalid CSeq: '1 OPTIONS extra'"),
        (b"4294967296 OPTIONS", "CSeq number out of range: 4294967296"),
    ],
)
def test_it_rejects_a_bad_cseq(cseq: bytes, message: str) -> None:
    assert error_of(OPTIONS_PING.replace(b"1 OPTIONS", cseq)) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"-5", "invalid Content-Length: '-5'"),
        (b"abc", "invalid Content-Length: 'abc'"),
        (b"1 2", "invalid Content-Length: '1 2'"),
        (b"99999999999999999999", "invalid Content-Length: '99999999999999999999'"),
    ],
)
def test_it_rejects_a_bad_content_length(value: bytes, message: str) -> None:
    assert error_of(OPTIONS_PING.replace(b"Content-Length: 0", b"Content-Length: " + value)) == message


def test_it_rejects_conflicting_content_lengths() -> None:
    raw = (
        OPTIONS_PING.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nContent-Length: 4\r\n")
        + b"abcd"
    )

    assert error_of(raw) == "conflicting Content-Length headers: 0, 4"


def test_it_rejects_a_content_length_beyond_the_datagram() -> None:
    raw = OPTIONS_PING.replace(b"Content-Length: 0", b"Content-Length: 500") + b"short"

    assert error_of(raw) == "Content-Length 500 exceeds the 5 bytes of body received"


def test_it_rejects_a_header_line_without_colon() -> None:
    raw = OPTIONS_PING.replace(b"Max-Forwards: 70", b"Max-Forwards 70")

    assert error_of(raw) == "header line without colon: 'Max-Forwards 70'"


def test_it_rejects_an_invalid_header_name() -> None:
    raw = OPTIONS_PING.replace(b"Max-Forwards: 70", b"Max Forwards: 70")

    assert error_of(raw) == "invalid header name: 'Max Forwards'"


def test_it_rejects_a_continuation_line_before_any_header() -> None:
    raw = OPTIONS_PING.replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n folded\r\nVia")

    assert error_of(raw) == "continuation line before the first header: ' folded'"


def test_it_rejects_duplicate_single_value_headers() -> None:
    raw = OPTIONS_PING.replace(b"Call-ID: options-1@10.1.1.10\r\n", b"Call-ID: a@x\r\ni: b@x\r\n")

    assert error_of(raw) == "multiple Call-ID headers"


def test_it_rejects_a_non_numeric_max_forwards() -> None:
    assert error_of(OPTIONS_PING.replace(b"Max-Forwards: 70", b"Max-Forwards: seventy")) == (
        "invalid Max-Forwards: 'seventy'"
    )


def test_it_rejects_an_unparseable_via() -> None:
    raw = OPTIONS_PING.replace(b"SIP/2.0/UDP 10.1.1.10:5060", b"SIP/2.0/UDP")

    assert error_of(raw) == "invalid Via: 'SIP/2.0/UDP;branch=z9hG4bK1D2E3F;rport'"


def test_it_rejects_a_via_with_a_bad_port() -> None:
    raw = OPTIONS_PING.replace(b"10.1.1.10:5060;branch", b"10.1.1.10:70000;branch")

    assert error_of(raw) == (
        "invalid Via: 'SIP/2.0/UDP 10.1.1.10:70000;branch=z9hG4bK1D2E3F;rport' (invalid port: '70000')"
    )


# --------------------------------------------------------------------------- headers


def test_headers_keep_order_and_original_names() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("X-Custom", "1"), ("VIA", "SIP/2.0/UDP b")])

    assert headers.items() == [("v", "SIP/2.0/UDP a"), ("X-Custom", "1"), ("VIA", "SIP/2.0/UDP b")]
    assert headers.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert "x-custom" in headers
    assert "Route" not in headers


def test_headers_set_replaces_in_place_and_drops_duplicates() -> None:
    headers = Headers([("Route", "<sip:a>"), ("To", "<sip:b>"), ("route", "<sip:c>")])

    headers.set("Route", "<sip:z>")

    assert headers.items() == [("Route", "<sip:z>"), ("To", "<sip:b>")]


def test_headers_set_appends_when_absent_and_remove_counts() -> None:
    headers = Headers([("Contact", "<sip:a>"), ("m", "<sip:b>")])

    headers.set("Subject", "hi")

    assert headers.remove("contact") == 2
    assert headers.items() == [("Subject", "hi")]


def test_headers_refuse_values_with_line_breaks() -> None:
    with pytest.raises(SipParseError) as info:
        Headers().add("Subject", "a\r\nInjected: yes")

    assert str(info.value) == "invalid character in Subject header value: 'a\\r\\nInjected: yes'"


def test_get_all_splits_list_headers_but_not_inside_quotes_or_angle_brackets() -> None:
    headers = Headers(
        [
            ("Contact", '"Doe, John" <sip:j@h;x="a,b">;q=0.5, <sip:k@h?subject=a,b>'),
            ("Route", "<sip:p1;lr>,<sip:p2;lr>"),
            ("Subject", "a, b"),
        ]
    )

    assert headers.get_all("Contact") == ['"Doe, John" <sip:j@h;x="a,b">;q=0.5', "<sip:k@h?subject=a,b>"]
    assert headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert headers.get_all("Subject") == ["a, b"]


def test_split_header_list_handles_escaped_quotes_and_empty_elements() -> None:
    assert split_header_list('"a\\", b" <sip:x>, , <sip:y>') == ['"a\\", b" <sip:x>', "<sip:y>"]


def test_it_reads_several_vias_in_one_header_line() -> None:
    raw = OPTIONS_PING.replace(
        b"Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bK1D2E3F;rport",
        b"Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bK1D2E3F;rport,"
        b" SIP/2.0/TCP pbx.example.net;branch=z9hG4bKp",
    )

    assert [via.host for via in parse_message(raw).vias] == ["10.1.1.10", "pbx.example.net"]


def test_replace_first_element_rewrites_only_the_top_via() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])

    headers.replace_first_element("Via", "SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4")

    assert (
        headers.get("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4, SIP/2.0/UDP b;branch=z9hG4bK2"
    )


# --------------------------------------------------------------------------- typed values


def test_via_parses_transport_host_port_and_params() -> None:
    via = Via.parse(
        "SIP / 2.0 / tcp  sbc.example.net : 5070 ; Branch=z9hG4bKx ; received=192.0.2.1 ; rport=6000"
    )

    assert via == Via(
        "TCP", "sbc.example.net", 5070, {"branch": "z9hG4bKx", "received": "192.0.2.1", "rport": "6000"}
    )
    assert (via.branch, via.received, via.rport) == ("z9hG4bKx", "192.0.2.1", 6000)
    assert via.has_magic_cookie
    assert str(via) == "SIP/2.0/TCP sbc.example.net:5070;branch=z9hG4bKx;received=192.0.2.1;rport=6000"


def test_via_sent_by_fills_the_default_port() -> None:
    assert Via.parse("SIP/2.0/UDP Host.Example").sent_by() == ("host.example", 5060)
    assert Via.parse("SIP/2.0/TLS host.example").sent_by() == ("host.example", 5061)


def test_via_formats_ipv6_hosts_with_brackets() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6")

    assert via.host == "2001:db8::1"
    assert str(via) == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6"


def test_via_without_magic_cookie_is_recognised() -> None:
    assert not Via.parse("SIP/2.0/UDP 10.0.0.1;branch=1234").has_magic_cookie
    assert not Via.parse("SIP/2.0/UDP 10.0.0.1").has_magic_cookie


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        (
            '"Alice \\"Al\\" Smith" <sip:alice@example.com>;tag=88',
            'Alice "Al" Smith',
            "sip:alice@example.com",
            {"tag": "88"},
        ),
        ("Bob Jones <sip:bob@example.com>", "Bob Jones", "sip:bob@example.com", {}),
        (
            "<sip:carol@example.com;transport=tcp>;tag=1;x=y",
            None,
            "sip:carol@example.com;transport=tcp",
            {"tag": "1", "x": "y"},
        ),
        ("sip:dave@example.com;tag=42", None, "sip:dave@example.com", {"tag": "42"}),
        ('"" <sip:eve@example.com>', "", "sip:eve@example.com", {}),
        (
            "<tel:+4930123456;phone-context=example.com>",
            None,
            "tel:+4930123456;phone-context=example.com",
            {},
        ),
        ("<urn:service:sos>", None, "urn:service:sos", {}),
    ],
)
def test_name_addr_parses_display_names_uris_and_params(
    text: str, display: str | None, uri: str, params: dict[str, str]
) -> None:
    value = NameAddr.parse(text)

    assert value.display_name == display
    assert str(value.uri) == uri
    assert value.params == params


def test_name_addr_serializes_in_name_addr_form_with_escapes() -> None:
    value = NameAddr.parse('"A \\"B\\" \\\\ C" <sip:a@b>;tag=1')

    assert str(value) == '"A \\"B\\" \\\\ C" <sip:a@b>;tag=1'
    assert str(NameAddr.parse("sip:a@b;tag=1")) == "<sip:a@b>;tag=1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"unterminated <sip:a@b>', "unterminated quoted string in '\"unterminated <sip:a@b>'"),
        ('"name" sip:a@b', "expected '<' after display name in '\"name\" sip:a@b'"),
        ("<sip:a@b", "missing '>' in '<sip:a@b'"),
        ("<sip:a@b> junk", "unexpected text after URI in '<sip:a@b> junk'"),
        ("a@b;tag=1", "URI without scheme: 'a@b'"),
    ],
)
def test_name_addr_rejects_malformed_values(text: str, message: str) -> None:
    with pytest.raises(SipParseError) as info:
        NameAddr.parse(text)

    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "sip:srs@10.20.30.40:5060",
        "sips:alice:secret@example.com;transport=tls;lr",
        "sip:+4930123456;npdi;rn=+49301@gw.example.net;user=phone",
        "sip:[2001:db8::1]:5070;maddr=239.255.255.1",
        "sip:bob@example.com?subject=project%20x&priority=urgent",
        "sip:example.com",
        "tel:+1-201-555-0123;phone-context=example.com",
        "mailto:recording@example.com",
    ],
)
def test_uris_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_parse_uri_splits_every_component() -> None:
    uri = parse_uri("SIPS:alice:secret@[2001:db8::1]:5071;transport=TLS;lr?Subject=hi&Priority=urgent")

    assert uri == SipUri(
        scheme="sips",
        user="alice",
        password="secret",
        host="2001:db8::1",
        port=5071,
        params={"transport": "TLS", "lr": None},
        headers={"Subject": "hi", "Priority": "urgent"},
    )
    assert uri.transport == "TLS"


def test_parse_uri_keeps_user_parameters_in_the_user_part() -> None:
    uri = parse_uri("sip:+4930123456;phone-context=+49@gw;user=phone")

    assert (uri.user, uri.host, uri.params) == ("+4930123456;phone-context=+49", "gw", {"user": "phone"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice@example.com", "URI without scheme: 'alice@example.com'"),
        ("sip:", "empty URI: 'sip:'"),
        ("sip:alice@", "missing host in URI: 'sip:alice@'"),
        ("sip:@example.com", "empty user part in URI: 'sip:@example.com'"),
        ("sip:alice@exa mple.com", "whitespace in URI: 'sip:alice@exa mple.com'"),
        ("sip:alice@example.com:0", "invalid port: '0'"),
        ("sip:alice@example.com:50x", "invalid port: '50x'"),
        ("sip:alice@exa<mple.com", "invalid host: 'exa<mple.com'"),
        ("sip:[2001:db8::zz]", "invalid host: '[2001:db8::zz]'"),
        ("sip:a@b;=x", "invalid parameter '=x' in 'sip:a@b;=x'"),
    ],
)
def test_parse_uri_rejects_malformed_uris(text: str, message: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)

    assert str(info.value) == message


def test_content_type_is_lowercased_with_unquoted_params() -> None:
    assert parse_content_type('Multipart/Mixed ; Boundary="a b";charset=utf-8') == (
        "multipart/mixed",
        {"boundary": "a b", "charset": "utf-8"},
    )


def test_content_type_without_subtype_is_rejected() -> None:
    with pytest.raises(SipParseError) as info:
        parse_content_type("application")

    assert str(info.value) == "invalid Content-Type: 'application'"


# --------------------------------------------------------------------------- building messages


def test_make_response_copies_the_transaction_headers_per_8_2_6() -> None:
    request = Request.parse(SBC_INVITE)

    response = make_response(
        request,
        200,
        to_tag="srs-tag",
        headers=[("Contact", "<sip:srs@198.51.100.7:5060;transport=tcp>")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )

    assert bytes(response) == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK-sbc-4711-1;rport\r\n"
        b"Via: SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bK-pbx-99;received=2001:db8::9\r\n"
        b'From: "Recorder \\"SRC\\" Agent" <sip:src@sbc.example.net>;tag=a73kszlfl\r\n'
        b"To: Recorder <sip:recorder@srs.example.net>;tag=srs-tag\r\n"
        b"Call-ID: 2b8f0c1e-7a3d-4c1e-9e0a-6f4b1d2c3a5e\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:srs@198.51.100.7:5060;transport=tcp>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 5\r\n"
        b"\r\n"
        b"v=0\r\n"
    )


def test_make_response_keeps_an_existing_to_tag_and_copies_timestamp_into_100() -> None:
    request = Request.parse(
        invite(to_tag="existing").replace(b"Max-Forwards", b"Timestamp: 54\r\nMax-Forwards")
    )

    trying = make_response(request, 100, to_tag="ignored")

    assert trying.reason == "Trying"
    assert trying.to.tag == "existing"
    assert trying.headers.get("Timestamp") == "54"
    assert make_response(request, 180).headers.get("Timestamp") is None


def test_reason_phrases_have_defaults_per_class() -> None:
    assert reason_phrase(487) == "Request Terminated"
    assert reason_phrase(499) == "Client Error"
    assert reason_phrase(299) == "Success"


def test_serializing_a_built_message_sets_content_length() -> None:
    request = Request("OPTIONS", "sip:x@y", Headers([("Content-Length", "99")]), b"abc")

    assert bytes(request) == b"OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 3\r\n\r\nabc"


def test_serializing_refuses_invalid_start_lines() -> None:
    with pytest.raises(SipParseError) as method_error:
        bytes(Request("BAD METHOD", "sip:x@y"))
    with pytest.raises(SipParseError) as uri_error:
        bytes(Request("OPTIONS", "sip:x @y"))
    with pytest.raises(SipParseError) as status_error:
        bytes(Response(99))
    with pytest.raises(SipParseError) as reason_error:
        bytes(Response(200, "OK\r\nX: y"))

    assert str(method_error.value) == "invalid method: 'BAD METHOD'"
    assert str(uri_error.value) == "invalid Request-URI: 'sip:x @y'"
    assert str(status_error.value) == "invalid status code: 99"
    assert str(reason_error.value) == "invalid reason phrase: 'OK\\r\\nX: y'"


def test_tags_and_branches_come_from_the_injected_random_source() -> None:
    def fixed(count: int) -> str:
        return "ab" * count

    assert new_tag(fixed) == "ab" * 8
    assert new_branch(fixed) == "z9hG4bK" + "ab" * 12
    assert new_branch().startswith("z9hG4bK")
    assert new_tag() != new_tag()


# --------------------------------------------------------------------------- 400 helper


def test_try_bad_request_response_answers_a_cseq_mismatch_with_the_reason() -> None:
    raw = invite(cseq_method="BYE")
    reason = error_of(raw)

    reply = try_bad_request_response(raw, reason, to_tag="t400")

    assert reply == (
        b"SIP/2.0 400 CSeq method 'BYE' does not match request method 'INVITE'\r\n"
        b"Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bKinv1\r\n"
        b"From: <sip:src@10.1.1.10>;tag=from1\r\n"
        b"To: <sip:srs@10.20.30.40>;tag=t400\r\n"
        b"Call-ID: call-1@10.1.1.10\r\n"
        b"CSeq: 101 BYE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_try_bad_request_response_derives_a_stable_tag_without_one() -> None:
    raw = invite(cseq_method="BYE")

    first = try_bad_request_response(raw, "bad")
    second = try_bad_request_response(raw, "bad")

    assert first is not None and first == second
    assert Response.parse(first).to.tag is not None


def test_try_bad_request_response_salvages_headers_around_a_garbled_line() -> None:
    raw = invite().replace(b"Max-Forwards: 70", b"this line is garbage")

    reply = try_bad_request_response(raw, "header line without colon: 'this line is garbage'", to_tag="x")

    assert reply is not None
    assert Response.parse(reply).reason == "header line without colon: 'this line is garbage'"


def test_try_bad_request_response_strips_control_characters_from_the_reason() -> None:
    reply = try_bad_request_response(invite(), "bad\r\nInjected: 1\x00", to_tag="x")

    assert reply is not None and reply.startswith(b"SIP/2.0 400 bad Injected: 1\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        invite(method="ACK"),
        RESPONSE_180,
        invite().replace(b"Call-ID: call-1@10.1.1.10\r\n", b""),
        invite().replace(b"SIP/2.0/UDP 10.1.1.10:5060", b"garbage"),
        b"\r\n",
        OPTIONS_PING + b"x" * MAX_MESSAGE_SIZE,
        b"<html>not sip</html>\r\n\r\n",
    ],
    ids=["ack", "response", "no-call-id", "bad-via", "empty", "oversize", "not-sip"],
)
def test_try_bad_request_response_gives_up_when_no_answer_is_possible(raw: bytes) -> None:
    assert try_bad_request_response(raw, "whatever") is None
