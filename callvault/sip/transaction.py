"""Sans-I/O SIP transaction layer for a UAS (RFC 3261 §17, §18, RFC 6026, RFC 3581).

``TransactionLayer`` owns no sockets and reads no clock.  The adapter:

1. hands it input with ``receive(data, addr, transport, now)`` (a datagram on
   UDP, any chunk of the byte stream on TCP/TLS: framing is done here),
2. drains ``next_event()`` and reacts (``RequestReceived`` -> answer with
   ``send_response``; ``CloseConnection`` -> close that connection...),
3. sends everything from ``datagrams_to_send()`` (UDP datagrams, or bytes for
   the stream connection to that address),
4. calls ``handle_timer(now)`` once ``now >= get_timer()``.

Server transactions follow §17.2 (INVITE with the RFC 6026 Accepted state,
non-INVITE); client non-INVITE transactions (§17.1.2) let the server send BYE
and OPTIONS.  The UAS 2xx retransmission of §13.3.1.4 runs in the Accepted
state and stops at the matching ACK (same Call-ID and CSeq number), or ends
in ``AckTimeout`` after 64*T1.

Design choices:

* 100 Trying is sent as soon as an INVITE arrives (``trying_delay=0``).  It
  stops the peer's Timer A retransmissions at once and costs one small
  datagram; a recording server's answer may wait on media allocation, so
  "the TU will answer within 200 ms" is not something the layer can know.
  ``TimerConfig(trying_delay=0.2)`` gives the §17.2.1 deferred behaviour.
* CANCEL is handled here (§9.2): 200 for the CANCEL, 487 for a pending
  INVITE, and ``CancelReceived`` for the TU; 481 if nothing matches.
* The 2xx is retransmitted on reliable transports too (§13.3.1.4 is
  end-to-end: a proxy may forward over UDP); ``retransmit_2xx_on_reliable``
  turns that off.  Timers E and G only run on unreliable transports, and
  I, J and K are zero on reliable ones.
* Responses go where §18.2.2 says: the same connection on reliable
  transports, otherwise ``maddr``, then the source address and port when
  ``rport`` was requested (RFC 3581), then ``received`` / sent-by.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Final, TypeAlias

from callvault.sip._state import (
    INITIAL_STATES,
    STATE_TIMERS,
    TIMER_INPUTS,
    TXN_TABLES,
    Action,
    Timer,
    TxnInput,
    TxnKind,
    TxnState,
)
from callvault.sip.framing import PONG, StreamFramer
from callvault.sip.message import (
    SIP_VERSION,
    Request,
    Response,
    SipParseError,
    TokenSource,
    Via,
    format_host,
    make_response,
    new_branch,
    new_tag,
    parse_head,
    parse_message,
    try_bad_request_response,
)

Address: TypeAlias = tuple[str, int]

STREAM_TRANSPORTS: Final = frozenset({"TCP", "TLS"})
RELIABLE_TRANSPORTS: Final = frozenset({"TCP", "TLS", "SCTP", "WS", "WSS"})
DEFAULT_MAX_FORWARDS: Final = 70
TIMEOUT_FACTOR: Final = 64  # Timers F, H, J and L are 64*T1
RETRANSMITTING_TIMERS: Final = frozenset({Timer.E, Timer.G, Timer.RETRANSMIT_2XX})
STAT_NAMES: Final = (
    "received",  # messages (datagrams or stream frames) handed to the parser
    "sent",  # everything queued for transmission, retransmissions included
    "retransmissions",  # responses/requests sent again (timers or retransmitted requests)
    "dropped",  # input thrown away: unanswerable malformations, stray responses, framing errors
    "bad_requests",  # malformed requests answered with 400
    "absorbed",  # retransmissions swallowed by a transaction
    "keepalives",  # CRLF keep-alives seen (stream pings are answered with a pong)
)


@dataclass(frozen=True)
class TimerConfig:
    """RFC 3261 timer values in seconds (§17.1.1.1, table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.0  # 0: 100 Trying at once; >0: only if the TU is silent that long
    retransmit_2xx_on_reliable: bool = True


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class RequestReceived:
    """A new request for the TU; answer it with ``send_response(txn_id, ...)``."""

    request: Request
    txn_id: str
    addr: Address
    transport: str


@dataclass(frozen=True)
class AckReceived:
    """An ACK for a 2xx (or an ACK matching nothing): end-to-end, so it is the TU's."""

    request: Request
    addr: Address
    transport: str = "UDP"


@dataclass(frozen=True)
class CancelReceived:
    """A CANCEL hit a pending INVITE; the layer already sent 200 (CANCEL) and 487 (INVITE)."""

    request: Request
    invite_txn_id: str
    addr: Address
    transport: str = "UDP"


@dataclass(frozen=True)
class ResponseReceived:
    """A response for one of our client transactions (1xx, then the final one)."""

    response: Response
    txn_id: str


@dataclass(frozen=True)
class TransactionTimeout:
    """Timer F (client: no final response) or Timer H (server: no ACK for a non-2xx final)."""

    txn_id: str
    method: str


@dataclass(frozen=True)
class MessageDropped:
    """Input that did not reach the TU; ``answered`` when a 400 was sent back."""

    reason: str
    addr: Address
    transport: str = "UDP"
    answered: bool = False


@dataclass(frozen=True)
class AckTimeout:
    """No ACK for our 2xx within 64*T1 (§13.3.1.4): the session should be ended with BYE."""

    call_id: str
    txn_id: str


@dataclass(frozen=True)
class CloseConnection:
    """The byte stream from ``addr`` cannot be framed any more; close the connection."""

    addr: Address
    transport: str
    reason: str


Event: TypeAlias = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | TransactionTimeout
    | MessageDropped
    | AckTimeout
    | CloseConnection
)
Datagram: TypeAlias = tuple[bytes, Address, str]
Payload: TypeAlias = bytes | AckReceived | ResponseReceived | None


