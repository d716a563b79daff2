"""A tiny SIPREC client, built from the SIP core's own classes, talks to the server layer in memory.

The network is a list of in-flight packets and the clock is a float, so packet
loss and retransmissions are deterministic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from callvault.sip.dialog import Dialog
from callvault.sip.framing import StreamFramer
from callvault.sip.message import Headers, Request, Response, make_response, new_branch, parse_message
from callvault.sip.transaction import AckReceived, RequestReceived, ResponseReceived, TransactionLayer
from tests.sip.samples import CUBE_INVITE

SERVER = ("10.20.30.40", 5060)
CLIENT = ("10.1.1.10", 5060)


@dataclass
class MiniUac:
    """Just enough of a recording client: sends the INVITE, ACKs the 2xx, answers BYE."""

    transport: str
    framer: StreamFramer = field(default_factory=StreamFramer)
    outbox: list[bytes] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    acked: int = 0

    def start(self) -> None:
        raw = CUBE_INVITE.replace(b"SIP/2.0/UDP", f"SIP/2.0/{self.transport}".encode())
        self.invite = Request.parse(raw)
        self.outbox.append(raw)

    def options(self) -> None:
        headers = Headers(
            [
                ("Via", f"SIP/2.0/{self.transport} 10.1.1.10:5060;branch={new_branch()}"),
                ("From", "<sip:ping@10.1.1.10>;tag=p1"),
                ("To", "<sip:srs@10.20.30.40>"),
                ("Call-ID", "ping@10.1.1.10"),
                ("CSeq", "1 OPTIONS"),
                ("Max-Forwards", "70"),
            ]
        )
        self.outbox.append(bytes(Request("OPTIONS", "sip:srs@10.20.30.40", headers)))

    def deliver(self, data: bytes) -> None:
        messages = self.framer.feed(data) if self.transport == "TCP" else [parse_message(data)]
        for message in messages:
            if isinstance(message, Response):
                self.on_response(message)
            else:
                self.requests.append(message)
                self.outbox.append(bytes(make_response(message, 200)))

    def on_response(self, response: Response) -> None:
        self.responses.append(response)
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
            contact = response.contact
            assert contact is not None
            headers = Headers(
                [
                    ("Via", f"SIP/2.0/{self.transport} 10.1.1.10:5060;branch={new_branch()}"),
                    ("From", response.headers.get("From") or ""),
                    ("To", response.headers.get("To") or ""),
                    ("Call-ID", response.call_id),
                    ("CSeq", f"{response.cseq[0]} ACK"),
                    ("Max-Forwards", "70"),
                ]
            )
            self.acked += 1
            self.outbox.append(bytes(Request("ACK", str(contact.uri), headers)))


@dataclass
class Network:
    """Moves bytes between the client and the server layer, optionally losing some of them."""

    transport: str
    lose_to_client: set[int] = field(default_factory=set)
    lose_to_server: set[int] = field(default_factory=set)
    chunk: int = 0  # >0: deliver stream data in pieces of this size
    counter_to_client: itertools.count[int] = field(default_factory=itertools.count)
    counter_to_server: itertools.count[int] = field(default_factory=itertools.count)

    def pieces(self, data: bytes) -> list[bytes]:
        if not self.chunk:
            return [data]
        return [data[i : i + self.chunk] for i in range(0, len(data), self.chunk)]


@pytest.mark.parametrize(
    "network",
    [
        # lose the first 200 to the INVITE and the client's first 200 to our BYE
        Network("UDP", lose_to_client={1}, lose_to_server={3}),
        Network("TCP", chunk=7),
    ],
    ids=["lossy-udp", "chunked-tcp"],
)
def test_a_siprec_call_from_a_tiny_client_is_answered_acked_and_ended_with_bye(network: Network) -> None:
    layer = TransactionLayer(local_host=SERVER[0], local_port=SERVER[1])
    client = MiniUac(network.transport)
    dialogs: dict[str, Dialog] = {}
    bye_results: list[int] = []
    now = 0.0

    def pump() -> None:
        moved = True
        while moved:
            moved = False
            for data in client.outbox:
                if next(network.counter_to_server) not in network.lose_to_server:
                    for piece in network.pieces(data):
                        layer.receive(piece, CLIENT, network.transport, now)
                moved = True
            client.outbox.clear()
            for data, addr, transport in layer.datagrams_to_send():
                assert (addr, transport) == (CLIENT, network.transport)
                if next(network.counter_to_client) not in network.lose_to_client:
                    for piece in network.pieces(data):
                        client.deliver(piece)
                moved = True
            while (event := layer.next_event()) is not None:
                moved = True
                if isinstance(event, RequestReceived) and event.request.method == "INVITE":
                    dialog = Dialog.create_uas(event.request, contact="<sip:srs@10.20.30.40:5060>")
                    dialogs[dialog.call_id] = dialog
                    parts = event.request.body_parts()
                    assert [p.content_type for p in parts] == [
                        "application/sdp",
                        "application/rs-metadata+xml",
                    ]
                    answer = dialog.make_response(
                        event.request, 200, body=b"v=0\r\n", content_type="application/sdp"
                    )
                    assert layer.send_response(event.txn_id, answer, now)
                elif isinstance(event, RequestReceived):
                    reply = make_response(event.request, 200, to_tag="srs-ping")
                    assert layer.send_response(event.txn_id, reply, now)
                elif isinstance(event, AckReceived):
                    dialog = dialogs[event.request.call_id]
                    assert dialog.receive_request(event.request, now) is None
                elif isinstance(event, ResponseReceived):
                    bye_results.append(event.response.status)
                else:
                    raise AssertionError(f"unexpected event {event}")

    def advance(until: float) -> None:
        nonlocal now
        while (deadline := layer.get_timer()) is not None and deadline <= until:
            now = deadline
            layer.handle_timer(now)
            pump()
        now = until
        pump()

    client.start()
    pump()
    advance(2.0)
    client.options()
    pump()

    (dialog,) = dialogs.values()
    assert dialog.ack_received
    assert client.acked >= 1
    assert [r.status for r in client.responses if r.cseq[1] == "OPTIONS"] == [200]

    bye = dialog.create_request("BYE", now)
    target = dialog.next_hop
    assert (target.host, target.port) == CLIENT
    layer.send_request(bye, (target.host, target.port or 5060), network.transport, now)
    pump()
    advance(40.0)

    assert bye_results == [200]
    assert [r.method for r in client.requests] == ["BYE"] * (2 if network.transport == "UDP" else 1)
    assert dialog.is_terminated
    assert layer.get_timer() is None
    assert layer.stats["dropped"] == 0


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_the_tiny_client_sees_100_trying_before_the_answer(transport: str) -> None:
    layer = TransactionLayer(local_host=SERVER[0], local_port=SERVER[1])
    client = MiniUac(transport)
    client.start()
    layer.receive(client.outbox.pop(), CLIENT, transport, 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived)
    dialog = Dialog.create_uas(event.request, contact="<sip:srs@10.20.30.40>")
    layer.send_response(event.txn_id, dialog.make_response(event.request, 200), 0.05)

    for data, _, _ in layer.datagrams_to_send():
        client.deliver(data)

    assert [r.status for r in client.responses] == [100, 200]
    assert client.responses[1].to.tag == dialog.local_tag
