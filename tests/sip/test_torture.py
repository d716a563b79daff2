"""Torture cases in the spirit of RFC 4475, written for this parser.

Each valid case must parse, give the expected values and re-serialize into a
canonical message that parses to the same thing; each invalid case must fail
with an exact message.
"""

from __future__ import annotations

import pytest

from callvault.sip.message import Request, Response, SipParseError, parse_message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def reparsed(raw: bytes) -> Request | Response:
    """Parse, serialize, parse again: the canonical form must be stable and mean the same."""
    message = parse_message(raw)
    canonical = bytes(message)
    again = parse_message(canonical)
    assert bytes(again) == canonical
    assert again.headers.items() == message.headers.items()
    assert again.body == message.body
    return again


# A whitespace-heavy INVITE (like RFC 4475 "wsinv"): folding in many places, tabs, odd case,
# spaces around HCOLON, SLASH, SEMI and EQUAL, escaped quotes in display names.
WSINV = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : 150\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;rport;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n"
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.3\n"
    "s=-\n"
    "c=IN IP4 192.0.2.4\n"
    "t=0 0\n"
    "m=audio 49217 RTP/AVP 0 12\n"
    "m=video 3227 RTP/AVP 31\n"
    "a=rtpmap:31 LPC\n"
)


def test_it_survives_whitespace_and_folding_everywhere() -> None:
    message = reparsed(WSINV)

    assert isinstance(message, Request)
    assert message.to.uri.user == "vivekg"
    assert message.to.tag == "1918181833n"
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.from_.tag == "98asjd8"
    assert message.max_forwards == 68
    assert message.cseq == (9, "INVITE")
    assert [(via.transport, via.host, via.branch) for via in message.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("Subject") == ""
    assert message.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    contact = message.contact
    assert contact is not None
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert str(message.route[0].uri) == "sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    assert len(message.body) == 150


def test_it_accepts_unknown_methods_with_every_token_character() -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    raw = crlf(
        f"{method} sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
        f"@example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
        'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
        "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n"
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
        '"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9";tag=_token~1\'+`*%!-.\n'
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
        f"CSeq: 139122385 {method}\n"
        "Max-Forwards: 255\n"
        "extensionHeader-!.%*+_`'~: \xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\n"
        "Content-Length: 0\n"
        "\n"
    ).replace(b"\\\x00", b"\\\x01")  # a NUL byte in a header is refused; see the next test

    message = reparsed(raw)

    assert isinstance(message, Request)
    assert message.method == method
    assert message.cseq == (139122385, method)
    assert message.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_.tag == "_token~1'+`*%!-."
    assert message.to.display_name == "BEL:\x07 NUL:\x01 DEL:\x7f"
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_it_refuses_a_nul_byte_in_a_header_value() -> None:
    raw = crlf(
        "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\n"
        "To: <sip:a@b>\nCall-ID: nul\x00@h\nCSeq: 1 OPTIONS\n\n"
    )

    with pytest.raises(SipParseError) as info:
        parse_message(raw)

    assert str(info.value) == "invalid character in Call-ID header value: 'nul\\x00@h'"


def test_it_keeps_escaped_characters_in_uris_untouched() -> None:
    raw = crlf(
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
        "To: sip:%75se%72@example.com\n"
        "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
        "Max-Forwards: 87\n"
        "Call-ID: esc01.239409asdfakjkn23onasd0-3234\n"
        "CSeq: 234234 INVITE\n"
        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n"
        "Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
        "Content-Length: 0\n"
        "\n"
    )

    message = reparsed(raw)

    assert isinstance(message, Request)
    assert message.request_uri.user == "sips%3Auser%40example.com"
    assert message.to.uri.user == "%75se%72"
    contact = message.contact
    assert contact is not None and contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}


def test_it_accepts_extra_whitespace_in_the_request_line() -> None:
    raw = crlf(
        "INVITE   sip:user@example.com   SIP/2.0  \n"
        "Max-Forwards: 70\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=3\n"
        "Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\nCSeq: 2130706432 INVITE\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\nContact: <sip:caller@host1.example.net>\n"
        "Content-Length: 0\n\n"
    )

    message = reparsed(raw)

    assert isinstance(message, Request)
    assert (message.method, message.uri) == ("INVITE", "sip:user@example.com")


def test_it_accepts_a_display_name_glued_to_the_angle_bracket() -> None:
    raw = crlf(
        "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\n"
        "From: caller<sip:caller@example.com>;tag=323\nMax-Forwards: 70\n"
        "Call-ID: lwsdisp.1234abcd@funky.example.com\n"
        "CSeq: 60 OPTIONS\nVia: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n"
    )

    message = reparsed(raw)

    assert message.from_.display_name == "caller"
    assert message.from_.tag == "323"


def test_it_accepts_unknown_uri_schemes_and_transports() -> None:
    raw = crlf(
        "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\n"
        "To: <isbn:2983792873>\nFrom: <sip:user@example.com>;tag=384\nMax-Forwards: 3\n"
        "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\nCSeq: 3923423 OPTIONS\n"
        "Via: SIP/2.0/SCTP t1.example.com;branch=z9hG4bKkdjuw\n"
        "Via: SIP/2.0/UNKNOWN t2.example.com;branch=z9hG4bKklasjdhf\nl: 0\n\n"
    )

    message = reparsed(raw)

    assert isinstance(message, Request)
    assert message.request_uri.scheme == "nobodyknowsthisscheme"
    assert message.to.uri.opaque == "2983792873"
    assert [via.transport for via in message.vias] == ["SCTP", "UNKNOWN"]


