"""Linking PBX calls with recorded calls in the database (the rule of callvault.apps.pbx.link).

The end-to-end version with a real SIPREC recording is in test_link_e2e.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from callvault.apps.calls.models import Call, Comment
from callvault.apps.pbx.link import link_recorded_call
from callvault.apps.pbx.models import Integration, PbxCall, PbxEvent
from tests.pbx.conftest import Cast, Pbx, make_call

pytestmark = pytest.mark.django_db


def iso(seconds_ago: float) -> str:
    return (timezone.now() - timedelta(seconds=seconds_ago)).isoformat()


def recorded(
    minutes_ago: float, caller: str = "+81312345678", callee: str = "+81501234567", **kw: Any
) -> Call:
    return make_call(None, None, caller=caller, callee=callee, minutes_ago=minutes_ago, source="siprec", **kw)


def test_events_after_the_recording_started_merge_into_the_recorded_call(
    cast: Cast, pbx: Pbx, integration: Integration
) -> None:
    rec = recorded(0.5)  # started 30 s ago
    pbx.signed(
        {
            "event": "ringing",
            "call_id": "c1",
            "time": iso(35),
            "caller": "0312345678",
            "callee": "050-1234-5678",
            "direction": "in",
        }
    )
    r = pbx.signed({"event": "answered", "call_id": "c1", "time": iso(30), "extension": "201"})
    assert r.json()["linked"] is True and r.json()["call_id"] == str(rec.pk)
    assert Call.objects.count() == 3  # call_a, call_b of the cast and the recorded one: no PBX-only row
    rec.refresh_from_db()
    assert rec.source == "siprec" and rec.agent == cast.member  # the PBX said extension 201 answered
    assert rec.metadata["pbx_link"]["rule"] == "numbers"
    assert rec.metadata["pbx"]["call_id"] == "c1"
    assert set(PbxEvent.objects.values_list("call_id", flat=True)) == {rec.pk}
    r = pbx.signed({"event": "ended", "call_id": "c1", "time": iso(0)})
    assert r.json()["call_id"] == str(rec.pk)
    rec.refresh_from_db()
    assert rec.state == "completed" and rec.metadata["pbx"]["duration"] == pytest.approx(30, abs=1)


def test_a_recording_that_appears_later_takes_over_the_pbx_call_with_its_comments(
    cast: Cast, pbx: Pbx, integration: Integration
) -> None:
    pbx.signed(
        {
            "event": "ringing",
            "call_id": "c2",
            "time": iso(40),
            "caller": "0312345678",
            "callee": "0501234567",
            "extension": "201",
        }
    )
    pbx_only = PbxCall.objects.get(pbx_call_id="c2").call
    Comment.objects.create(call=pbx_only, author=cast.member, text="折り返し希望")
    rec = recorded(0.6)
    merged = link_recorded_call(rec.pk)
    assert merged is not None and merged.pk == rec.pk
    assert not Call.objects.filter(pk=pbx_only.pk).exists()
    assert Comment.objects.get().call_id == rec.pk
    assert PbxCall.objects.get(pbx_call_id="c2").call_id == rec.pk


def test_a_sip_call_id_links_even_when_the_numbers_differ(pbx: Pbx, integration: Integration) -> None:
    rec = recorded(3, caller="+81399999999", callee="+81388888888", sip_call_id="abc123@pbx.example")
    r = pbx.signed(
        {
            "event": "answered",
            "call_id": "c3",
            "time": iso(200),
            "caller": "0312345678",
            "sip_call_id": "abc123@pbx.example",
        }
    )
    assert r.json()["linked"] is True
    rec.refresh_from_db()
    assert rec.metadata["pbx_link"]["rule"] == "call_id"


def test_an_id_in_the_recording_metadata_links(pbx: Pbx) -> None:
    rec = recorded(1, metadata={"extensiondata": {"ucid": "00001234561732712345"}})
    r = pbx.signed({"event": "answered", "call_id": "00001234561732712345", "time": iso(60)})
    assert r.json()["call_id"] == str(rec.pk)


def test_calls_too_far_apart_in_time_are_not_linked(pbx: Pbx) -> None:
    rec = recorded(5)  # five minutes ago
    r = pbx.signed(
        {"event": "answered", "call_id": "c4", "time": iso(0), "caller": "0312345678", "callee": "0501234567"}
    )
    assert r.json()["linked"] is False and r.json()["call_id"] != str(rec.pk)


def test_other_numbers_are_not_linked(pbx: Pbx) -> None:
    recorded(0.5, caller="+81311111111", callee="+81322222222")
    r = pbx.signed(
        {
            "event": "answered",
            "call_id": "c5",
            "time": iso(30),
            "caller": "0312345678",
            "callee": "0501234567",
        }
    )
    assert r.json()["linked"] is False


def test_two_equally_close_recordings_are_ambiguous_and_nothing_is_linked(pbx: Pbx) -> None:
    a = recorded(0.5)
    b = recorded(0.5)
    Call.objects.filter(pk=b.pk).update(started_at=a.started_at)
    r = pbx.signed(
        {
            "event": "answered",
            "call_id": "c6",
            "time": a.started_at.isoformat(),
            "caller": "0312345678",
            "callee": "0501234567",
        }
    )
    assert r.json()["linked"] is False


def test_an_sbc_seeing_the_did_and_a_pbx_reporting_the_extension_link_on_the_external_number(
    pbx: Pbx,
) -> None:
    rec = recorded(0.5, caller="+819012345678", callee="+81501234567")  # the SBC: customer → DID
    r = pbx.signed(
        {"event": "answered", "call_id": "c7", "time": iso(30), "caller": "09012345678", "callee": "201"}
    )  # the PBX: customer → extension
    assert r.json()["call_id"] == str(rec.pk)


def test_a_recorded_call_is_linked_to_one_pbx_call_only(pbx: Pbx) -> None:
    rec = recorded(0.5)
    pbx.signed(
        {
            "event": "answered",
            "call_id": "c8",
            "time": iso(30),
            "caller": "0312345678",
            "callee": "0501234567",
        }
    )
    r = pbx.signed(
        {
            "event": "answered",
            "call_id": "c9",
            "time": iso(30),
            "caller": "0312345678",
            "callee": "0501234567",
        }
    )
    assert r.json()["linked"] is False and r.json()["call_id"] != str(rec.pk)


def test_the_same_customer_on_another_extension_is_another_call(pbx: Pbx) -> None:
    rec = recorded(0.5, caller="+819012345678", callee="301")  # recorded on extension 301
    r = pbx.signed(
        {"event": "answered", "call_id": "c10", "time": iso(30), "caller": "09012345678", "extension": "201"}
    )
    assert r.json()["linked"] is False and r.json()["call_id"] != str(rec.pk)
