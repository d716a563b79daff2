"""UAS dialogs: identity, state table, CSeq rules, in-dialog requests and routing."""

from __future__ import annotations

import pytest

from callvault.sip._state import DialogState
from callvault.sip.dialog import Dialog, DialogId
from callvault.sip.message import Request, SipParseError
from tests.sip.samples import SBC_INVITE, invite, request

CONTACT = "<sip:srs@10.20.30.40:5060>"


def fixed_token(size: int) -> str:
    return "7" * (size * 2)


def new_dialog(raw: bytes = b"") -> tuple[Dialog, Request]:
    offer = Request.parse(raw or invite())
    return Dialog.create_uas(offer, contact=CONTACT, token=fixed_token, now=1.0), offer


def confirmed_dialog() -> Dialog:
    dialog, offer = new_dialog()
    dialog.make_response(offer, 200)
    return dialog


def test_a_dialog_is_identified_by_call_id_and_both_tags() -> None:
    dialog, offer = new_dialog()

    assert dialog.id == DialogId("call-1@10.1.1.10", "7" * 16, "from1")
    assert dialog.state is DialogState.EARLY
    assert dialog.remote_target.user == "src"
    assert dialog.remote_cseq == 101
    assert dialog.local_cseq is None
    assert not dialog.matches(offer)  # the INVITE has no To tag yet


def test_the_2xx_carries_the_tag_and_contact_and_confirms_the_dialog() -> None:
    dialog, offer = new_dialog()

    ringing = dialog.make_response(offer, 180)
    ok = dialog.make_response(offer, 200, body=b"v=0\r\n", content_type="application/sdp")

    assert ringing.to.tag == ok.to.tag == dialog.local_tag
    assert ok.headers.get("Contact") == CONTACT
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert dialog.state is DialogState.CONFIRMED


def test_a_failure_response_terminates_an_early_dialog() -> None:
    dialog, offer = new_dialog()

    busy = dialog.make_response(offer, 486)

    assert busy.headers.get("Contact") is None
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(ValueError, match="cannot send 2xx to INVITE in dialog state Terminated"):
        dialog.make_response(offer, 200)


def test_the_record_route_set_is_kept_in_order_and_used_for_loose_routing() -> None:
    offer = Request.parse(SBC_INVITE)
    dialog = Dialog.create_uas(offer, contact=CONTACT, local_tag="t1")
    dialog.make_response(offer, 200)

    bye = dialog.create_request("BYE", 5.0)

    assert bye.uri == "sip:src@[2001:db8::20]:5060;transport=tcp"
    assert bye.headers.get_all("Route") == ["<sip:192.0.2.20:5060;transport=tcp;lr>"]
    assert str(dialog.next_hop) == "sip:192.0.2.20:5060;transport=tcp;lr"
    assert dialog.secure is False


def test_strict_routing_puts_the_first_route_in_the_request_uri() -> None:
    raw = invite().replace(
        b"Max-Forwards", b"Record-Route: <sip:p1.example.net>, <sip:p2.example.net;lr>\r\nMax-Forwards"
    )
    dialog, offer = new_dialog(raw)
    dialog.make_response(offer, 200)

    options = dialog.create_request("OPTIONS", 2.0)

    assert options.uri == "sip:p1.example.net"
    assert options.headers.get_all("Route") == ["<sip:p2.example.net;lr>", "<sip:src@10.1.1.10:5060>"]


