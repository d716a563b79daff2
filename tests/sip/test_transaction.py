"""Transaction layer: retransmissions, timers, CANCEL, routing, malformed input, client BYE."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from callvault.sip._state import TxnState
from callvault.sip.message import Headers, Request, Response, make_response, parse_message
from callvault.sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    CloseConnection,
    Event,
    MessageDropped,
    RequestReceived,
    ResponseReceived,
    TimerConfig,
    TransactionLayer,
    TransactionTimeout,
)
from tests.sip.samples import CUBE_INVITE, invite, request

SBC = ("10.1.1.10", 5060)
NATTED = ("203.0.113.9", 40123)
RETRANSMIT_TIMES_UNTIL_64T1 = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def counting_token() -> Callable[[int], str]:
    counter = itertools.count(1)
    return lambda size: f"{next(counter):0{size * 2}x}"


def make_layer(**config: float | bool) -> TransactionLayer:
    return TransactionLayer(
        local_host="10.20.30.40",
        local_port=5060,
        timers=TimerConfig(**config),  # type: ignore[arg-type]
        token=counting_token(),
    )


def events(layer: TransactionLayer) -> list[Event]:
    out = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def sent(layer: TransactionLayer) -> list[tuple[Request | Response, tuple[str, int], str]]:
    return [(parse_message(data), addr, transport) for data, addr, transport in layer.datagrams_to_send()]


def statuses(layer: TransactionLayer) -> list[int]:
    return [m.status for m, _, _ in sent(layer) if isinstance(m, Response)]


def receive_invite(
    layer: TransactionLayer, raw: bytes = b"", now: float = 0.0, addr: tuple[str, int] = SBC
) -> str:
    layer.receive(raw or invite(), addr, "UDP", now)
    (event,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    return event.txn_id


def run_timers_until(layer: TransactionLayer, end: float) -> list[tuple[float, list[int]]]:
    """Fire timers up to ``end``; returns (time, statuses sent) for each firing."""
    fired = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        layer.handle_timer(deadline)
        fired.append((deadline, statuses(layer)))
    return fired


def answer(
    layer: TransactionLayer, txn_id: str, raw: bytes, status: int, now: float, tag: str = "srs1"
) -> bool:
    return layer.send_response(txn_id, make_response(parse_request(raw), status, to_tag=tag), now)


def parse_request(raw: bytes) -> Request:
    return Request.parse(raw)


# --------------------------------------------------------------------------- INVITE server transaction


def test_an_invite_reaches_the_tu_and_gets_100_trying_at_once() -> None:
    layer = make_layer()

    layer.receive(CUBE_INVITE, SBC, "udp", 0.0)

    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    assert (event.request.call_id, event.addr, event.transport) == (
        "5E2D4C10-DF6A11EE-8F3AB2C4-1F00A1B2@10.1.1.10",
        SBC,
        "UDP",
    )
    ((trying, addr, transport),) = sent(layer)
    assert isinstance(trying, Response)
    assert (trying.status, trying.headers.get("Timestamp"), addr, transport) == (
        100,
        "1710238502",
        SBC,
        "UDP",
    )
    assert layer.transaction_state(event.txn_id) is TxnState.PROCEEDING


def test_a_deferred_trying_is_skipped_when_the_tu_answers_in_time() -> None:
    layer = make_layer(trying_delay=0.2)
    txn_id = receive_invite(layer)

    assert sent(layer) == []
    assert layer.get_timer() == 0.2
    assert answer(layer, txn_id, invite(), 180, 0.1)
    layer.handle_timer(0.2)

    assert statuses(layer) == [180]


def test_a_deferred_trying_is_sent_when_the_tu_is_slow() -> None:
    layer = make_layer(trying_delay=0.2)
    receive_invite(layer)

    layer.handle_timer(0.2)

    assert statuses(layer) == [100]


def test_a_retransmitted_invite_is_absorbed_and_the_last_provisional_resent() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    assert answer(layer, txn_id, invite(), 180, 0.1)
    assert statuses(layer) == [100, 180]

    layer.receive(invite(), SBC, "UDP", 0.5)

    assert events(layer) == []
    assert statuses(layer) == [180]
    assert layer.stats["retransmissions"] == 1


def test_the_2xx_is_retransmitted_at_t1_doubling_to_t2_until_the_ack() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    sent(layer)
    assert answer(layer, txn_id, invite(), 200, 0.0)
    assert statuses(layer) == [200]

    fired = run_timers_until(layer, 12.0)
    layer.receive(invite(method="ACK", branch="z9hG4bKack1", to_tag="srs1"), SBC, "UDP", 12.0)

    assert fired == [(0.5, [200]), (1.5, [200]), (3.5, [200]), (7.5, [200]), (11.5, [200])]
    (ack,) = events(layer)
    assert isinstance(ack, AckReceived)
    assert ack.request.method == "ACK"
    assert [(time, out) for time, out in run_timers_until(layer, 100.0)] == [(32.0, [])]
    assert events(layer) == []
    assert layer.transaction_state(txn_id) is None


def test_without_an_ack_the_2xx_is_retransmitted_for_64_t1_then_ack_timeout() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 200, 0.0)
    sent(layer)

    fired = run_timers_until(layer, 100.0)

    assert [time for time, out in fired if out == [200]] == RETRANSMIT_TIMES_UNTIL_64T1
    assert fired[-1] == (32.0, [])
    assert events(layer) == [AckTimeout("call-1@10.1.1.10", txn_id)]
    assert layer.get_timer() is None


def test_invite_retransmissions_after_the_2xx_are_absorbed() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 200, 0.0)
    sent(layer)

    layer.receive(invite(), SBC, "UDP", 0.3)

    assert sent(layer) == []
    assert events(layer) == []
    assert layer.stats["absorbed"] == 1


def test_a_late_timer_call_does_not_fire_a_burst_of_retransmissions() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 200, 0.0)
    sent(layer)

    layer.handle_timer(5.0)

    assert statuses(layer) == [200]
    assert layer.get_timer() == 6.0


def test_an_ack_after_the_transaction_ended_still_reaches_the_tu() -> None:
    layer = make_layer()

    layer.receive(invite(method="ACK", branch="z9hG4bKlate", to_tag="srs1"), SBC, "UDP", 40.0)

    (event,) = events(layer)
    assert isinstance(event, AckReceived)


def test_a_non_2xx_final_is_retransmitted_by_timer_g_until_the_ack() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    sent(layer)
    answer(layer, txn_id, invite(), 486, 0.0)
    assert statuses(layer) == [486]

    fired = run_timers_until(layer, 2.0)
    layer.receive(invite(method="ACK", to_tag="srs1"), SBC, "UDP", 2.0)
    layer.receive(invite(method="ACK", to_tag="srs1"), SBC, "UDP", 2.1)

    assert fired == [(0.5, [486]), (1.5, [486])]
    assert events(layer) == []
    assert layer.transaction_state(txn_id) is TxnState.CONFIRMED
    assert run_timers_until(layer, 100.0) == [(7.0, [])]  # Timer I = T4
    assert layer.transaction_state(txn_id) is None


def test_timer_h_reports_a_timeout_when_the_ack_never_comes() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 603, 0.0)
    sent(layer)

    fired = run_timers_until(layer, 100.0)

    assert [time for time, out in fired if out == [603]] == RETRANSMIT_TIMES_UNTIL_64T1
    assert events(layer) == [TransactionTimeout(txn_id, "INVITE")]


def test_send_response_refuses_what_the_state_does_not_allow() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 486, 0.0)

    assert not answer(layer, txn_id, invite(), 200, 0.1)
    assert not answer(layer, "no-such-transaction", invite(), 200, 0.1)


# --------------------------------------------------------------------------- non-INVITE server transaction


def test_a_non_invite_completed_transaction_absorbs_retransmissions_and_resends_the_final() -> None:
    layer = make_layer()
    bye = request("BYE", branch="z9hG4bKbye1", cseq=102)
    layer.receive(bye, SBC, "UDP", 0.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    assert statuses(layer) == []  # no 100 Trying for non-INVITE

    layer.receive(bye, SBC, "UDP", 0.2)  # Trying: absorbed silently
    assert statuses(layer) == []
    layer.send_response(event.txn_id, make_response(event.request, 200), 0.3)
    assert statuses(layer) == [200]
    layer.receive(bye, SBC, "UDP", 1.0)
    layer.receive(bye, SBC, "UDP", 2.0)

    assert statuses(layer) == [200, 200]
    assert events(layer) == []
    assert layer.transaction_state(event.txn_id) is TxnState.COMPLETED
    assert run_timers_until(layer, 100.0) == [(32.3, [])]  # Timer J = 64*T1
    assert layer.transaction_state(event.txn_id) is None
    layer.receive(bye, SBC, "UDP", 40.0)
    assert [type(e) for e in events(layer)] == [RequestReceived]


def test_a_non_invite_proceeding_transaction_resends_the_provisional() -> None:
    layer = make_layer()
    options = request("OPTIONS", branch="z9hG4bKopt", cseq=5, to_tag=None)
    layer.receive(options, SBC, "UDP", 0.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    layer.send_response(event.txn_id, make_response(event.request, 100), 0.1)

    layer.receive(options, SBC, "UDP", 0.5)

    assert statuses(layer) == [100, 100]
    assert layer.transaction_state(event.txn_id) is TxnState.PROCEEDING


# --------------------------------------------------------------------------- CANCEL


def test_cancel_of_a_pending_invite_answers_200_and_487_and_tells_the_tu() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 180, 0.1, tag="early")
    sent(layer)

    layer.receive(invite(method="CANCEL"), SBC, "UDP", 1.0)

    replies = [m for m, _, _ in sent(layer)]
    assert [(m.status, m.cseq, m.to.tag) for m in replies if isinstance(m, Response)] == [
        (200, (101, "CANCEL"), "early"),
        (487, (101, "INVITE"), "early"),
    ]
    (event,) = events(layer)
    assert isinstance(event, CancelReceived)
    assert event.invite_txn_id == txn_id
    assert not answer(layer, txn_id, invite(), 200, 1.1)
    layer.receive(invite(method="ACK", to_tag="early"), SBC, "UDP", 1.2)
    assert layer.transaction_state(txn_id) is TxnState.CONFIRMED


def test_cancel_before_any_tag_uses_one_tag_for_both_answers() -> None:
    layer = make_layer()
    receive_invite(layer)
    sent(layer)

    layer.receive(invite(method="CANCEL"), SBC, "UDP", 0.1)

    tags = {m.to.tag for m, _, _ in sent(layer)}
    assert len(tags) == 1 and None not in tags


def test_a_retransmitted_cancel_gets_the_same_200_again() -> None:
    layer = make_layer()
    receive_invite(layer)
    layer.receive(invite(method="CANCEL"), SBC, "UDP", 0.1)
    sent(layer)
    events(layer)

    layer.receive(invite(method="CANCEL"), SBC, "UDP", 0.6)

    assert statuses(layer) == [200]
    assert events(layer) == []


def test_cancel_after_the_final_response_changes_nothing() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    answer(layer, txn_id, invite(), 200, 0.0)
    sent(layer)

    layer.receive(invite(method="CANCEL"), SBC, "UDP", 0.1)

    assert statuses(layer) == [200]
    assert events(layer) == []
    assert layer.transaction_state(txn_id) is TxnState.ACCEPTED


def test_cancel_without_a_matching_invite_gets_481() -> None:
    layer = make_layer()

    layer.receive(invite(method="CANCEL", branch="z9hG4bKnothing"), SBC, "UDP", 0.0)

    assert statuses(layer) == [481]
    assert events(layer) == []


# --------------------------------------------------------------------------- RFC 2543 peers


def test_it_matches_rfc2543_transactions_without_magic_cookie() -> None:
    layer = make_layer()
    old = invite(branch="old-style-1")
    txn_id = receive_invite(layer, old)
    answer(layer, txn_id, old, 404, 0.0)
    sent(layer)

    layer.receive(old, SBC, "UDP", 0.2)
    assert statuses(layer) == [404]
    layer.receive(invite(method="ACK", branch="old-style-1", to_tag="srs1"), SBC, "UDP", 0.3)

    assert events(layer) == []
    assert layer.transaction_state(txn_id) is TxnState.CONFIRMED


def test_rfc2543_requests_without_any_branch_are_matched_too() -> None:
    layer = make_layer()
    raw = invite().replace(b";branch=z9hG4bKinv1", b"")
    receive_invite(layer, raw)
    sent(layer)

    layer.receive(raw, SBC, "UDP", 0.4)

    assert statuses(layer) == [100]
    assert events(layer) == []


# --------------------------------------------------------------------------- response routing (§18.2.2)


def test_with_rport_responses_go_back_to_the_source_address_and_port() -> None:
    layer = make_layer()

    layer.receive(invite(via_extra=";rport"), NATTED, "UDP", 0.0)

    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    assert str(event.request.top_via) == (
        "SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bKinv1;rport=40123;received=203.0.113.9"
    )
    ((trying, addr, _),) = sent(layer)
    assert addr == NATTED
    assert trying.top_via.rport == 40123


def test_without_rport_responses_go_to_received_and_the_via_port() -> None:
    layer = make_layer()

    layer.receive(invite(), NATTED, "UDP", 0.0)

    ((trying, addr, _),) = sent(layer)
    assert addr == ("203.0.113.9", 5060)
    assert trying.top_via.received == "203.0.113.9"


def test_maddr_in_via_wins_on_udp() -> None:
    layer = make_layer()

    layer.receive(invite(via_extra=";maddr=10.9.9.9"), SBC, "UDP", 0.0)

    ((_, addr, _),) = sent(layer)
    assert addr == ("10.9.9.9", 5060)


def test_received_is_not_added_when_the_source_matches_sent_by() -> None:
    layer = make_layer()

    layer.receive(invite(), SBC, "UDP", 0.0)

    ((trying, addr, _),) = sent(layer)
    assert addr == SBC
    assert trying.headers.get("Via") == "SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bKinv1"


# --------------------------------------------------------------------------- reliable transports


def test_over_tcp_the_layer_frames_the_stream_and_answers_on_the_connection() -> None:
    layer = make_layer()
    raw = invite(transport="TCP") + request("OPTIONS", branch="z9hG4bKo2", cseq=9, to_tag=None)

    for index in range(len(raw)):
        layer.receive(raw[index : index + 1], NATTED, "TCP", 0.0)

    assert [type(e) for e in events(layer)] == [RequestReceived, RequestReceived]
    ((trying, addr, transport),) = sent(layer)
    assert isinstance(trying, Response)
    assert (trying.status, addr, transport) == (100, NATTED, "TCP")


def test_over_tcp_final_responses_are_not_retransmitted_and_i_is_zero() -> None:
    layer = make_layer()
    layer.receive(invite(transport="TCP"), SBC, "TCP", 0.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    layer.send_response(event.txn_id, make_response(event.request, 486, to_tag="t"), 0.0)
    sent(layer)

    assert layer.get_timer() == 32.0  # only Timer H
    layer.receive(invite(transport="TCP", method="ACK", to_tag="t"), SBC, "TCP", 1.0)

    assert layer.transaction_state(event.txn_id) is None
    assert layer.get_timer() is None


def test_over_tcp_a_non_invite_transaction_ends_with_its_final_response() -> None:
    layer = make_layer()
    layer.receive(request("BYE", branch="z9hG4bKt", cseq=3), SBC, "TCP", 0.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived)

    layer.send_response(event.txn_id, make_response(event.request, 200), 0.1)

    assert layer.transaction_state(event.txn_id) is None


def test_over_tcp_the_2xx_is_still_retransmitted_end_to_end_unless_disabled() -> None:
    default = make_layer()
    quiet = make_layer(retransmit_2xx_on_reliable=False)
    for layer in (default, quiet):
        layer.receive(invite(transport="TCP"), SBC, "TCP", 0.0)
        (event,) = events(layer)
        assert isinstance(event, RequestReceived)
        layer.send_response(event.txn_id, make_response(event.request, 200, to_tag="t"), 0.0)
        sent(layer)

    assert default.get_timer() == 0.5
    assert quiet.get_timer() == 32.0


def test_a_double_crlf_ping_on_tcp_is_answered_with_a_pong() -> None:
    layer = make_layer()

    layer.receive(b"\r\n\r\n", NATTED, "TCP", 0.0)

    assert layer.datagrams_to_send() == [(b"\r\n", NATTED, "TCP")]
    assert layer.stats["keepalives"] == 1


def test_a_framing_error_asks_the_adapter_to_close_the_connection() -> None:
    layer = make_layer()
    unframed = invite(transport="TCP").replace(b"Content-Length: 0\r\n", b"")

    layer.receive(unframed, NATTED, "TCP", 0.0)

    assert events(layer) == [
        MessageDropped("missing Content-Length on stream transport", NATTED, "TCP"),
        CloseConnection(NATTED, "TCP", "missing Content-Length on stream transport"),
    ]
    layer.receive(invite(transport="TCP"), NATTED, "TCP", 1.0)  # a new connection from the same address
    assert [type(e) for e in events(layer)] == [RequestReceived]


def test_connection_lost_discards_a_partial_message() -> None:
    layer = make_layer()
    raw = invite(transport="TCP")
    layer.receive(raw[:50], NATTED, "TCP", 0.0)

    layer.connection_lost(NATTED, "tcp")
    layer.receive(raw, NATTED, "TCP", 1.0)

    assert [type(e) for e in events(layer)] == [RequestReceived]


# --------------------------------------------------------------------------- malformed input


def test_a_malformed_request_with_readable_headers_gets_a_400_with_the_reason() -> None:
    layer = make_layer()

    layer.receive(invite(cseq_method="BYE"), SBC, "UDP", 0.0)

    ((reply, addr, _),) = sent(layer)
    assert isinstance(reply, Response)
    assert (reply.status, reply.reason, addr) == (
        400,
        "CSeq method 'BYE' does not match request method 'INVITE'",
        SBC,
    )
    assert events(layer) == [
        MessageDropped("CSeq method 'BYE' does not match request method 'INVITE'", SBC, "UDP", answered=True)
    ]
    assert (layer.stats["received"], layer.stats["bad_requests"], layer.stats["dropped"]) == (1, 1, 0)


def test_unanswerable_garbage_is_dropped_and_counted() -> None:
    layer = make_layer()

    layer.receive(b"\x16\x03\x01\x02\x00 binary junk\r\n\r\n", SBC, "UDP", 0.0)

    assert sent(layer) == []
    (event,) = events(layer)
    assert isinstance(event, MessageDropped) and not event.answered
    assert layer.stats["dropped"] == 1


def test_a_crlf_keepalive_datagram_is_ignored() -> None:
    layer = make_layer()

    layer.receive(b"\r\n\r\n", SBC, "UDP", 0.0)

    assert (events(layer), sent(layer), layer.stats["keepalives"]) == ([], [], 1)


def test_a_stray_response_is_dropped() -> None:
    layer = make_layer()
    stray = make_response(parse_request(request("BYE", branch="z9hG4bKnone", cseq=1)), 200)

    layer.receive(bytes(stray), SBC, "UDP", 0.0)

    assert events(layer) == [MessageDropped("response matches no transaction", SBC, "UDP")]


# --------------------------------------------------------------------------- client non-INVITE transaction


def in_dialog_bye() -> Request:
    return Request(
        "BYE",
        "sip:src@10.1.1.10:5060",
        Headers(
            [
                ("From", "<sip:srs@10.20.30.40>;tag=srs1"),
                ("To", "<sip:src@10.1.1.10>;tag=from1"),
                ("Call-ID", "call-1@10.1.1.10"),
                ("CSeq", "1 BYE"),
            ]
        ),
    )


def test_send_request_adds_via_with_branch_and_rport_and_max_forwards() -> None:
    layer = make_layer()
    bye = in_dialog_bye()

    txn_id = layer.send_request(bye, SBC, "udp", 0.0)

    ((message, addr, transport),) = sent(layer)
    assert isinstance(message, Request)
    assert (addr, transport) == (SBC, "UDP")
    assert (
        message.headers.get("Via")
        == "SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK000000000000000000000001;rport"
    )
    assert message.max_forwards == 70
    assert bye.headers.get("Via") is None  # the caller's object is untouched
    assert layer.transaction_state(txn_id) is TxnState.TRYING


def test_a_client_bye_is_retransmitted_by_timer_e_and_times_out_by_timer_f() -> None:
    layer = make_layer()
    txn_id = layer.send_request(in_dialog_bye(), SBC, "UDP", 0.0)
    sent(layer)

    fired = []
    while (deadline := layer.get_timer()) is not None:
        layer.handle_timer(deadline)
        fired.append((deadline, [m.method for m, _, _ in sent(layer) if isinstance(m, Request)]))

    assert [time for time, out in fired if out == ["BYE"]] == RETRANSMIT_TIMES_UNTIL_64T1
    assert fired[-1] == (32.0, [])
    assert events(layer) == [TransactionTimeout(txn_id, "BYE")]
    assert layer.stats["retransmissions"] == len(RETRANSMIT_TIMES_UNTIL_64T1)


def reply_to(layer_request: Request, status: int) -> bytes:
    return bytes(make_response(layer_request, status, to_tag="from1"))


def test_a_client_bye_completes_on_its_final_response_and_absorbs_repeats() -> None:
    layer = make_layer()
    txn_id = layer.send_request(in_dialog_bye(), SBC, "UDP", 0.0)
    ((bye, _, _),) = sent(layer)
    assert isinstance(bye, Request)

    layer.receive(reply_to(bye, 200), SBC, "UDP", 0.2)
    layer.receive(reply_to(bye, 200), SBC, "UDP", 0.7)

    (event,) = events(layer)
    assert isinstance(event, ResponseReceived)
    assert (event.txn_id, event.response.status) == (txn_id, 200)
    assert layer.transaction_state(txn_id) is TxnState.COMPLETED
    assert run_timers_until(layer, 100.0) == [(5.2, [])]  # Timer K = T4
    assert layer.transaction_state(txn_id) is None
    assert sent(layer) == []


def test_a_provisional_response_moves_timer_e_to_t2_intervals() -> None:
    layer = make_layer()
    txn_id = layer.send_request(in_dialog_bye(), SBC, "UDP", 0.0)
    ((bye, _, _),) = sent(layer)
    assert isinstance(bye, Request)
    layer.handle_timer(0.5)  # first retransmission, next one due at 1.5
    layer.receive(reply_to(bye, 100), SBC, "UDP", 0.6)

    fired = [time for time, _ in run_timers_until(layer, 12.0)]

    assert [type(e) for e in events(layer)] == [ResponseReceived]
    assert layer.transaction_state(txn_id) is TxnState.PROCEEDING
    assert fired == [1.5, 5.5, 9.5]


def test_over_tcp_a_client_transaction_does_not_retransmit_and_ends_at_once() -> None:
    layer = make_layer()
    txn_id = layer.send_request(in_dialog_bye(), SBC, "TCP", 0.0)
    ((bye, _, _),) = sent(layer)
    assert isinstance(bye, Request)

    assert layer.get_timer() == 32.0  # Timer F only
    layer.receive(reply_to(bye, 200), SBC, "TCP", 0.1)

    assert [type(e) for e in events(layer)] == [ResponseReceived]
    assert layer.transaction_state(txn_id) is None


def test_send_request_refuses_invite_and_requests_it_would_not_accept() -> None:
    layer = make_layer()
    broken = in_dialog_bye()
    broken.headers.remove("Call-ID")

    with pytest.raises(ValueError, match="client INVITE transactions are not supported"):
        layer.send_request(Request("INVITE", "sip:a@b"), SBC, "UDP", 0.0)
    with pytest.raises(ValueError, match="missing mandatory header: Call-ID"):
        layer.send_request(broken, SBC, "UDP", 0.0)
    assert layer.datagrams_to_send() == []


def test_send_request_needs_a_magic_cookie_branch_in_a_given_via() -> None:
    layer = make_layer()
    bye = in_dialog_bye()
    bye.headers.insert(0, "Via", "SIP/2.0/UDP 10.20.30.40;branch=1234")

    with pytest.raises(ValueError, match="needs a branch starting with z9hG4bK"):
        layer.send_request(bye, SBC, "UDP", 0.0)


def test_send_response_refuses_a_final_response_without_to_tag() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)

    with pytest.raises(ValueError, match="a 200 response needs a To tag"):
        layer.send_response(txn_id, make_response(parse_request(invite()), 200), 0.1)
    assert layer.transaction_state(txn_id) is TxnState.PROCEEDING


def test_send_response_on_a_client_transaction_is_a_programming_error() -> None:
    layer = make_layer()
    txn_id = layer.send_request(in_dialog_bye(), SBC, "UDP", 0.0)

    with pytest.raises(ValueError, match="is a client transaction"):
        layer.send_response(txn_id, Response(200, "OK"), 0.0)


def test_stats_count_traffic() -> None:
    layer = make_layer()
    txn_id = receive_invite(layer)
    layer.receive(invite(), SBC, "UDP", 0.1)
    answer(layer, txn_id, invite(), 200, 0.2)
    layer.handle_timer(0.7)

    assert layer.stats == {
        "received": 2,
        "sent": 4,  # 100, 100 again, 200, 200 again
        "retransmissions": 2,
        "dropped": 0,
        "bad_requests": 0,
        "absorbed": 0,
        "keepalives": 0,
    }
