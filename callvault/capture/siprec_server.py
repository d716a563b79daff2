"""The SIPREC recording server (SRS, RFC 7866): asyncio adapter around the sans-I/O cores.

Sockets live here and nothing else: SIP bytes go into the transaction layer
(callvault.sip), offers are understood by callvault.siprec.session, RTP is
spooled by capture.rtp_receiver. Every call event is journalled in the call's
spool *before* the database hears of it; the database is updated from the
journal in a background thread so a slow database never stalls capture.

Logs say direction: ``<`` received, ``>`` sent, ``x`` dropped, and carry the call id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callvault.capture.metrics import SNAPSHOT_INTERVAL, RecorderMetrics, serve_metrics
from callvault.capture.rtp_receiver import PortPool, PortsExhausted, RtpReceiver
from callvault.phone import normalize
from callvault.sdp import SdpError, SessionDescription, build_answer
from callvault.sip.dialog import Dialog
from callvault.sip.message import Request, SipParseError, make_response, new_tag
from callvault.sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    CloseConnection,
    MessageDropped,
    RequestReceived,
    TimerConfig,
    TransactionLayer,
)
from callvault.siprec.metadata import RecordingMetadata
from callvault.siprec.session import (
    ACCEPTED_TYPES,
    OfferError,
    SiprecOffer,
    guess_direction,
    parse_offer,
    participants_of,
)
from callvault.spool.writer import CallSpool, SpoolFlusher, StreamSpool

log = logging.getLogger("callvault.recorder")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
SUPPORTED = "siprec, timer"
SERVER = "callvault-srs"
FLUSH_INTERVAL = 0.5
CHECK_INTERVAL = 1.0
END_GRACE = 0.2  # a call's streams close after this long without packets once it has ended
END_GRACE_MAX = 5.0


@dataclass
class StreamState:
    index: int
    receiver: RtpReceiver
    spool: StreamSpool
    port: int
    remote: str | None
    direction: str


@dataclass
class Session:
    call_id: str  # our UUID for the call
    sip_call_id: str
    dialog: Dialog
    spool: CallSpool
    addr: tuple[str, int]
    transport: str
    invite_txn: str
    sdp: SessionDescription | None = None
    metadata: RecordingMetadata | None = None
    streams: dict[int, StreamState] = field(default_factory=dict)
    answered: bool = False
    ended: bool = False
    cancelled: bool = False
    answer_version: int = 1
    last_media: float = 0.0
    last_answer: bytes = b""


def _payload_types(sdp: SessionDescription, index: int) -> dict[str, list[Any]]:
    media = sdp.media[index]
    fmtp = media.fmtp
    out: dict[str, list[Any]] = {}
    for pt, rtpmap in media.rtpmap.items():
        out[str(pt)] = [rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels, fmtp.get(pt)]
    return out


def _main_codec(types: dict[str, list[Any]]) -> str:
    for enc, _rate, _ch, _f in types.values():
        if enc.lower() not in ("telephone-event", "cn"):
            return str(enc)
    return ""


class Recorder:
    """Owns the SIP transaction layer, the sessions and their RTP ports."""

    def __init__(
        self,
        *,
        spool_root: Path,
        sip_host: str,
        sip_port: int,
        rtp_range: tuple[int, int],
        media_ip: str | None = None,
        rtp_timeout: float = 60.0,
        fsync: bool = False,
        on_db: Any = None,
        on_ring: Any = None,
        run_dir: Path | None = None,
    ) -> None:
        self.loop = asyncio.get_event_loop()
        self.spool_root = spool_root
        self.sip_host = sip_host
        self.sip_port = sip_port
        self.media_ip = media_ip
        self.rtp_timeout = rtp_timeout
        self.fsync = fsync
        self.ports = PortPool(*rtp_range)
        # 100 Trying only when the answer takes longer than 200 ms (RFC 3261 §17.2.1).
        self.layer = TransactionLayer(
            local_host=media_ip or sip_host, local_port=sip_port, timers=TimerConfig(trying_delay=0.2)
        )
        self.flusher = SpoolFlusher()
        self.sessions: dict[tuple[str, str], Session] = {}  # (SIP Call-ID, our tag)
        self.pending: dict[str, Session] = {}  # invite txn id -> session being set up
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.AbstractServer | None = None
        self.tcp_conns: dict[tuple[str, int], asyncio.Transport] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.on_db = on_db  # callable(spool_dir, ended: bool) run in the database thread
        self.db = ThreadPoolExecutor(1, thread_name_prefix="callvault-db")
        # The screen-pop of a ringing call goes out from its own thread: it must not wait behind
        # the database thread's queue, nor for the spool and the answer.
        self.on_ring = on_ring  # callable(invite record) run in the live thread
        self.live = ThreadPoolExecutor(1, thread_name_prefix="callvault-live")
        self.io = ThreadPoolExecutor(4, thread_name_prefix="callvault-io")
        self.stats = {"calls": 0, "active": 0, "rejected": 0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._periodic: list[asyncio.TimerHandle] = []
        self.metrics = RecorderMetrics(self, run_dir)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.sip_host else socket.AF_INET
        self.udp, _ = await self.loop.create_datagram_endpoint(
            lambda: _SipUdp(self), local_addr=(self.sip_host, self.sip_port), family=family
        )
        self.tcp_server = await self.loop.create_server(
            lambda: _SipTcp(self), self.sip_host, self.sip_port, family=family, reuse_address=True
        )
        self._every(FLUSH_INTERVAL, self.metrics.timed(self._flush))
        self._every(SNAPSHOT_INTERVAL, self.metrics.tick)
        self._every(CHECK_INTERVAL, self._check_media)
        log.info(
            "listening for SIPREC on %s:%d (UDP+TCP), RTP ports %d available",
            self.sip_host,
            self.sip_port,
            self.ports.capacity,
        )

    def _every(self, interval: float, fn: Any) -> None:
        def tick() -> None:
            try:
                fn()
            except Exception:
                log.exception("x periodic task %s failed", fn.__name__)
            self._periodic.append(self.loop.call_later(interval, tick))

        self._periodic.append(self.loop.call_later(interval, tick))

    async def stop(self) -> None:
        """Clean shutdown: tell every client the recording ends, keep all audio."""
        ending = list(self.sessions.values())
        for s in ending:
            self._end(s, "shutdown", send_bye=True)
        self._pump()
        deadline = self.loop.time() + END_GRACE_MAX + 1
        while any(not s.spool.closed for s in ending) and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for h in self._periodic:
            h.cancel()
        self.metrics.close()
        if self.udp:
            self.udp.close()
        if self.tcp_server:
            self.tcp_server.close()
        for t in list(self.tcp_conns.values()):
            t.close()
        await self.loop.run_in_executor(None, self.io.shutdown, True)
        await self.loop.run_in_executor(None, self.db.shutdown, True)
        await self.loop.run_in_executor(None, self.live.shutdown, True)

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine as a task that is kept referenced until it finishes."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ SIP input
    def on_sip(self, data: bytes, addr: tuple[str, int], transport: str) -> None:
        now = self.loop.time()
        self.layer.receive(data, addr, transport, now)
        self._pump()

    def _pump(self) -> None:
        """Handle every pending event, send what the layer produced, re-arm its timer."""
        now = self.loop.time()
        while (event := self.layer.next_event()) is not None:
            try:
                self._handle(event, now)
            except Exception:
                log.exception("x error handling %s", type(event).__name__)
        for data, addr, transport in self.layer.datagrams_to_send():
            self._send(data, addr, transport)
        deadline = self.layer.get_timer()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.layer.handle_timer(self.loop.time())
        self._pump()

    def _send(self, data: bytes, addr: tuple[str, int], transport: str) -> None:
        if transport == "UDP":
            if self.udp is not None:
                self.udp.sendto(data, addr)
        else:
            conn = self.tcp_conns.get(addr)
            if conn is None or conn.is_closing():
                log.warning("x cannot send to %s over %s: connection closed", addr, transport)
                return
            conn.write(data)

    def _handle(self, ev: Any, now: float) -> None:
        if isinstance(ev, RequestReceived):
            self._on_request(ev, now)
        elif isinstance(ev, AckReceived):
            s = self._session_for(ev.request)
            if s is not None:
                s.dialog.receive_request(ev.request, now)
        elif isinstance(ev, CancelReceived):
            s = self.pending.get(ev.invite_txn_id)
            if s is not None:
                # the answer is still being prepared; _new_call sees the flag and ends the call
                log.info("< CANCEL call=%s", s.call_id)
                s.cancelled = True
        elif isinstance(ev, AckTimeout):
            s = next((x for x in self.sessions.values() if x.sip_call_id == ev.call_id), None)
            if s is not None and not s.ended:
                log.warning("x no ACK for 200 OK call=%s; ending", s.call_id)
                self._end(s, "ack_timeout", send_bye=True)
        elif isinstance(ev, MessageDropped):
            log.info("x dropped SIP from %s: %s%s", ev.addr, ev.reason, " (400 sent)" if ev.answered else "")
        elif isinstance(ev, CloseConnection):
            conn = self.tcp_conns.pop(ev.addr, None)
            if conn is not None:
                log.info("x closing %s connection from %s: %s", ev.transport, ev.addr, ev.reason)
                conn.close()

    def _session_for(self, request: Request) -> Session | None:
        try:
            tag = request.to.tag
        except SipParseError:
            return None
        if not tag:
            return None
        return self.sessions.get((request.call_id, tag))

    def _respond(
        self,
        ev: RequestReceived,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        session: Session | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        hdrs = [("Server", SERVER), *(headers or [])]
        if session is not None:
            resp = session.dialog.make_response(
                ev.request, status, reason, headers=hdrs, body=body, content_type=content_type
            )
        else:
            # §8.2.6.2: a response other than 100 carries a To tag of ours
            resp = make_response(
                ev.request,
                status,
                reason,
                headers=hdrs,
                body=body,
                content_type=content_type,
                to_tag=new_tag() if status > 100 else None,
            )
        self.layer.send_response(ev.txn_id, resp, self.loop.time())

    def _on_request(self, ev: RequestReceived, now: float) -> None:
        req = ev.request
        method = req.method
        try:
            to_tag = req.to.tag
        except SipParseError as exc:
            self._respond(ev, 400, str(exc)[:100])
            return
        if method == "INVITE" and not to_tag:
            self._spawn(self._new_call(ev))
            return
        if not to_tag:
            if method == "OPTIONS":
                self._respond(
                    ev, 200, headers=[("Allow", ALLOW), ("Accept", ACCEPTED_TYPES), ("Supported", SUPPORTED)]
                )
            elif method in ("BYE", "UPDATE", "INFO"):
                self._respond(ev, 481)
            elif method == "REGISTER":
                self._respond(ev, 405, headers=[("Allow", ALLOW)])
            else:
                self._respond(ev, 501, headers=[("Allow", ALLOW)])
            return
        s = self._session_for(req)
        if s is None:
            self._respond(ev, 481)
            return
        refusal = s.dialog.receive_request(req, now)
        if refusal is not None:
            self._respond(ev, refusal, session=s)
            return
        if method in ("INVITE", "UPDATE"):
            self._reoffer(ev, s)
        elif method == "BYE":
            log.info("< BYE call=%s", s.call_id)
            self._respond(ev, 200, session=s)
            self._end(s, "bye", send_bye=False)
        elif method in ("OPTIONS", "INFO"):
            self._respond(ev, 200, session=s, headers=[("Allow", ALLOW)])
        else:
            self._respond(ev, 501, session=s, headers=[("Allow", ALLOW)])

    # ------------------------------------------------------------------ calls
    def _local_ip(self, addr: tuple[str, int]) -> str:
        if self.media_ip:
            return self.media_ip
        if self.sip_host not in ("0.0.0.0", "::"):
            return self.sip_host
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(addr)
            return str(probe.getsockname()[0])

    def _bind_ports(
        self, s: Session, offer: SiprecOffer, local_ip: str
    ) -> tuple[list[int | None], dict[int, socket.socket]]:
        """Bind a UDP port for every offered audio m-line that has no stream yet."""
        assert offer.sdp is not None
        ports: list[int | None] = []
        bound: dict[int, socket.socket] = {}
        listen = (
            local_ip
            if self.media_ip or self.sip_host not in ("0.0.0.0", "::")
            else ("::" if ":" in local_ip else "0.0.0.0")
        )
        try:
            for index, media in enumerate(offer.sdp.media):
                existing = s.streams.get(index)
                if media.disabled or media.media.lower() != "audio":
                    ports.append(None)
                elif existing is not None:
                    ports.append(existing.port)
                else:
                    sock = self.ports.bind(listen)
                    bound[index] = sock
                    ports.append(sock.getsockname()[1])
        except PortsExhausted:
            self._close_sockets(bound)
            raise
        return ports, bound

    def _close_sockets(self, bound: dict[int, socket.socket]) -> None:
        for sock in bound.values():
            self.ports.release(sock.getsockname()[1])
            sock.close()

    def _attach(
        self, s: Session, offer: SiprecOffer, bound: dict[int, socket.socket], spools: dict[int, StreamSpool]
    ) -> None:
        """Start receiving on the bound sockets; each packet goes to its stream's spool."""
        assert offer.sdp is not None
        for index, sock in bound.items():
            spool = spools[index]
            self.flusher.add(spool)
            receiver = RtpReceiver(spool.append)
            receiver.last_change = self.loop.time()
            self._spawn(self.loop.create_datagram_endpoint(_factory(receiver), sock=sock))
            s.streams[index] = StreamState(
                index,
                receiver,
                spool,
                sock.getsockname()[1],
                offer.sdp.connection_address(index),
                offer.sdp.effective_direction(index),
            )

    def _stream_records(
        self, offer: SiprecOffer, answer: SessionDescription, media: dict[int, tuple[int, str | None, str]]
    ) -> list[dict[str, Any]]:
        """Journal records of the streams; ``media`` maps m-line index to (port, remote, direction)."""
        assert offer.sdp is not None
        out = []
        by_index = {si.index: si for si in offer.streams}
        for index, (port, remote, direction) in sorted(media.items()):
            info = by_index.get(index)
            types = _payload_types(offer.sdp, index)
            out.append(
                {
                    "index": index,
                    "label": (info.label if info else None) or "",
                    "stream_id": (info.stream_id if info else None) or "",
                    "role": (info.role if info else "unknown"),
                    "participant_id": (info.participant.participant_id if info and info.participant else ""),
                    "payload_types": types,
                    "codec": _main_codec(types),
                    "local_port": port,
                    "remote": remote,
                    "direction": direction,
                    "unsupported": answer.media[index].port == 0,
                }
            )
        return out

    async def _new_call(self, ev: RequestReceived) -> None:
        req = ev.request
        now = self.loop.time()
        try:
            offer = parse_offer(req)
        except OfferError as exc:
            log.info("x INVITE %s rejected: %s", req.call_id, exc)
            self.stats["rejected"] += 1
            self._respond(
                ev,
                exc.status,
                exc.reason,
                headers=[("Accept", ACCEPTED_TYPES)] if exc.status == 415 else None,
            )
            self._pump()
            return
        if offer.sdp is None:
            self._respond(ev, 488, "No SDP offer")
            self._pump()
            return
        call_id = str(uuid.uuid4())
        try:
            dialog = Dialog.create_uas(
                req, contact=f"<sip:srs@{self._contact_host(ev.addr)}>;+sip.srs", now=now
            )
        except (SipParseError, ValueError) as exc:
            self._respond(ev, 400, str(exc)[:100])
            self._pump()
            return
        local_ip = self._local_ip(ev.addr)
        s = Session(
            call_id=call_id,
            sip_call_id=req.call_id,
            dialog=dialog,
            spool=None,  # type: ignore[arg-type]
            addr=ev.addr,
            transport=ev.transport,
            invite_txn=ev.txn_id,
            sdp=offer.sdp,
            metadata=offer.metadata,
            last_media=now,
        )
        try:
            ports, bound = self._bind_ports(s, offer, local_ip)
        except PortsExhausted:
            log.error("x no RTP ports left: rejecting call %s", req.call_id)
            self._respond(ev, 503, "No RTP ports available", headers=[("Retry-After", "5")])
            self._pump()
            return
        try:
            answer = build_answer(
                offer.sdp,
                local_ip=local_ip,
                ports=ports,
                session_id=int(time.time()),
                session_version=s.answer_version,
            )
        except SdpError as exc:
            log.info("x INVITE %s: %s", req.call_id, exc)
            self._close_sockets(bound)
            self._respond(ev, 488, str(exc)[:100], session=s)
            self._pump()
            return
        for index in [i for i in bound if answer.media[i].port == 0]:
            self._close_sockets({index: bound.pop(index)})

        participants = participants_of(offer)
        caller = next((p for p in participants if p["role"] == "caller"), {})
        callee = next((p for p in participants if p["role"] == "callee"), {})
        session_ids = offer.metadata.sessions if offer.metadata else ()
        invite_record = {
            "type": "invite",
            "t": time.time(),
            "call_id": call_id,
            "source": "siprec",
            "sip_call_id": req.call_id,
            "session_id": session_ids[0].session_id if session_ids else "",
            "from": str(req.headers.get("From") or ""),
            "to": str(req.headers.get("To") or ""),
            "remote": f"{ev.addr[0]}:{ev.addr[1]}",
            "transport": ev.transport,
            "direction": guess_direction(
                normalize(caller.get("number", "")), normalize(callee.get("number", ""))
            ),
            "participants": participants,
            "streams": self._stream_records(
                offer,
                answer,
                {
                    i: (
                        sock.getsockname()[1],
                        offer.sdp.connection_address(i),
                        offer.sdp.effective_direction(i),
                    )
                    for i, sock in bound.items()
                },
            ),
            "extensions": {e.name: e.fields for e in offer.metadata.extensions} if offer.metadata else {},
        }
        self._ring(invite_record)
        # The call is answered only once its spool is durable on disk; that file I/O runs
        # off the event loop so capture of other calls never waits for it.
        self.pending[ev.txn_id] = s
        try:
            spool, spools = await self.loop.run_in_executor(
                self.io, self._create_spool, call_id.replace("-", ""), invite_record, sorted(bound)
            )
        except Exception as exc:
            self.pending.pop(ev.txn_id, None)
            log.error("x cannot create spool for call %s: %s", req.call_id, exc)
            self._ring({**invite_record, "type": "ended", "reason": "spool"})
            self._close_sockets(bound)
            self._respond(ev, 503, "Recording storage unavailable", headers=[("Retry-After", "30")])
            self._pump()
            return
        s.spool = spool
        self._attach(s, offer, bound, spools)
        self.pending.pop(ev.txn_id, None)
        if s.cancelled:
            self._end(s, "cancel", send_bye=False)  # the layer already answered 487
            self._pump()
            return
        body = bytes(answer)
        s.last_answer = body
        self.sessions[(req.call_id, dialog.local_tag)] = s
        sent = self.layer.send_response(
            ev.txn_id,
            dialog.make_response(
                req,
                200,
                headers=[("Server", SERVER), ("Supported", SUPPORTED), ("Allow", ALLOW)],
                body=body,
                content_type="application/sdp",
            ),
            self.loop.time(),
        )
        if not sent:
            self._end(s, "cancel", send_bye=False)
            self._pump()
            return
        s.answered = True
        self.stats["calls"] += 1
        self.stats["active"] += 1
        spool.journal({"type": "answered", "t": time.time()})
        log.info(
            "> 200 OK call=%s sip=%s streams=%s",
            call_id,
            req.call_id,
            {i: st.port for i, st in s.streams.items()},
        )
        self._to_db(s, ended=False)
        self._pump()

    def _create_spool(
        self, key: str, invite: dict[str, Any], indexes: list[int]
    ) -> tuple[CallSpool, dict[int, StreamSpool]]:
        spool = CallSpool(self.spool_root, key, fsync=self.fsync)
        streams = {i: spool.open_stream(i) for i in indexes}
        spool.journal(invite)
        spool.sync()
        return spool, streams

    def _contact_host(self, addr: tuple[str, int]) -> str:
        ip = self._local_ip(addr)
        host = f"[{ip}]" if ":" in ip else ip
        return f"{host}:{self.sip_port}"

    def _reoffer(self, ev: RequestReceived, s: Session) -> None:
        """re-INVITE / UPDATE: hold, resume, moved media, participants added."""
        req = ev.request
        if not req.body:
            # no offer: answer with our current SDP (re-INVITE) or nothing (UPDATE refresh)
            if req.method == "INVITE" and s.last_answer:
                self._respond(ev, 200, session=s, body=s.last_answer, content_type="application/sdp")
            else:
                self._respond(ev, 200, session=s)
            return
        try:
            offer = parse_offer(req, previous=s.metadata, previous_sdp=s.sdp)
        except OfferError as exc:
            self._respond(ev, exc.status, exc.reason, session=s)
            return
        assert offer.sdp is not None
        previous = s.sdp
        local_ip = self._local_ip(s.addr)
        try:
            ports, bound = self._bind_ports(s, offer, local_ip)
        except PortsExhausted as exc:
            self._respond(ev, 488, str(exc)[:100], session=s)
            return
        try:
            answer = build_answer(
                offer.sdp,
                local_ip=local_ip,
                ports=ports,
                session_id=int(time.time()),
                session_version=s.answer_version + 1,
            )
        except SdpError as exc:
            # keep the session as it was (RFC 3264 §8: a failed re-offer changes nothing)
            self._close_sockets(bound)
            self._respond(ev, 488, str(exc)[:100], session=s)
            return
        s.answer_version += 1
        for index in [i for i in bound if answer.media[i].port == 0]:
            self._close_sockets({index: bound.pop(index)})
        self._attach(s, offer, bound, {i: s.spool.open_stream(i) for i in bound})
        for index, st in s.streams.items():
            if index >= len(offer.sdp.media):
                continue
            remote = offer.sdp.connection_address(index)
            moved = (
                previous is not None
                and index < len(previous.media)
                and (
                    previous.media[index].port != offer.sdp.media[index].port
                    or previous.connection_address(index) != remote
                )
            )
            if moved:
                st.receiver.unlatch()
            st.remote = remote
            st.direction = offer.sdp.effective_direction(index)
        s.sdp = offer.sdp
        s.metadata = offer.metadata
        s.spool.journal(
            {
                "type": "update",
                "t": time.time(),
                "method": req.method,
                "participants": participants_of(offer),
                "streams": self._stream_records(
                    offer, answer, {i: (st.port, st.remote, st.direction) for i, st in s.streams.items()}
                ),
                "hold": all(st.direction in ("inactive", "recvonly") for st in s.streams.values()),
            }
        )
        body = bytes(answer)
        s.last_answer = body
        self._respond(ev, 200, session=s, body=body, content_type="application/sdp")
        log.info(
            "< %s call=%s directions=%s",
            req.method,
            s.call_id,
            {i: st.direction for i, st in s.streams.items()},
        )
        self._to_db(s, ended=False)

    def _end(self, s: Session, reason: str, *, send_bye: bool) -> None:
        if s.ended:
            return
        s.ended = True
        self.metrics.session_ended(s)
        if s.answered:
            self.stats["active"] -= 1
        if send_bye and s.answered:
            try:
                bye = s.dialog.create_request("BYE", self.loop.time())
                self.layer.send_request(bye, s.addr, s.transport, self.loop.time())
                log.info("> BYE call=%s (%s)", s.call_id, reason)
            except ValueError as exc:
                log.warning("x cannot send BYE call=%s: %s", s.call_id, exc)
        s.spool.journal({"type": "ended", "t": time.time(), "reason": reason})
        self.sessions.pop((s.sip_call_id, s.dialog.local_tag), None)
        # The last packets of a call are often still in flight, or in the socket buffers,
        # when the BYE arrives: keep receiving a moment before closing the streams.
        self._close_when_quiet(s, self.loop.time(), -1)

    def _close_when_quiet(self, s: Session, ended: float, seen: int) -> None:
        """Close the streams once no packet has come for END_GRACE (at most END_GRACE_MAX).

        When the event loop is behind, packets sent before the BYE still wait in the
        sockets' queues; they are read as long as they keep coming, and only then closed.
        """
        received = sum(st.receiver.received for st in s.streams.values())
        if received == seen or self.loop.time() - ended >= END_GRACE_MAX:
            self._close_session(s)
        else:
            self.loop.call_later(END_GRACE, self._close_when_quiet, s, ended, received)

    def _close_session(self, s: Session) -> None:
        for st in s.streams.values():
            st.receiver.close()
            self.ports.release(st.port)
        foreign = sum(st.receiver.foreign for st in s.streams.values())
        if foreign:
            s.spool.journal({"type": "foreign_packets", "count": foreign})
        s.spool.flush()
        s.spool.mark_complete()
        s.spool.close()
        self._to_db(s, ended=True)

    # ------------------------------------------------------------------ periodic
    def _flush(self) -> None:
        self.flusher.flush_all()

    def _check_media(self) -> None:
        """End calls whose RTP stopped (the client vanished without BYE); holds don't count."""
        now = self.loop.time()
        for s in list(self.sessions.values()):
            if not s.answered or s.ended:
                continue
            receiving = False
            for st in s.streams.values():
                r = st.receiver
                if r.received != r.last_count:
                    r.last_count = r.received
                    r.last_change = now
                if st.direction in ("sendonly", "sendrecv") and now - r.last_change < self.rtp_timeout:
                    receiving = True
                if st.direction not in ("sendonly", "sendrecv"):
                    r.last_change = now  # on hold: the clock restarts on resume
                    receiving = True
            if not receiving and s.streams:
                log.warning("x no RTP for %.0fs call=%s; ending", self.rtp_timeout, s.call_id)
                self._end(s, "rtp_timeout", send_bye=True)
        self._pump()

    # ------------------------------------------------------------------ database
    def _ring(self, record: dict[str, Any]) -> None:
        """Announce a ringing call (or its early end) to live screens, before the database has it."""
        if self.on_ring is None:
            return
        fut = self.live.submit(self.on_ring, record)
        fut.add_done_callback(_log_ring_failure)

    def _to_db(self, s: Session, *, ended: bool) -> None:
        if self.on_db is None:
            return
        path = s.spool.path
        fut = self.db.submit(self.on_db, path, ended)
        fut.add_done_callback(_log_db_failure)