# --------------------------------------------------------------------------- transactions


@dataclass(eq=False)
class _Transaction:
    txn_id: str
    kind: TxnKind
    key: tuple[str, ...]
    request: Request
    transport: str
    reliable: bool
    dest: Address  # where our responses (server) or requests (client) go
    state: TxnState
    last_message: bytes | None = None  # server: last response sent; client: the request
    to_tag: str | None = None
    ack_key: tuple[str, int] | None = None
    acked: bool = False
    timers: dict[Timer, tuple[float, int]] = field(default_factory=dict)  # deadline, heap sequence
    intervals: dict[Timer, float] = field(default_factory=dict)


def _server_key(request: Request, method: str | None = None) -> tuple[str, ...]:
    """§17.2.3 matching key; ACK is folded onto INVITE, CANCEL stays separate."""
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    if via.has_magic_cookie:
        host, port = via.sent_by()
        return ("rfc3261", via.branch or "", host, str(port), method)
    # RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number and top Via.  The To tag is
    # left out because the ACK for a non-2xx carries our tag while the INVITE had none.
    return (
        "rfc2543",
        request.uri,
        request.from_.tag or "",
        request.call_id,
        str(request.cseq[0]),
        str(via),
        method,
    )


def _response_destination(via: Via, addr: Address, transport: str) -> Address:
    """§18.2.2 (with RFC 3581 rport) for a request that arrived from ``addr``."""
    if transport in RELIABLE_TRANSPORTS:
        return addr
    _, port = via.sent_by()
    maddr = via.params.get("maddr")
    if maddr:
        return maddr, port
    if via.rport is not None:
        return via.received or addr[0], via.rport
    return via.received or via.host, port


def _stamp_via(request: Request, addr: Address) -> None:
    """§18.2.1: add ``received`` (and fill ``rport``, RFC 3581 §4) to the top Via."""
    via = request.top_via
    if via.rport_requested and via.rport is None:
        via.params["rport"] = str(addr[1])
        via.params["received"] = addr[0]
    elif via.host.lower() != addr[0].lower():
        via.params["received"] = addr[0]
    else:
        return
    request.headers.replace_first_element("Via", str(via))


