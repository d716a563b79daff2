"""RFC 7865 recording metadata as sent by real recording clients, and hostile documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from callvault.siprec import (
    DRAFT_NS,
    LEGACY_CONTENT_TYPE,
    MAX_METADATA_BYTES,
    PRE_RFC_NS,
    RECORDING_NS,
    MetadataError,
    Participant,
    ParticipantSessionAssoc,
    apply_update,
    is_metadata_content_type,
    parse_metadata,
)
from tests.siprec.multipart import ALL_OFFERS, load_offer

WITH_METADATA = [name for name in ALL_OFFERS if load_offer(name).metadata is not None]
JST = timezone(timedelta(hours=9))


def metadata(name: str) -> bytes:
    body = load_offer(name).metadata
    assert body is not None
    return body


def summary(name: str) -> list[tuple[str, str | None, str | None, str | None]]:
    parsed = parse_metadata(metadata(name))
    return [(p.participant_id, p.aor, p.name, p.number) for p in parsed.participants]


def wrap(body: str, namespace: str = RECORDING_NS) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><recording xmlns="{namespace}">{body}</recording>'.encode()


# --- every dialect -------------------------------------------------------------------------------


def test_fixture_set_covers_every_dialect() -> None:
    assert len(WITH_METADATA) == 10
    assert "no-metadata-offer.txt" not in WITH_METADATA


@pytest.mark.parametrize("name", WITH_METADATA)
def test_every_fixture_metadata_parses_with_labels_matching_its_sdp(name: str) -> None:
    parsed = parse_metadata(metadata(name))
    if parsed.data_mode == "complete":
        assert parsed.sessions and parsed.participants and parsed.streams
        assert {s.label for s in parsed.streams} == {
            line.split(":", 1)[1]
            for line in load_offer(name).sdp.decode().splitlines()
            if line.startswith("a=label:")
        }


def test_cisco_cube_participants_streams_and_session() -> None:
    parsed = parse_metadata(metadata("cisco-cube-offer.txt"))
    assert parsed.namespace == RECORDING_NS
    assert parsed.data_mode == "complete"
    assert summary("cisco-cube-offer.txt") == [
        ("Aq3xTmQ1EfCb2tD/Ux9KLw==", "sip:0312345678@10.20.30.1", None, "0312345678"),
        ("Aq3xTmQ1EfCb2vD/Ux9KLw==", "sip:2001@10.20.30.41", "受付", "2001"),
    ]
    assert parsed.participants[1].name_lang == "ja"
    (session,) = parsed.sessions
    assert session.session_id == "Aq3xTmQ1EfCb2sD/Ux9KLw=="
    assert session.sip_session_ids == (
        "5b1c0e92a7734f6d9e1a40c2b8f3d701;remote=00000000000000000000000000000000",
    )
    assert session.start_time == datetime(2024, 4, 1, 1, 15, 42, 310000, tzinfo=UTC)
    assert [(s.stream_id, s.label, s.session_id) for s in parsed.streams] == [
        ("Aq5YbGQ1EfCb2uD/Ux9KLw==", "1", "Aq3xTmQ1EfCb2sD/Ux9KLw=="),
        ("Aq5YbGQ1EfCb2wD/Ux9KLw==", "2", "Aq3xTmQ1EfCb2sD/Ux9KLw=="),
    ]
    assert [(a.participant_id, a.send, a.recv) for a in parsed.participant_stream_assocs] == [
        ("Aq3xTmQ1EfCb2tD/Ux9KLw==", ("Aq5YbGQ1EfCb2uD/Ux9KLw==",), ("Aq5YbGQ1EfCb2wD/Ux9KLw==",)),
        ("Aq3xTmQ1EfCb2vD/Ux9KLw==", ("Aq5YbGQ1EfCb2wD/Ux9KLw==",), ("Aq5YbGQ1EfCb2uD/Ux9KLw==",)),
    ]
    assert parsed.extensions == ()


def test_sonus_prefixed_pre_rfc_namespace_and_calldata_extension() -> None:
    parsed = parse_metadata(metadata("sonus-calldata-offer.txt"))
    assert parsed.namespace == PRE_RFC_NS
    assert summary("sonus-calldata-offer.txt") == [
        ("OWE1ZjQyYzItM2IxZS0xMQ==", "+81312345678@198.51.100.55", "山田 太郎", "+81312345678"),
        ("OWE1ZjQyYzMtM2IxZS0xMQ==", "0359998888@198.51.100.72", None, "0359998888"),
    ]
    assert parsed.groups[0].group_id == "OWE1ZjQyYzAtM2IxZS0xMQ=="
    assert parsed.sessions[0].group_ref == "OWE1ZjQyYzAtM2IxZS0xMQ=="
    (call_data,) = parsed.extensions_named("callData")
    assert (call_data.namespace, call_data.parent_kind, call_data.parent_id) == (
        "urn:ietf:params:xml:ns:callData",
        "group",
        "OWE1ZjQyYzAtM2IxZS0xMQ==",
    )
    assert call_data.fields == {
        "fromhdr": '"山田 太郎" <sip:+81312345678@198.51.100.55>;tag=Jq8vXk2Lm4pz',
        "tohdr": "<sip:0359998888@198.51.100.72>;tag=gK0a17c3e9",
        "callid": "7c1e9b52-11aa-4d3e-9f20-5254003a77b1",
        "gcid": "318840771",
    }
    assert call_data.xml.startswith('<ns0:callData xmlns:ns0="urn:ietf:params:xml:ns:callData">')
    assert "<ns0:gcid>318840771</ns0:gcid>" in call_data.xml


def test_broadworks_camel_case_datamode_and_zoneless_times_taken_as_utc() -> None:
    parsed = parse_metadata(metadata("broadworks-offer.txt"))
    assert parsed.data_mode == "complete"
    assert summary("broadworks-offer.txt") == [
        ("7c3ef839cb1cd459ec2f", "sip:09012345678@203.0.113.145", None, "09012345678"),
        ("0123abcd9876fedc4567", "sip:callcenter@sbc.example.jp", None, None),
    ]
    assert parsed.session_recording_assocs[0].associate_time == datetime(2024, 6, 3, 9, 12, 44, tzinfo=UTC)
    assert [(s.label, s.stream_id) for s in parsed.streams] == [
        ("10", "f7a99a1af13db919fd1b"),
        ("20", "372eee4726730a219103"),
    ]


def test_opensips_metadata_without_any_associations() -> None:
    parsed = parse_metadata(metadata("opensips-offer.txt"))
    assert summary("opensips-offer.txt") == [
        (
            "QXVqT91dT2Drzfqnv4TUSg==",
            "sip:0612345678@198.51.100.239",
            "sales_desk;lang=ja-JP;id=7",
            "0612345678",
        ),
        ("32Jta7fGSZvjEO1wFlWYRR==", "sip:0752223333@sip.example.jp", None, "0752223333"),
    ]
    assert parsed.participant_stream_assocs == ()
    assert parsed.participant_session_assocs == ()


def test_cisco_inactive_offer_has_empty_stream_associations() -> None:
    parsed = parse_metadata(metadata("cisco-inactive-offer.txt"))
    assert [(a.send, a.recv) for a in parsed.participant_stream_assocs] == [((), ()), ((), ())]
    assert parsed.senders("HcaHh9bYFfvyz72eGJbJzB==") == []


def test_oracle_sbc_draft_attributes_inline_associations_and_extensiondata() -> None:
    parsed = parse_metadata(metadata("oracle-sbc-offer.txt"))
    assert parsed.namespace == PRE_RFC_NS
    assert summary("oracle-sbc-offer.txt") == [
        ("r2Jm8VqLTe6Bd0xWk1sH4A==", "sip:0455550123@pbx.example.co.jp", "コールセンター", "0455550123"),
        ("h7Fs3NcPQk2Ly9uAa6wR0B==", "tel:+81-3-1234-5678", "山田 太郎", "+81312345678"),
    ]
    assert [(a.participant_id, a.session_id) for a in parsed.participant_session_assocs] == [
        ("r2Jm8VqLTe6Bd0xWk1sH4A==", "Xk4eP2hbR0uY7q1dZc3mVw=="),
        ("h7Fs3NcPQk2Ly9uAa6wR0B==", "Xk4eP2hbR0uY7q1dZc3mVw=="),
    ]
    assert [(a.participant_id, a.send, a.recv) for a in parsed.participant_stream_assocs] == [
        ("r2Jm8VqLTe6Bd0xWk1sH4A==", ("c0Tq7Lm1S2aVb8yNn4eZ3g==",), ("p9Wd2Kx6QhuJe5rT0vYs1Q==",)),
        ("h7Fs3NcPQk2Ly9uAa6wR0B==", ("p9Wd2Kx6QhuJe5rT0vYs1Q==",), ("c0Tq7Lm1S2aVb8yNn4eZ3g==",)),
    ]
    assert [s.mode for s in parsed.streams] == ["separate", "separate"]
    assert [(e.parent_kind, e.parent_id, e.fields.get("callingParty")) for e in parsed.extensions] == [
        ("session", "Xk4eP2hbR0uY7q1dZc3mVw==", None),
        ("participant", "r2Jm8VqLTe6Bd0xWk1sH4A==", "false"),
        ("participant", "h7Fs3NcPQk2Ly9uAa6wR0B==", "true"),
    ]
    assert parsed.extensions[0].fields == {
        "ucid": "00FA0800230C4F1A2B3C4D;encoding=hex",
        "callerOrig": "true",
    }
    assert parsed.extensions[2].fields["header/value"] == "<sip:+81312345678@ims.example.ne.jp>"


def test_draft_siprec_namespace_with_aor_and_name_children() -> None:
    parsed = parse_metadata(metadata("avaya-draft-offer.txt"))
    assert parsed.namespace == DRAFT_NS
    assert summary("avaya-draft-offer.txt") == [
        (
            "urn:uuid:1a2b3c4d-0000-4111-8222-333344445555",
            "sip:0312345678@sm.example.co.jp",
            "山田 太郎",
            "0312345678",
        ),
        ("urn:uuid:1a2b3c4d-0000-4111-8222-666677778888", "sip:4102@sm.example.co.jp", "佐藤 花子", "4102"),
    ]
    (session,) = parsed.sessions
    assert session.group_ref == "urn:uuid:3f1d2c4b-8a9e-4b7d-9c21-6e5f4a3b2c10"
    assert session.start_time == datetime(2024, 9, 2, 5, 40, tzinfo=JST)
    assert parsed.senders("urn:uuid:aaaa0002-0000-4000-8000-000000000002")[0].name == "佐藤 花子"


def test_legacy_content_type_is_recognised_and_its_body_parses() -> None:
    offer = load_offer("legacy-content-type-offer.txt")
    assert offer.metadata_type == LEGACY_CONTENT_TYPE
    assert is_metadata_content_type("application/rs-metadata")
    assert is_metadata_content_type("Application/RS-Metadata+XML; charset=UTF-8")
    assert not is_metadata_content_type("application/sdp")
    assert summary("legacy-content-type-offer.txt") == [
        ("ZGVtby1wYXJ0LWNhbGxlcg==", "tel:0120123456", None, "0120123456"),
        ("ZGVtby1wYXJ0LWFnZW50MQ==", "sip:agent.suzuki@contact.example.jp", "鈴木 一郎", None),
    ]


def test_metaswitch_mixed_stream_has_two_senders() -> None:
    parsed = parse_metadata(metadata("metaswitch-mixed-offer.txt"))
    assert [p.participant_id for p in parsed.senders("bXN3LXN0cmVhbS1taXg=")] == [
        "bXN3LXBhcnQtQQ==",
        "bXN3LXBhcnQtQg==",
    ]


def test_shift_jis_metadata_is_transcoded_before_parsing() -> None:
    document = (
        '<?xml version="1.0" encoding="Shift_JIS"?>'
        f'<recording xmlns="{RECORDING_NS}"><participant participant_id="p1">'
        '<nameID aor="sip:0312345678@pbx.example.jp"><name xml:lang="ja">山田 太郎</name></nameID>'
        "</participant></recording>"
    ).encode("shift_jis")
    assert parse_metadata(document).participants[0].name == "山田 太郎"


def test_elements_in_any_order_unqualified_and_unknown_children_are_kept() -> None:
    parsed = parse_metadata(
        b"<recording>"
        b'<stream stream_id="s1" session_id="x"><label>7</label>'
        b'<vendor:hint xmlns:vendor="urn:example">a</vendor:hint>'
        b"</stream>"
        b'<participantstreamassoc participant_id="p1"><send>s1</send>'
        b'<x:cid xmlns:x="urn:example:cisco">9</x:cid></participantstreamassoc>'
        b'<participant participant_id="p1"><nameID aor="sip:+81312345678@example.jp"/></participant>'
        b"<futureElement>42</futureElement>"
        b"<DataMode>Partial</DataMode>"
        b"</recording>"
    )
    assert parsed.namespace == ""
    assert parsed.data_mode == "partial"
    assert parsed.senders("s1") == [Participant("p1", "sip:+81312345678@example.jp")]
    assert [(e.name, e.parent_kind, e.parent_id, e.xml) for e in parsed.extensions] == [
        ("hint", "stream", "s1", '<ns0:hint xmlns:ns0="urn:example">a</ns0:hint>'),
        ("cid", "participantstreamassoc", "p1", '<ns0:cid xmlns:ns0="urn:example:cisco">9</ns0:cid>'),
        ("futureElement", "recording", None, "<futureElement>42</futureElement>"),
    ]


def test_missing_datamode_means_complete_and_unreadable_times_are_none() -> None:
    parsed = parse_metadata(
        wrap(
            '<session session_id="s"><start-time>yesterday</start-time><stop-time>2024-01-01T00:00:00+09:00'
            "</stop-time></session>"
        )
    )
    assert parsed.data_mode == "complete"
    assert parsed.sessions[0].start_time is None
    assert parsed.sessions[0].stop_time == datetime(2023, 12, 31, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("aor", "number"),
    [
        ("sip:+81312345678@ims.example.ne.jp;user=phone", "+81312345678"),
        ("tel:03-1234-5678;phone-context=+81", "0312345678"),
        ("sips:%2B81312345678@example.jp", "+81312345678"),
        ("<sip:0312345678@example.jp>", "0312345678"),
        ("0312345678@192.0.2.1", "0312345678"),
        ("sip:yamada@example.jp", None),
        ("sip:03abc@example.jp", None),
        ("mailto:yamada@example.jp", None),
        ("", None),
    ],
)
def test_participant_number_is_the_numeric_user_part(aor: str, number: str | None) -> None:
    assert Participant("p", aor or None).number == number


# --- hostile and broken documents ------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE recording [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>&lol4;</datamode></recording>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
<participant participant_id="p"><nameID aor="sip:a@b"><name>&xxe;</name></nameID></participant>
</recording>"""

