"""Interop with a real peer: SIPp's built-in UAC calls the SIP core through a throwaway asyncio glue.

The glue here is deliberately minimal (it is not the production adapter): it
feeds sockets into ``TransactionLayer``, answers INVITE/BYE/OPTIONS with 200
and runs the timers off the event loop clock.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import cast

import pytest

from callvault.sip.dialog import Dialog
from callvault.sip.message import Headers, Request, make_response
from callvault.sip.transaction import (
    AckReceived,
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
)

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
SDP_ANSWER = (
    b"v=0\r\no=callvault 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=recvonly\r\n"
)


def free_port() -> int:
    """A port free for both UDP and TCP (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((HOST, port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


class Glue(asyncio.DatagramProtocol):
    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.udp: asyncio.DatagramTransport | None = None
        self.writers: dict[Address, asyncio.StreamWriter] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.seen: list[str] = []
        self.acks = 0
        self.responses: list[int] = []

    # UDP
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.udp = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.layer.receive(data, (str(addr[0]), int(addr[1])), "UDP", self.loop.time())
        self.flush()

    # TCP
    async def on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr = (str(peer[0]), int(peer[1]))
        self.writers[addr] = writer
        while chunk := await reader.read(4096):
            self.layer.receive(chunk, addr, "TCP", self.loop.time())
            self.flush()
        self.layer.connection_lost(addr, "TCP")
        del self.writers[addr]

    def on_event(self, event: Event) -> None:
        now = self.loop.time()
        if isinstance(event, RequestReceived):
            request = event.request
            self.seen.append(request.method)
            if request.method == "INVITE":
                dialog = Dialog.create_uas(request, contact=f"<sip:srs@{HOST}:{self.layer.local_port}>")
                response = dialog.make_response(request, 200, body=SDP_ANSWER, content_type="application/sdp")
            else:
                response = make_response(request, 200, to_tag="srs")
            self.layer.send_response(event.txn_id, response, now)
        elif isinstance(event, AckReceived):
            self.acks += 1
        elif isinstance(event, ResponseReceived):
            self.responses.append(event.response.status)
        else:
            raise AssertionError(f"unexpected event: {event}")

    def flush(self) -> None:
        while (event := self.layer.next_event()) is not None:
            self.on_event(event)
        for data, addr, transport in self.layer.datagrams_to_send():
            if transport == "UDP":
                assert self.udp is not None
                self.udp.sendto(data, addr)
            else:
                self.writers[addr].write(data)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadline = self.layer.get_timer()
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self.on_timer)

    def on_timer(self) -> None:
        self.timer = None
        self.layer.handle_timer(self.loop.time())
        self.flush()


async def call_with_sipp(transport_flag: str, workdir: Path, *extra: str) -> tuple[int, Glue, str]:
    port = free_port()
    layer = TransactionLayer(local_host=HOST, local_port=port)
    glue = Glue(layer)
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: glue, local_addr=(HOST, port))
    server = await asyncio.start_server(glue.on_connection, HOST, port)
    try:
        process = await asyncio.create_subprocess_exec(
            "sipp",
            "-sn",
            "uac",
            f"{HOST}:{port}",
            "-i",
            HOST,
            "-t",
            transport_flag,
            "-d",
            "200",
            "-timeout",
            "20",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            *extra,
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        errors = "".join(path.read_text() for path in workdir.glob("*_errors.log"))
        return process.returncode or 0, glue, errors or output.decode(errors="replace")[-2000:]
    finally:
        udp.close()
        server.close()


@pytest.mark.parametrize(("transport_flag", "name"), [("u1", "udp"), ("t1", "tcp")])
def test_sipp_uac_completes_calls_against_the_sip_core(
    transport_flag: str, name: str, tmp_path: Path
) -> None:
    assert shutil.which("sipp"), "sipp must be installed for the interop test"

    returncode, glue, diagnostics = asyncio.run(call_with_sipp(transport_flag, tmp_path, "-m", "2"))

    assert returncode == 0, diagnostics
    assert sorted(glue.seen) == ["BYE", "BYE", "INVITE", "INVITE"]
    assert glue.acks == 2
    assert glue.layer.stats["dropped"] == 0
    assert glue.layer.stats["bad_requests"] == 0


def test_sipp_uac_calls_survive_packet_loss_on_udp(tmp_path: Path) -> None:
    assert shutil.which("sipp"), "sipp must be installed for the interop test"

    returncode, glue, diagnostics = asyncio.run(
        call_with_sipp("u1", tmp_path, "-m", "20", "-r", "20", "-lost", "10")
    )

    assert returncode == 0, diagnostics
    assert glue.seen.count("INVITE") == 20
    assert glue.layer.stats["dropped"] == 0


OPTIONS_RESPONDER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer one OPTIONS">
  <recv request="OPTIONS" />
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]sipp[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


async def options_to_sipp(workdir: Path) -> tuple[int, Glue, str]:
    port, sipp_port = free_port(), free_port()
    layer = TransactionLayer(local_host=HOST, local_port=port)
    glue = Glue(layer)
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: glue, local_addr=(HOST, port))
    scenario = workdir / "options.xml"
    scenario.write_text(OPTIONS_RESPONDER)
    try:
        args = f"-sf {scenario} -i {HOST} -p {sipp_port} -t u1 -m 1 -timeout 20 -timeout_error -nostdin"
        process = await asyncio.create_subprocess_exec(
            "sipp",
            *args.split(),
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        headers = Headers(
            [
                ("From", f"<sip:srs@{HOST}:{port}>;tag=srs-options"),
                ("To", f"<sip:sipp@{HOST}:{sipp_port}>"),
                ("Call-ID", "options-to-sipp@callvault"),
                ("CSeq", "1 OPTIONS"),
            ]
        )
        # sipp may not be listening yet: Timer E retransmits until it is
        layer.send_request(
            Request("OPTIONS", f"sip:sipp@{HOST}:{sipp_port}", headers), (HOST, sipp_port), "UDP", loop.time()
        )
        glue.flush()
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        deadline = loop.time() + 5
        while not glue.responses and loop.time() < deadline:
            await asyncio.sleep(0.05)
        errors = "".join(path.read_text() for path in workdir.glob("*_errors.log"))
        return process.returncode or 0, glue, errors or output.decode(errors="replace")[-2000:]
    finally:
        udp.close()


def test_our_client_transaction_gets_an_answer_from_sipp(tmp_path: Path) -> None:
    assert shutil.which("sipp"), "sipp must be installed for the interop test"

    returncode, glue, diagnostics = asyncio.run(options_to_sipp(tmp_path))

    assert returncode == 0, diagnostics
    assert glue.responses == [200]