def test_it_accepts_long_values_and_many_headers() -> None:
    long_value = "x" * 8000
    vias = "".join(f"Via: SIP/2.0/UDP proxy{i}.example.com;branch=z9hG4bK{i:04d}\n" for i in range(80))
    raw = crlf(
        "INVITE sip:srs@example.com SIP/2.0\n"
        f"{vias}"
        f'From: "{"L" * 1000}" <sip:{"u" * 500}@example.com>;tag={"t" * 300}\n'
        "To: <sip:srs@example.com>\n"
        f"Call-ID: {'c' * 2000}@example.com\n"
        "CSeq: 1 INVITE\n"
        f"X-Long: {long_value}\n"
        "Contact: " + ", ".join(f"<sip:c{i}@example.com>" for i in range(100)) + "\n"
        "Content-Length: 0\n\n"
    )

    message = reparsed(raw)

    assert len(message.vias) == 80
    assert message.vias[79].branch == "z9hG4bK0079"
    assert message.from_.display_name == "L" * 1000
    assert message.headers.get("X-Long") == long_value
    assert len(message.contacts) == 100


def test_it_reads_a_response_without_reason_phrase() -> None:
    raw = crlf(
        "SIP/2.0 100\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
        "Call-ID: noreason.asndj203insdf99223ndf\nCSeq: 35 INVITE\n"
        "From: <sip:user@example.com>;tag=39ansfi3\n"
        "To: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\n\n"
    )

    message = parse_message(raw)

    assert isinstance(message, Response)
    assert (message.status, message.reason) == (100, "")


def test_it_reads_a_utf8_reason_phrase() -> None:
    reason = "\u5927\u5e1d\u5c0f\u4e8c \u0411\u043e\u0436\u0435"
    raw = (
        f"SIP/2.0 200 {reason}\r\nVia: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
        "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\nCSeq: 35 INVITE\r\n"
        "From: sip:user@example.com;tag=11141343\r\n"
        "To: sip:user@example.edu;tag=2229\r\nContent-Length: 0\r\n\r\n"
    ).encode()

    message = parse_message(raw)

    assert isinstance(message, Response)
    assert message.reason == reason
    assert bytes(message) == raw


def test_a_second_message_in_the_same_datagram_is_ignored() -> None:
    first = crlf(
        "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: sip:a@example.com;tag=1\n"
        "Call-ID: dblreq@example.com\nCSeq: 1 OPTIONS\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "Content-Length: 0\n\n"
    )

    assert bytes(parse_message(first + first.replace(b"CSeq: 1", b"CSeq: 2"))) == first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((b"Content-Length: 0", b"Content-Length: -999"), "invalid Content-Length: '-999'"),
        (
            (b"Content-Length: 0", b"Content-Length: 0\r\nContent-Length: 10"),
            "conflicting Content-Length headers: 0, 10",
        ),
        (
            (b"Content-Length: 0", b"Content-Length: 9999"),
            "Content-Length 9999 exceeds the 0 bytes of body received",
        ),
        (
            (b"CSeq: 1 OPTIONS", b"CSeq: 36893488147419103232 OPTIONS"),
            "CSeq number out of range: 36893488147419103232",
        ),
        ((b"CSeq: 1 OPTIONS", b"CSeq: 0xA OPTIONS"), "invalid CSeq: '0xA OPTIONS'"),
        ((b"CSeq: 1 OPTIONS", b"CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS"), "multiple CSeq headers"),
        (
            (b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"),
            "CSeq method 'INVITE' does not match request method 'OPTIONS'",
        ),
        (
            (b"OPTIONS sip:user@example.com", b"OPTIONS <sip:user@example.com>"),
            "invalid Request-URI: '<sip:user@example.com>'",
        ),
        (
            (b"OPTIONS sip:user@example.com", b'OPTIONS sip:user@example.com;lr="x y"'),
            "malformed request line: 'OPTIONS sip:user@example.com;lr=\"x y\" SIP/2.0'",
        ),
        ((b"SIP/2.0\r\nTo", b"SIP/7.0\r\nTo"), "unsupported SIP version: 'SIP/7.0'"),
        (
            (b"To: sip:user@example.com", b'To: "Mr. J. User <sip:j.user@example.com>'),
            "unterminated quoted string in '\"Mr. J. User <sip:j.user@example.com>'",
        ),
        (
            (b"branch=z9hG4bK1", b"branch=z9hG4bK1;;,;,,"),
            "invalid parameter '' in 'SIP/2.0/UDP h;branch=z9hG4bK1;;'",
        ),
        ((b"Max-Forwards: 70", b"Max-Forwards: 300000000"), "invalid Max-Forwards: '300000000'"),
        (
            (b"To: sip:user@example.com", b"To: sip:user@example.com, sip:other@example.com"),
            "unexpected comma in 'sip:user@example.com, sip:other@example.com'",
        ),
    ],
    ids=[
        "negative-content-length",
        "multiple-content-length",
        "content-length-over-datagram",
        "huge-cseq",
        "hex-cseq",
        "two-cseq",
        "cseq-method-mismatch",
        "uri-in-angle-brackets",
        "space-in-request-uri",
        "bad-version",
        "unbalanced-quotes",
        "empty-via-params",
        "huge-max-forwards",
        "two-to-values",
    ],
)
def test_it_rejects_torture_malformations_precisely(change: tuple[bytes, bytes], message: str) -> None:
    base = crlf(
        "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: sip:a@example.com;tag=1\n"
        "Call-ID: torture@example.com\nCSeq: 1 OPTIONS\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "Max-Forwards: 70\nContent-Length: 0\n\n"
    )
    old, new = change
    assert old in base

    with pytest.raises(SipParseError) as info:
        parse_message(base.replace(old, new, 1))

    assert str(info.value) == message