PLAIN_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE recording SYSTEM "http://attacker.example/recording.dtd">
<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY, PLAIN_DTD], ids=["bomb", "xxe", "dtd"])
def test_documents_with_a_dtd_are_refused(document: bytes) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(document)
    assert str(caught.value) == "DTD is not allowed in recording metadata"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"", "empty recording metadata"),
        (b"  \r\n", "empty recording metadata"),
        (b"<recording><session></recording>", "malformed XML: mismatched tag: line 1, column 22"),
        (b"<recording>&nbsp;</recording>", "malformed XML: undefined entity: line 1, column 11"),
        (b"<recording", "malformed XML: unclosed token: line 1, column 0"),
        (b'<?xml version="1.0" encoding="klingon"?><recording/>', "unsupported XML encoding: 'klingon'"),
        (
            b'<?xml version="1.0" encoding="Shift_JIS"?><recording>\x81</recording>',
            "metadata is not valid Shift_JIS",
        ),
        (b"<metadata/>", "root element must be <recording>, got <metadata>"),
        (b'<recording xmlns="urn:example:other"/>', "unsupported metadata namespace: 'urn:example:other'"),
        (wrap("<datamode>sometimes</datamode>"), "invalid datamode: 'sometimes'"),
        (wrap("<participant><nameID aor='sip:a@b'/></participant>"), "<participant> without participant_id"),
        (wrap("<stream session_id='s'/>"), "<stream> without stream_id"),
        (wrap("<session/>"), "<session> without session_id"),
        (wrap("<group/>"), "<group> without group_id"),
        (wrap("<participantstreamassoc/>"), "<participantstreamassoc> without participant_id"),
        (
            wrap("<participantsessionassoc participant_id='p'/>"),
            "<participantsessionassoc> without session_id",
        ),
        (wrap("<sessionrecordingassoc/>"), "<sessionrecordingassoc> without session_id"),
    ],
)
def test_broken_documents_raise_precise_errors(document: bytes, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(document)
    assert str(caught.value) == message


def test_oversized_metadata_is_refused_before_parsing() -> None:
    document = wrap("<!--" + "x" * MAX_METADATA_BYTES + "-->")
    with pytest.raises(MetadataError) as caught:
        parse_metadata(document)
    assert str(caught.value) == f"metadata is {len(document)} bytes, more than the 1048576 allowed"


def test_too_many_elements_are_refused() -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(wrap("<x/>" * 10_000))
    assert str(caught.value) == "metadata has more than 10000 elements"


def test_too_deep_nesting_is_refused() -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(wrap("<x>" * 40 + "</x>" * 40))
    assert str(caught.value) == "metadata is nested deeper than 32 levels"


# --- partial updates -------------------------------------------------------------------------------


def test_transfer_update_adds_the_new_party_and_retires_the_old_one() -> None:
    base = parse_metadata(metadata("cisco-cube-offer.txt"))
    update = parse_metadata(metadata("cisco-cube-transfer-reinvite.txt"))
    assert update.data_mode == "partial"
    merged = apply_update(base, update)
    assert merged.data_mode == "complete"
    assert [p.participant_id for p in merged.participants] == [
        "Aq3xTmQ1EfCb2tD/Ux9KLw==",
        "Aq3xTmQ1EfCb2vD/Ux9KLw==",
        "Aq3xTmQ1EfCb2xD/Ux9KLw==",
    ]
    assert [p.name for p in merged.active_participants()] == [None, "山田 太郎"]
    assert merged.participant_session_assocs[1] == ParticipantSessionAssoc(
        "Aq3xTmQ1EfCb2vD/Ux9KLw==",
        "Aq3xTmQ1EfCb2sD/Ux9KLw==",
        datetime(2024, 4, 1, 1, 15, 42, 310000, tzinfo=UTC),
        datetime(2024, 4, 1, 1, 17, 5, 2000, tzinfo=UTC),
    )
    assert [p.participant_id for p in merged.senders("Aq5YbGQ1EfCb2wD/Ux9KLw==")] == [
        "Aq3xTmQ1EfCb2xD/Ux9KLw=="
    ]
    assert [p.participant_id for p in merged.senders("Aq5YbGQ1EfCb2uD/Ux9KLw==")] == [
        "Aq3xTmQ1EfCb2tD/Ux9KLw=="
    ]
    assert merged.sessions == base.sessions
    assert merged.streams == base.streams


def test_partial_update_overrides_only_the_fields_it_carries() -> None:
    base = parse_metadata(metadata("avaya-draft-offer.txt"))
    update = parse_metadata(
        wrap(
            "<dataMode>partial</dataMode>"
            '<participant id="urn:uuid:1a2b3c4d-0000-4111-8222-666677778888">'
            "<name>佐藤 花子 (転送)</name></participant>"
            '<session id="urn:uuid:9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"><stop-time>2024-09-02T06:00:00+09:00'
            "</stop-time><sipSessionID>new-call-id</sipSessionID></session>",
            DRAFT_NS,
        )
    )
    merged = apply_update(base, update)
    agent = merged.participant("urn:uuid:1a2b3c4d-0000-4111-8222-666677778888")
    assert agent is not None
    assert (agent.aor, agent.name, agent.number) == ("sip:4102@sm.example.co.jp", "佐藤 花子 (転送)", "4102")
    (session,) = merged.sessions
    assert session.start_time == datetime(2024, 9, 2, 5, 40, tzinfo=JST)
    assert session.stop_time == datetime(2024, 9, 2, 6, 0, tzinfo=JST)
    assert session.sip_session_ids == ("new-call-id",)


def test_complete_update_replaces_the_snapshot() -> None:
    base = parse_metadata(metadata("cisco-cube-offer.txt"))
    update = parse_metadata(metadata("broadworks-offer.txt"))
    assert apply_update(base, update) == update


def test_updated_extension_replaces_the_one_at_the_same_place() -> None:
    base = parse_metadata(metadata("sonus-calldata-offer.txt"))
    update = parse_metadata(
        wrap(
            '<datamode>partial</datamode><group group_id="OWE1ZjQyYzAtM2IxZS0xMQ==">'
            "<callData xmlns='urn:ietf:params:xml:ns:callData'><gcid>999</gcid></callData></group>",
            PRE_RFC_NS,
        )
    )
    merged = apply_update(base, update)
    assert [e.fields for e in merged.extensions_named("callData")] == [{"gcid": "999"}]
    assert merged.groups == base.groups
