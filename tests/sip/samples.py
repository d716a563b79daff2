"""Real-shaped SIP messages for the SIP core tests (written for these tests, not captured)."""

from __future__ import annotations

CUBE_SDP = (
    b"v=0\r\n"
    b"o=CiscoSystemsSIP-GW-UserAgent 4537 1811 IN IP4 10.1.1.10\r\n"
    b"s=SIP Call\r\n"
    b"c=IN IP4 10.1.1.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 16384 RTP/AVP 0 101\r\n"
    b"c=IN IP4 10.1.1.10\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendonly\r\n"
    b"a=label:1\r\n"
    b"m=audio 16386 RTP/AVP 0 101\r\n"
    b"c=IN IP4 10.1.1.10\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendonly\r\n"
    b"a=label:2\r\n"
)

CUBE_METADATA = (
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>\r\n"
    b"<datamode>complete</datamode>\r\n"
    b'<session session_id="Xz4Qm9dTEe6POrLEHwChsg==">\r\n'
    b"<sipSessionID>c4d1a7e2b0f35c6d8e9fa0b1c2d3e4f5;remote=00000000000000000000000000000000"
    b"</sipSessionID>\r\n"
    b"<start-time>2024-03-12T10:15:02.121Z</start-time>\r\n"
    b"</session>\r\n"
    b'<participant participant_id="sZp1y9dTEe6POrLEHwChsg==">\r\n'
    b'<nameID aor="sip:+4930123456@10.1.1.10"></nameID>\r\n'
    b"</participant>\r\n"
    b'<stream stream_id="tA4Qm9dTEe6POrLEHwChsg==" session_id="Xz4Qm9dTEe6POrLEHwChsg==">\r\n'
    b"<label>1</label>\r\n"
    b"</stream>\r\n"
    b"</recording>\r\n"
)

CUBE_BODY = (
    b"--uniqueBoundary\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Disposition: session;handling=required\r\n"
    b"\r\n" + CUBE_SDP + b"\r\n"
    b"--uniqueBoundary\r\n"
    b"Content-Type: application/rs-metadata+xml\r\n"
    b"Content-Disposition: recording-session\r\n"
    b"\r\n" + CUBE_METADATA + b"\r\n"
    b"--uniqueBoundary--\r\n"
)

CUBE_INVITE = (
    b"INVITE sip:srs@10.20.30.40:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bK2C1F8A3D\r\n"
    b"Remote-Party-ID: <sip:10.1.1.10>;party=calling;screen=no;privacy=off\r\n"
    b"From: <sip:10.1.1.10>;tag=8B5C0E-1A3\r\n"
    b"To: <sip:srs@10.20.30.40>\r\n"
    b"Date: Tue, 12 Mar 2024 10:15:02 GMT\r\n"
    b"Call-ID: 5E2D4C10-DF6A11EE-8F3AB2C4-1F00A1B2@10.1.1.10\r\n"
    b"Supported: 100rel,timer,resource-priority,replaces,sdp-anat\r\n"
    b"Min-SE:  1800\r\n"
    b"Cisco-Guid: 1575800848-3748008430-2402995908-520135090\r\n"
    b"User-Agent: Cisco-SIPGateway/IOS-17.6.1a\r\n"
    b"Allow: INVITE, OPTIONS, BYE, CANCEL, ACK, PRACK, UPDATE, REFER, SUBSCRIBE, NOTIFY, INFO, REGISTER\r\n"
    b"CSeq: 101 INVITE\r\n"
    b"Timestamp: 1710238502\r\n"
    b"Contact: <sip:10.1.1.10:5060>;+sip.src\r\n"
    b"Expires: 180\r\n"
    b"Allow-Events: telephone-event\r\n"
    b"Max-Forwards: 70\r\n"
    b"Session-ID: c4d1a7e2b0f35c6d8e9fa0b1c2d3e4f5;remote=00000000000000000000000000000000\r\n"
    b"Require: siprec\r\n"
    b"Content-Type: multipart/mixed;boundary=uniqueBoundary\r\n"
    b"Mime-Version: 1.0\r\n"
    b"Content-Length: " + str(len(CUBE_BODY)).encode() + b"\r\n"
    b"\r\n" + CUBE_BODY
)