def _factory(receiver: RtpReceiver) -> Any:
    def make() -> RtpReceiver:
        return receiver

    return make


def _log_db_failure(fut: Any) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("x database update failed (the spool keeps the call; it will be retried): %s", exc)


def _log_ring_failure(fut: Any) -> None:
    exc = fut.exception()
    if exc is not None:
        log.warning("x ringing event not published (the call is recorded regardless): %s", exc)


class _SipUdp(asyncio.DatagramProtocol):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.rec.on_sip(data, addr[:2], "UDP")
        except Exception:
            log.exception("x SIP/UDP input from %s", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("x SIP/UDP socket error: %s", exc)


class _SipTcp(asyncio.Protocol):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.addr: tuple[str, int] = ("", 0)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.addr = transport.get_extra_info("peername")[:2]
        self.rec.tcp_conns[self.addr] = self.transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.rec.on_sip(data, self.addr, "TCP")
        except Exception:
            log.exception("x SIP/TCP input from %s", self.addr)

    def connection_lost(self, exc: Exception | None) -> None:
        self.rec.tcp_conns.pop(self.addr, None)
        self.rec.layer.connection_lost(self.addr, "TCP")


# ---------------------------------------------------------------------- database side (worker thread)
def db_update(spool_dir: Path, ended: bool) -> None:
    """Runs in the recorder's database thread: mirror the journal into the database."""
    from django.db import close_old_connections

    from callvault.apps.recordings.finalize import ingest_spool
    from callvault.apps.recordings.tasks import enqueue_finalize

    close_old_connections()
    call_id = ingest_spool(spool_dir, interrupted=False)
    if ended and call_id:
        enqueue_finalize(call_id)


def ring_update(record: dict[str, Any]) -> None:
    """Runs in the recorder's live thread: publish ``call.ringing`` from the INVITE's journal record."""
    from callvault.apps.calls.journal import publish_early

    publish_early(record)


def recover_spools(spool_root: Path) -> int:
    """On start: every spool left by a crash becomes an `interrupted` call with its audio."""
    from callvault.apps.recordings.finalize import ingest_spool, recover_spool
    from callvault.apps.recordings.tasks import enqueue_finalize
    from callvault.spool.recovery import find_spools

    n = 0
    for info in find_spools(spool_root):
        try:
            if info.closed:
                call_id = ingest_spool(info.path, interrupted=False)
            else:
                call_id = recover_spool(info.path)
                n += 1
            if call_id:
                enqueue_finalize(call_id)
        except Exception:
            log.exception("x could not recover spool %s; left in place", info.path)
    if n:
        log.warning("recovered %d call(s) interrupted by a crash", n)
    return n


def run_recorder(
    *,
    sip_host: str,
    sip_port: int,
    rtp_range: tuple[int, int],
    media_ip: str | None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int = 0,
) -> int:
    from django.conf import settings

    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        pass
    recover_spools(settings.SPOOL_DIR)
    # Imported now rather than by the first ringing call (whose screen-pop would wait for it).
    import callvault.apps.accounts.services
    import callvault.apps.calls.journal
    import callvault.apps.web.live  # noqa: F401

    async def main() -> None:
        rec = Recorder(
            spool_root=settings.SPOOL_DIR,
            sip_host=sip_host,
            sip_port=sip_port,
            rtp_range=rtp_range,
            media_ip=media_ip,
            rtp_timeout=settings.RTP_TIMEOUT,
            fsync=settings.SPOOL_FSYNC,
            on_db=db_update,
            on_ring=ring_update,
            run_dir=settings.DATA_DIR / "run",
        )
        await rec.start()
        if metrics_port:
            await serve_metrics(rec.metrics, metrics_host, metrics_port, token=settings.METRICS_TOKEN)
            log.info("serving recorder metrics on http://%s:%d/metrics", metrics_host, metrics_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: ending %d active call(s)", len(rec.sessions))
        await rec.stop()

    asyncio.run(main())
    return 0
