"""Multipart bodies as SIPREC clients send them (RFC 2046, RFC 7866)."""

from __future__ import annotations

import pytest

from callvault.sip.message import (
    BodyPart,
    Headers,
    SipParseError,
    build_multipart,
    parse_message,
    parse_multipart,
)
from tests.sip.samples import CUBE_BODY, CUBE_METADATA, CUBE_SDP, SBC_BODY, SBC_METADATA, SBC_SDP

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
XML = b'<?xml version="1.0"?>\r\n<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>\r\n'


def test_it_splits_a_cube_body_into_sdp_and_metadata() -> None:
    parts = parse_multipart(CUBE_BODY, "uniqueBoundary")

    assert [(p.content_type, p.content_disposition, p.body) for p in parts] == [
        ("application/sdp", "session", CUBE_SDP),
        ("application/rs-metadata+xml", "recording-session", CUBE_METADATA),
    ]


def test_it_ignores_preamble_and_epilogue_and_accepts_a_quoted_boundary() -> None:
    parts = parse_multipart(SBC_BODY, '"----=_Part_0_1429931.1710238502"')

    assert [p.body for p in parts] == [SBC_SDP, SBC_METADATA]


def test_it_tolerates_a_missing_close_delimiter() -> None:
    body = (
        b"--b1\r\nContent-Type: application/sdp\r\n\r\n"
        + SDP
        + b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\ntail"
    )

    parts = parse_multipart(body, "b1")

    assert [p.body for p in parts] == [SDP, b"tail"]


def test_it_accepts_lf_only_line_breaks() -> None:
    body = (
        b"--b2\nContent-Type: application/sdp\n\nv=0\n\n"
        b"--b2\nContent-Type: application/rs-metadata+xml\n\n<r/>\n--b2--\n"
    )

    parts = parse_multipart(body, "b2")

    assert [(p.content_type, p.body) for p in parts] == [
        ("application/sdp", b"v=0\n"),
        ("application/rs-metadata+xml", b"<r/>"),
    ]


def test_it_does_not_mistake_a_longer_boundary_for_the_delimiter() -> None:
    body = b"--b\r\n\r\nline\r\n--bx not a delimiter\r\n--b--\r\n"

    assert [p.body for p in parse_multipart(body, "b")] == [b"line\r\n--bx not a delimiter"]


def test_it_reads_parts_without_headers_and_empty_parts() -> None:
    body = b"--b\r\n\r\nno headers\r\n--b\r\n--b\r\nContent-Type: text/plain\r\n--b--"

    parts = parse_multipart(body, "b")

    assert [(p.headers.items(), p.body) for p in parts] == [
        ([], b"no headers"),
        ([], b""),
        ([("Content-Type", "text/plain")], b""),
    ]


def test_it_keeps_binary_part_bodies_intact() -> None:
    blob = bytes(range(256)) * 4
    body = b"--bin\r\nContent-Type: application/octet-stream\r\n\r\n" + blob + b"\r\n--bin--\r\n"

    assert parse_multipart(body, "bin")[0].body == blob


def test_it_rejects_a_body_without_the_boundary() -> None:
    with pytest.raises(SipParseError) as info:
        parse_multipart(b"just text", "missing")

    assert str(info.value) == "multipart boundary 'missing' not found in body"


def test_it_rejects_an_empty_boundary() -> None:
    with pytest.raises(SipParseError) as info:
        parse_multipart(b"--\r\n", '""')

    assert str(info.value) == "empty multipart boundary"


def test_build_then_parse_returns_the_same_parts() -> None:
    parts = [
        BodyPart(Headers([("Content-Type", "application/sdp")]), SDP),
        BodyPart(
            Headers(
                [
                    ("Content-Type", "application/rs-metadata+xml"),
                    ("Content-Disposition", "recording-session"),
                ]
            ),
            XML,
        ),
    ]

    body = build_multipart(parts, "srs-boundary")

    assert body.startswith(b"--srs-boundary\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n")
    assert body.endswith(XML + b"\r\n--srs-boundary--\r\n")
    assert parse_multipart(body, "srs-boundary") == parts


def test_build_multipart_round_trips_a_cube_body() -> None:
    assert build_multipart(parse_multipart(CUBE_BODY, "uniqueBoundary"), "uniqueBoundary") == CUBE_BODY


def test_build_multipart_refuses_a_boundary_that_occurs_in_a_part() -> None:
    part = BodyPart(Headers(), b"oops --clash inside")

    with pytest.raises(SipParseError) as info:
        build_multipart([part], "clash")

    assert str(info.value) == "multipart boundary 'clash' occurs inside a part body"


def test_body_parts_of_a_single_part_message_is_that_part() -> None:
    raw = (
        b"INVITE sip:srs@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:srs@192.0.2.9>\r\nCall-ID: one@x\r\nCSeq: 1 INVITE\r\n"
        b"Content-Type: application/sdp\r\nContent-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
    )

    parts = parse_message(raw).body_parts()

    assert [(p.content_type, p.body) for p in parts] == [("application/sdp", SDP)]


def test_body_parts_of_a_multipart_without_boundary_is_an_error() -> None:
    raw = (
        b"INVITE sip:srs@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:srs@192.0.2.9>\r\nCall-ID: one@x\r\nCSeq: 1 INVITE\r\n"
        b"Content-Type: multipart/mixed\r\nContent-Length: 4\r\n\r\nbody"
    )

    with pytest.raises(SipParseError) as info:
        parse_message(raw).body_parts()

    assert str(info.value) == "multipart body without boundary parameter"
