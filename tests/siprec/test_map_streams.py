"""Which SDP m-line carries whose voice: metadata, vendor hints and the metadata-free fallback."""

from __future__ import annotations

import pytest

from callvault.sdp import SessionDescription
from callvault.siprec import StreamInfo, apply_update, map_streams, parse_metadata
from tests.siprec.multipart import load_offer


def mapped(name: str, from_aor: str | None = None) -> list[tuple[str | None, str, str | None]]:
    offer = load_offer(name)
    metadata = parse_metadata(offer.metadata) if offer.metadata is not None else None
    infos = map_streams(metadata, SessionDescription.parse(offer.sdp), from_aor=from_aor)
    assert [info.index for info in infos] == list(range(len(infos)))
    return [(info.label, info.role, info.participant.aor if info.participant else None) for info in infos]


def sdp_with(*media_lines: str) -> SessionDescription:
    head = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0"]
    return SessionDescription.parse("\r\n".join(head + list(media_lines)) + "\r\n")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "cisco-cube-offer.txt",
            [("1", "caller", "sip:0312345678@10.20.30.1"), ("2", "callee", "sip:2001@10.20.30.41")],
        ),
        (
            "broadworks-offer.txt",
            [
                ("10", "caller", "sip:09012345678@203.0.113.145"),
                ("20", "callee", "sip:callcenter@sbc.example.jp"),
            ],
        ),
        (
            "avaya-draft-offer.txt",
            [
                ("caller-leg", "caller", "sip:0312345678@sm.example.co.jp"),
                ("callee-leg", "callee", "sip:4102@sm.example.co.jp"),
            ],
        ),
        (
            "legacy-content-type-offer.txt",
            [("1", "caller", "tel:0120123456"), ("2", "callee", "sip:agent.suzuki@contact.example.jp")],
        ),
        ("opensips-offer.txt", [("1", "caller", None), ("2", "callee", None)]),
        ("cisco-inactive-offer.txt", [("1", "caller", None), ("2", "callee", None)]),
        ("metaswitch-mixed-offer.txt", [("mixed-1", "mixed", None)]),
        ("no-metadata-offer.txt", [("1", "caller", None), ("2", "callee", None)]),
    ],
)
def test_roles_and_senders_per_vendor(name: str, expected: list[tuple[str | None, str, str | None]]) -> None:
    assert mapped(name) == expected


def test_sonus_calldata_from_header_makes_the_second_stream_the_caller() -> None:
    # The first stream is sent by the called party here; only the vendor's callData says so.
    assert mapped("sonus-calldata-offer.txt") == [
        ("1", "callee", "0359998888@198.51.100.72"),
        ("2", "caller", "+81312345678@198.51.100.55"),
    ]


def test_oracle_calling_party_flag_overrides_sdp_order() -> None:
    assert mapped("oracle-sbc-offer.txt") == [
        ("1", "callee", "sip:0455550123@pbx.example.co.jp"),
        ("2", "caller", "tel:+81-3-1234-5678"),
    ]


def test_from_aor_picks_the_caller_by_uri() -> None:
    assert mapped("broadworks-offer.txt", from_aor='"Call Center" <sip:callcenter@SBC.example.jp>;tag=1') == [
        ("10", "callee", "sip:09012345678@203.0.113.145"),
        ("20", "caller", "sip:callcenter@sbc.example.jp"),
    ]


def test_from_aor_matches_national_and_e164_forms_of_a_japanese_number() -> None:
    assert mapped("cisco-cube-offer.txt", from_aor="sip:2001@pbx.example.jp") == [
        ("1", "callee", "sip:0312345678@10.20.30.1"),
        ("2", "caller", "sip:2001@10.20.30.41"),
    ]
    assert mapped("legacy-content-type-offer.txt", from_aor="<tel:+81120123456>") == [
        ("1", "caller", "tel:0120123456"),
        ("2", "callee", "sip:agent.suzuki@contact.example.jp"),
    ]
    assert mapped("broadworks-offer.txt", from_aor="sip:+819012345678@carrier.example.ne.jp") == [
        ("10", "caller", "sip:09012345678@203.0.113.145"),
        ("20", "callee", "sip:callcenter@sbc.example.jp"),
    ]


def test_unmatched_from_aor_falls_back_to_sdp_order() -> None:
    assert mapped("broadworks-offer.txt", from_aor="sip:nobody@example.jp")[0][1] == "caller"


def test_stream_infos_carry_stream_ids_even_without_senders() -> None:
    offer = load_offer("opensips-offer.txt")
    assert offer.metadata is not None
    infos = map_streams(parse_metadata(offer.metadata), SessionDescription.parse(offer.sdp))
    assert infos == [
        StreamInfo(0, "1", "FlH7kTSiRrDvqrt64uob2x==", "caller", None),
        StreamInfo(1, "2", "5DMPeeCKSwHzUKKyQF3aTx==", "callee", None),
    ]


def test_after_a_transfer_the_new_party_is_the_callee_on_the_reused_stream() -> None:
    first, second = load_offer("cisco-cube-offer.txt"), load_offer("cisco-cube-transfer-reinvite.txt")
    assert first.metadata is not None and second.metadata is not None
    merged = apply_update(parse_metadata(first.metadata), parse_metadata(second.metadata))
    infos = map_streams(merged, SessionDescription.parse(second.sdp))
    assert [(i.role, i.participant.name if i.participant else None) for i in infos] == [
        ("caller", None),
        ("callee", "山田 太郎"),
    ]
    assert infos[1].participant is not None and infos[1].participant.number == "2002"


def test_without_metadata_a_single_m_line_is_mixed() -> None:
    infos = map_streams(None, sdp_with("m=audio 4000 RTP/AVP 0", "a=sendonly"))
    assert infos == [StreamInfo(0, None, None, "mixed", None)]


def test_without_metadata_more_than_two_audio_m_lines_are_unknown_and_video_is_ignored() -> None:
    three = map_streams(
        None, sdp_with("m=audio 4000 RTP/AVP 0", "m=audio 4002 RTP/AVP 0", "m=audio 4004 RTP/AVP 0")
    )
    assert [i.role for i in three] == ["unknown", "unknown", "unknown"]
    with_video = map_streams(
        None, sdp_with("m=audio 4000 RTP/AVP 0", "m=video 4002 RTP/AVP 31", "m=audio 4004 RTP/AVP 0")
    )
    assert [i.role for i in with_video] == ["caller", "unknown", "callee"]


def test_m_line_whose_label_is_unknown_to_the_metadata_is_unknown() -> None:
    offer = load_offer("cisco-cube-offer.txt")
    assert offer.metadata is not None
    sdp = SessionDescription.parse(offer.sdp.decode().replace("a=label:2", "a=label:99"))
    infos = map_streams(parse_metadata(offer.metadata), sdp)
    assert [(i.role, i.stream_id) for i in infos] == [
        ("caller", "Aq5YbGQ1EfCb2uD/Ux9KLw=="),
        ("unknown", None),
    ]


def test_stream_marked_mixed_by_a_pre_rfc_client_is_mixed() -> None:
    metadata = parse_metadata(
        b'<recording xmlns="urn:ietf:params:xml:ns:recording">'
        b'<participant id="a" session="s"><aor>sip:0312345678@example.jp</aor><send>m</send></participant>'
        b'<stream id="m" session="s"><label>1</label><mode>mixed</mode></stream>'
        b"</recording>"
    )
    infos = map_streams(metadata, sdp_with("m=audio 4000 RTP/AVP 0", "a=label:1"))
    assert infos == [StreamInfo(0, "1", "m", "mixed", None)]