def test_create_request_builds_a_bye_with_the_next_local_cseq() -> None:
    dialog = confirmed_dialog()

    options = dialog.create_request("OPTIONS", 3.0)
    bye = dialog.create_request("BYE", 4.0)

    assert bytes(bye) == (
        b"BYE sip:src@10.1.1.10:5060 SIP/2.0\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:srs@10.20.30.40>;tag=7777777777777777\r\n"
        b"To: <sip:src@10.1.1.10>;tag=from1\r\n"
        b"Call-ID: call-1@10.1.1.10\r\n"
        b"CSeq: 2 BYE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    assert options.cseq == (1, "OPTIONS")
    assert dialog.state is DialogState.TERMINATED
    assert dialog.updated_at == 4.0


def test_create_request_refuses_what_the_state_or_method_does_not_allow() -> None:
    early, _ = new_dialog()
    confirmed = confirmed_dialog()

    with pytest.raises(ValueError, match="cannot send BYE in dialog state Early"):
        early.create_request("BYE", 1.0)
    with pytest.raises(ValueError, match="cannot send OPTIONS in dialog state Early"):
        early.create_request("OPTIONS", 1.0)
    with pytest.raises(ValueError, match="ACK is not built with create_request"):
        confirmed.create_request("ACK", 1.0)


def test_a_lower_cseq_in_dialog_gets_500_and_a_higher_one_is_accepted() -> None:
    dialog = confirmed_dialog()

    stale = dialog.receive_request(
        Request.parse(request("INFO", branch="z9hG4bKa", cseq=100, to_tag=dialog.local_tag)), 2.0
    )
    fresh = dialog.receive_request(
        Request.parse(request("INFO", branch="z9hG4bKb", cseq=102, to_tag=dialog.local_tag)), 3.0
    )
    replay = dialog.receive_request(
        Request.parse(request("INFO", branch="z9hG4bKc", cseq=101, to_tag=dialog.local_tag)), 4.0
    )

    assert (stale, fresh, replay) == (500, None, 500)
    assert dialog.remote_cseq == 102
    assert dialog.updated_at == 3.0


def test_a_request_for_another_dialog_gets_481() -> None:
    dialog = confirmed_dialog()

    status = dialog.receive_request(
        Request.parse(request("BYE", branch="z9hG4bKx", cseq=102, to_tag="other")), 2.0
    )

    assert status == 481
    assert dialog.state is DialogState.CONFIRMED


def test_a_bye_from_the_remote_party_terminates_the_dialog() -> None:
    dialog = confirmed_dialog()
    bye = Request.parse(request("BYE", branch="z9hG4bKbye", cseq=102, to_tag=dialog.local_tag))

    assert dialog.receive_request(bye, 2.0) is None
    ok = dialog.make_response(bye, 200)

    assert dialog.state is DialogState.TERMINATED
    assert ok.to.tag == dialog.local_tag
    assert ok.headers.get("Contact") is None
    later = Request.parse(request("INFO", branch="z9hG4bKlate", cseq=103, to_tag=dialog.local_tag))
    assert dialog.receive_request(later, 3.0) == 481


def test_an_ack_for_the_invite_is_recorded_without_touching_the_cseq() -> None:
    dialog = confirmed_dialog()
    ack = Request.parse(request("ACK", branch="z9hG4bKack", cseq=101, to_tag=dialog.local_tag))

    assert dialog.receive_request(ack, 2.0) is None
    assert dialog.ack_received
    assert dialog.remote_cseq == 101


def test_a_reinvite_refreshes_the_remote_target() -> None:
    dialog = confirmed_dialog()
    reinvite = Request.parse(
        request("INVITE", branch="z9hG4bKre", cseq=102, to_tag=dialog.local_tag).replace(
            b"<sip:src@10.1.1.10:5060>", b"<sip:src@10.1.1.99:5070>"
        )
    )

    assert dialog.receive_request(reinvite, 2.0) is None
    dialog.make_response(reinvite, 488)

    assert str(dialog.remote_target) == "sip:src@10.1.1.99:5070"
    assert dialog.state is DialogState.CONFIRMED
    assert not dialog.ack_received


def test_an_invite_without_contact_cannot_form_a_dialog() -> None:
    offer = Request.parse(invite().replace(b"Contact: <sip:src@10.1.1.10:5060>\r\n", b""))

    with pytest.raises(SipParseError) as info:
        Dialog.create_uas(offer)

    assert str(info.value) == "INVITE without Contact cannot create a dialog"


def test_only_an_initial_invite_creates_a_dialog() -> None:
    with pytest.raises(ValueError, match="created by INVITE, not BYE"):
        Dialog.create_uas(Request.parse(request("BYE", branch="z9hG4bKq", cseq=1)))
    with pytest.raises(ValueError, match="already has a To tag"):
        Dialog.create_uas(Request.parse(invite(to_tag="x")))


def test_the_local_tag_comes_from_the_random_source_by_default() -> None:
    first = Dialog.create_uas(Request.parse(invite()))
    second = Dialog.create_uas(Request.parse(invite()))

    assert len(first.local_tag) == 16
    assert first.local_tag != second.local_tag