class TransactionLayer:
    """Server transactions, the UAS 2xx retransmission and client non-INVITE transactions."""

    def __init__(
        self,
        *,
        local_host: str = "127.0.0.1",
        local_port: int = 5060,
        timers: TimerConfig | None = None,
        token: TokenSource = secrets.token_hex,
    ) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self.timers = timers or TimerConfig()
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._token = token
        self._events: deque[Event] = deque()
        self._outgoing: list[Datagram] = []
        self._txns: dict[str, _Transaction] = {}
        self._server_keys: dict[tuple[str, ...], str] = {}
        self._client_keys: dict[tuple[str, ...], str] = {}
        self._ack_index: dict[tuple[str, int], str] = {}  # (Call-ID, CSeq number) of a sent 2xx
        self._framers: dict[tuple[str, Address], StreamFramer] = {}
        self._heap: list[tuple[float, int, str, Timer]] = []
        self._sequence = itertools.count()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ adapter API

    def receive(self, data: bytes, addr: Address, transport: str, now: float) -> None:
        """Input from the network: one datagram (UDP) or a chunk of a byte stream (TCP/TLS)."""
        transport = transport.upper()
        if transport in STREAM_TRANSPORTS:
            self._receive_stream(data, addr, transport, now)
        elif not data.strip(b"\r\n"):
            self.stats["keepalives"] += 1  # CRLF keep-alive on a datagram transport
        else:
            self._receive_message(data, addr, transport, now)

    def connection_lost(self, addr: Address, transport: str) -> None:
        """Forget the framing state of a closed stream connection."""
        self._framers.pop((transport.upper(), addr), None)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[Datagram]:
        """Everything to transmit since the last call, as (data, addr, transport)."""
        out, self._outgoing = self._outgoing, []
        return out

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called, or None if no timer runs."""
        while self._heap:
            deadline, sequence, txn_id, timer = self._heap[0]
            txn = self._txns.get(txn_id)
            if txn is not None and txn.timers.get(timer) == (deadline, sequence):
                return deadline
            heapq.heappop(self._heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``; each fires at most once per call."""
        while self._heap and self._heap[0][0] <= now:
            deadline, sequence, txn_id, timer = heapq.heappop(self._heap)
            txn = self._txns.get(txn_id)
            if txn is None or txn.timers.get(timer) != (deadline, sequence):
                continue
            del txn.timers[timer]
            self._fire(txn, timer, deadline, now)

    # ------------------------------------------------------------------ TU API

    def send_response(self, txn_id: str, response: Response, now: float) -> bool:
        """Send a response on a server transaction.

        Returns False when the transaction is gone or can no longer send that
        response (for instance a 200 racing a CANCEL that already got a 487);
        a TU must treat that as "the request was not answered by you".
        Raises ValueError for a client transaction id or a response that must
        not be sent (bad status, no To tag on anything but 100).
        """
        txn = self._txns.get(txn_id)
        if txn is None:
            return False
        if txn.kind is TxnKind.CLIENT_NON_INVITE:
            raise ValueError(f"transaction {txn_id!r} is a client transaction")
        status = response.status
        if not 100 <= status <= 699:
            raise ValueError(f"invalid status code: {status}")
        if status < 200:
            event = TxnInput.SEND_1XX
        elif txn.kind is TxnKind.SERVER_INVITE and status < 300:
            event = TxnInput.SEND_2XX
        else:
            event = TxnInput.SEND_FINAL
        to_tag = response.to.tag
        if status > 100 and not to_tag:
            raise ValueError(f"a {status} response needs a To tag (§8.2.6.2)")
        if event not in TXN_TABLES[txn.kind][txn.state]:
            return False
        data = bytes(response)
        txn.to_tag = to_tag or txn.to_tag
        if event is TxnInput.SEND_2XX and txn.ack_key is None:
            txn.ack_key = (txn.request.call_id, txn.request.cseq[0])
            self._ack_index[txn.ack_key] = txn_id
        self._input(txn, event, now, data)
        return True

    def send_request(self, request: Request, addr: Address, transport: str, now: float) -> str:
        """Start a client non-INVITE transaction (BYE, OPTIONS...) and return its id.

        Without a Via, one is added for ``local_host:local_port`` with a fresh
        branch and ``rport``; Max-Forwards defaults to 70.  The caller's object
        is not modified.
        """
        transport = transport.upper()
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"client {request.method} transactions are not supported")
        request = replace(request, headers=request.headers.copy())
        if not request.headers.get_all("Via"):
            sent_by = f"{format_host(self.local_host)}:{self.local_port}"
            branch = new_branch(self._token)
            request.headers.insert(0, "Via", f"{SIP_VERSION}/{transport} {sent_by};branch={branch};rport")
        if request.headers.get("Max-Forwards") is None:
            request.headers.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
        data = bytes(request)
        parse_message(data)  # strict in what we send: refuse to emit what we would reject
        via = request.top_via
        if not via.has_magic_cookie:
            raise ValueError("the top Via of an outgoing request needs a branch starting with z9hG4bK")
        key = (via.branch or "", request.method)
        if key in self._client_keys:
            raise ValueError(f"a client transaction with branch {via.branch!r} already exists")
        txn = _Transaction(
            txn_id=f"c{next(self._ids)}",
            kind=TxnKind.CLIENT_NON_INVITE,
            key=key,
            request=request,
            transport=transport,
            reliable=transport in RELIABLE_TRANSPORTS,
            dest=addr,
            state=INITIAL_STATES[TxnKind.CLIENT_NON_INVITE],
            last_message=data,
        )
        self._txns[txn.txn_id] = txn
        self._client_keys[key] = txn.txn_id
        self._transmit(data, addr, transport)
        self._enter(txn, now)
        return txn.txn_id

    def transaction_state(self, txn_id: str) -> TxnState | None:
        """The state of a live transaction (None once it has terminated)."""
        txn = self._txns.get(txn_id)
        return None if txn is None else txn.state

    # ------------------------------------------------------------------ input

    def _receive_stream(self, data: bytes, addr: Address, transport: str, now: float) -> None:
        framer = self._framers.get((transport, addr))
        if framer is None:
            framer = self._framers[(transport, addr)] = StreamFramer()
        try:
            frames = framer.feed_frames(data)
        except SipParseError as exc:
            del self._framers[(transport, addr)]
            self.stats["dropped"] += 1
            self._events.append(MessageDropped(str(exc), addr, transport))
            self._events.append(CloseConnection(addr, transport, str(exc)))
            return
        for _ in range(framer.take_pings()):
            self.stats["keepalives"] += 1
            self._outgoing.append((PONG, addr, transport))
        for frame in frames:
            self._receive_message(frame, addr, transport, now)

    def _receive_message(self, data: bytes, addr: Address, transport: str, now: float) -> None:
        self.stats["received"] += 1
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._reject(data, str(exc), addr, transport)
            return
        if isinstance(message, Response):
            self._receive_response(message, addr, transport, now)
        else:
            self._receive_request(message, addr, transport, now)

    def _reject(self, data: bytes, reason: str, addr: Address, transport: str) -> None:
        reply = try_bad_request_response(data, reason, to_tag=new_tag(self._token))
        if reply is None:
            self.stats["dropped"] += 1
            self._events.append(MessageDropped(reason, addr, transport))
            return
        _, headers, _ = parse_head(reply)
        via = Via.parse(headers.get_all("Via")[0])
        self.stats["bad_requests"] += 1
        self._transmit(reply, _response_destination(via, addr, transport), transport)
        self._events.append(MessageDropped(reason, addr, transport, answered=True))

    def _receive_request(self, request: Request, addr: Address, transport: str, now: float) -> None:
        key = _server_key(request)
        _stamp_via(request, addr)
        if request.method == "ACK":
            self._receive_ack(request, key, addr, transport, now)
            return
        existing = self._server_keys.get(key)
        if existing is not None:
            self._input(self._txns[existing], TxnInput.REQUEST_RETRANSMISSION, now)
            return
        txn = self._new_server_txn(request, key, addr, transport, now)
        if request.method == "CANCEL":
            self._receive_cancel(txn, addr, transport, now)
            return
        self._events.append(RequestReceived(request, txn.txn_id, addr, transport))
        if txn.kind is TxnKind.SERVER_INVITE and self.timers.trying_delay <= 0:
            self._input(txn, TxnInput.TIMER_TRYING, now)

    def _receive_ack(
        self, request: Request, key: tuple[str, ...], addr: Address, transport: str, now: float
    ) -> None:
        txn_id = self._server_keys.get(key)
        txn = self._txns.get(txn_id) if txn_id else None
        if txn is not None and txn.state in (TxnState.COMPLETED, TxnState.CONFIRMED):
            self._input(txn, TxnInput.ACK, now)  # ACK for our non-2xx final response
            return
        if txn is None or txn.state is not TxnState.ACCEPTED:
            txn_id = self._ack_index.get((request.call_id, request.cseq[0]))
            txn = self._txns.get(txn_id) if txn_id else None
        event = AckReceived(request, addr, transport)
        if txn is not None and txn.state is TxnState.ACCEPTED:
            self._input(txn, TxnInput.ACK_2XX, now, event)
        else:
            self._events.append(event)  # late or unknown ACK: the TU decides

    def _receive_cancel(self, cancel_txn: _Transaction, addr: Address, transport: str, now: float) -> None:
        """§9.2: answer the CANCEL, and the INVITE with 487 if it is still pending."""
        cancel = cancel_txn.request
        invite_id = self._server_keys.get(_server_key(cancel, "INVITE"))
        invite_txn = self._txns.get(invite_id) if invite_id else None
        if invite_txn is None or invite_txn.kind is not TxnKind.SERVER_INVITE:
            response = make_response(cancel, 481, to_tag=new_tag(self._token))
            self.send_response(cancel_txn.txn_id, response, now)
            return
        tag = invite_txn.to_tag or new_tag(self._token)
        self.send_response(cancel_txn.txn_id, make_response(cancel, 200, to_tag=tag), now)
        if invite_txn.state is TxnState.PROCEEDING:
            self.send_response(invite_txn.txn_id, make_response(invite_txn.request, 487, to_tag=tag), now)
            self._events.append(CancelReceived(cancel, invite_txn.txn_id, addr, transport))

    def _receive_response(self, response: Response, addr: Address, transport: str, now: float) -> None:
        key = (response.top_via.branch or "", response.cseq[1])
        txn_id = self._client_keys.get(key)
        if txn_id is None:
            self.stats["dropped"] += 1
            self._events.append(MessageDropped("response matches no transaction", addr, transport))
            return
        event = TxnInput.RECEIVE_1XX if response.status < 200 else TxnInput.RECEIVE_FINAL
        self._input(self._txns[txn_id], event, now, ResponseReceived(response, txn_id))

    def _new_server_txn(
        self, request: Request, key: tuple[str, ...], addr: Address, transport: str, now: float
    ) -> _Transaction:
        kind = TxnKind.SERVER_INVITE if request.method == "INVITE" else TxnKind.SERVER_NON_INVITE
        txn = _Transaction(
            txn_id=f"s{next(self._ids)}",
            kind=kind,
            key=key,
            request=request,
            transport=transport,
            reliable=transport in RELIABLE_TRANSPORTS,
            dest=_response_destination(request.top_via, addr, transport),
            state=INITIAL_STATES[kind],
        )
        self._txns[txn.txn_id] = txn
        self._server_keys[key] = txn.txn_id
        self._enter(txn, now)
        return txn

    # ------------------------------------------------------------------ state machine driver

    def _input(self, txn: _Transaction, event: TxnInput, now: float, payload: Payload = None) -> None:
        transition = TXN_TABLES[txn.kind][txn.state].get(event)
        if transition is None:
            return  # not meaningful in this state (e.g. a stray response): ignored
        previous = txn.state
        txn.state = transition.next_state
        self._perform(txn, transition.action, payload)
        if txn.state is TxnState.TERMINATED:
            self._destroy(txn)
        elif txn.state is not previous:
            self._enter(txn, now)

    def _perform(self, txn: _Transaction, action: Action, payload: Payload) -> None:
        if action is Action.SEND_RESPONSE:
            assert isinstance(payload, bytes)
            txn.last_message = payload
            txn.timers.pop(Timer.TRYING, None)
            self._transmit(payload, txn.dest, txn.transport)
        elif action is Action.SEND_TRYING:
            if txn.last_message is None:
                txn.last_message = bytes(make_response(txn.request, 100))
                self._transmit(txn.last_message, txn.dest, txn.transport)
        elif action in (Action.RESEND_RESPONSE, Action.RESEND_REQUEST):
            if txn.last_message is None:
                self.stats["absorbed"] += 1
            else:
                self.stats["retransmissions"] += 1
                self._transmit(txn.last_message, txn.dest, txn.transport)
        elif action is Action.ABSORB:
            self.stats["absorbed"] += 1
        elif action is Action.DELIVER_RESPONSE:
            assert isinstance(payload, ResponseReceived)
            self._events.append(payload)
        elif action is Action.DELIVER_ACK:
            assert isinstance(payload, AckReceived)
            txn.acked = True
            txn.timers.pop(Timer.RETRANSMIT_2XX, None)
            self._events.append(payload)
        elif action is Action.TIMEOUT:
            self._events.append(TransactionTimeout(txn.txn_id, txn.request.method))
        elif action is Action.END_ACCEPTED and not txn.acked:
            self._events.append(AckTimeout(txn.request.call_id, txn.txn_id))

    def _enter(self, txn: _Transaction, now: float) -> None:
        """Cancel timers that do not run in the new state and start those that do."""
        wanted = STATE_TIMERS.get((txn.kind, txn.state), frozenset())
        for timer in [t for t in txn.timers if t not in wanted]:
            del txn.timers[timer]
        state = txn.state
        immediate: list[Timer] = []
        for timer in sorted(wanted - txn.timers.keys(), key=lambda t: t.name):
            duration = self._duration(txn, timer)
            if duration is None:
                continue
            if duration <= 0:
                immediate.append(timer)
                continue
            txn.intervals[timer] = duration
            self._schedule(txn, timer, now + duration)
        for timer in immediate:  # zero timers (I, J, K on reliable transports) fire right away
            if txn.txn_id in self._txns and txn.state is state:
                self._input(txn, TIMER_INPUTS[timer], now)

    def _duration(self, txn: _Transaction, timer: Timer) -> float | None:
        config = self.timers
        reliable = txn.reliable
        if timer is Timer.TRYING:
            return config.trying_delay if config.trying_delay > 0 else None
        if timer is Timer.RETRANSMIT_2XX:
            return None if reliable and not config.retransmit_2xx_on_reliable else config.t1
        if timer in (Timer.E, Timer.G):
            return None if reliable else config.t1
        if timer in (Timer.F, Timer.H, Timer.L):
            return TIMEOUT_FACTOR * config.t1
        if timer in (Timer.I, Timer.K):
            return 0.0 if reliable else config.t4
        return 0.0 if reliable else TIMEOUT_FACTOR * config.t1  # Timer J

    def _schedule(self, txn: _Transaction, timer: Timer, deadline: float) -> None:
        sequence = next(self._sequence)
        txn.timers[timer] = (deadline, sequence)
        heapq.heappush(self._heap, (deadline, sequence, txn.txn_id, timer))

    def _fire(self, txn: _Transaction, timer: Timer, deadline: float, now: float) -> None:
        state = txn.state
        self._input(txn, TIMER_INPUTS[timer], now)
        if timer not in RETRANSMITTING_TIMERS or txn.txn_id not in self._txns or txn.state is not state:
            return
        if timer in txn.timers or (timer is Timer.RETRANSMIT_2XX and txn.acked):
            return
        if timer is Timer.E and state is TxnState.PROCEEDING:
            interval = self.timers.t2  # §17.1.2.2: in Proceeding, E is reset to T2
        else:
            interval = min(2 * txn.intervals[timer], self.timers.t2)
        txn.intervals[timer] = interval
        next_deadline = deadline + interval
        if next_deadline <= now:  # called late: do not fire a burst, restart the cadence
            next_deadline = now + interval
        self._schedule(txn, timer, next_deadline)

    def _destroy(self, txn: _Transaction) -> None:
        self._txns.pop(txn.txn_id, None)
        keys = self._client_keys if txn.kind is TxnKind.CLIENT_NON_INVITE else self._server_keys
        if keys.get(txn.key) == txn.txn_id:
            del keys[txn.key]
        if txn.ack_key is not None and self._ack_index.get(txn.ack_key) == txn.txn_id:
            del self._ack_index[txn.ack_key]
        txn.timers.clear()

    def _transmit(self, data: bytes, addr: Address, transport: str) -> None:
        self.stats["sent"] += 1
        self._outgoing.append((data, addr, transport))