# An SBC style INVITE: quoted boundary with preamble, display names with escapes, Record-Route,
# IPv6 Contact, a Via chain over TCP.
SBC_SDP = (
    b"v=0\r\n"
    b"o=- 3920149132 3920149132 IN IP4 192.0.2.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=label:rx\r\n"
    b"a=sendonly\r\n"
)
SBC_METADATA = (
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b'<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode></recording>\r\n'
)
SBC_BODY = (
    b"This is a multi-part message in MIME format.\r\n"
    b"\r\n"
    b"------=_Part_0_1429931.1710238502\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n" + SBC_SDP + b"\r\n"
    b"------=_Part_0_1429931.1710238502\r\n"
    b"Content-Type: application/rs-metadata+xml\r\n"
    b"Content-Disposition: recording-session\r\n"
    b"Content-ID: <rs-meta@sbc.example.net>\r\n"
    b"\r\n" + SBC_METADATA + b"\r\n"
    b"------=_Part_0_1429931.1710238502--\r\n"
    b"epilogue text\r\n"
)
SBC_INVITE = (
    b"INVITE sip:recorder@srs.example.net;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK-sbc-4711-1;rport\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bK-pbx-99;received=2001:db8::9\r\n"
    b"Record-Route: <sip:192.0.2.20:5060;transport=tcp;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Recorder \\"SRC\\" Agent" <sip:src@sbc.example.net>;tag=a73kszlfl\r\n'
    b"To: Recorder <sip:recorder@srs.example.net>\r\n"
    b"Call-ID: 2b8f0c1e-7a3d-4c1e-9e0a-6f4b1d2c3a5e\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:src@[2001:db8::20]:5060;transport=tcp>;+sip.src\r\n"
    b"Require: siprec\r\n"
    b"Accept: application/sdp, application/rs-metadata+xml, application/rs-metadata-request+xml\r\n"
    b'Content-Type: multipart/mixed; boundary="----=_Part_0_1429931.1710238502"\r\n'
    b"Content-Length: " + str(len(SBC_BODY)).encode() + b"\r\n"
    b"\r\n" + SBC_BODY
)

OPTIONS_PING = (
    b"OPTIONS sip:srs@10.20.30.40:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bK1D2E3F;rport\r\n"
    b"From: <sip:ping@10.1.1.10>;tag=99AA\r\n"
    b"To: <sip:srs@10.20.30.40>\r\n"
    b"Call-ID: options-1@10.1.1.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def invite(
    *,
    branch: str = "z9hG4bKinv1",
    via_host: str = "10.1.1.10",
    via_extra: str = "",
    call_id: str = "call-1@10.1.1.10",
    cseq: int = 101,
    transport: str = "UDP",
    to_tag: str | None = None,
    method: str = "INVITE",
    cseq_method: str | None = None,
) -> bytes:
    """A small INVITE (or a request on the same transaction: ACK/CANCEL via ``method``)."""
    to = "<sip:srs@10.20.30.40>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:srs@10.20.30.40:5060 SIP/2.0",
        f"Via: SIP/2.0/{transport} {via_host}:5060;branch={branch}{via_extra}",
        "From: <sip:src@10.1.1.10>;tag=from1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:src@10.1.1.10:5060>",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(
    method: str, *, branch: str, cseq: int, to_tag: str | None = "srs1", call_id: str = "call-1@10.1.1.10"
) -> bytes:
    """An in-dialog style request from the SBC (BYE, OPTIONS...)."""
    return invite(branch=branch, cseq=cseq, to_tag=to_tag, method=method, call_id=call_id)
