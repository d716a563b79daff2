"""RTP reception for the recorder: the capture hot path.

Per packet the recorder does only this: compare the source with the latched
peer, count, and append ``(arrival, packet)`` to the stream's spool. Parsing,
reordering, loss accounting and decoding happen later, in the finalize job,
from the spool (see DESIGN.md: capture never encodes).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from time import time as _time

log = logging.getLogger("callvault.rtp")

Append = Callable[[float, bytes], None]


class RtpReceiver(asyncio.DatagramProtocol):
    """Receives one RTP stream on one UDP port and spools it.

    Latching: the first source to send is the peer; packets from any other
    source are dropped and counted (they could be an attacker injecting audio).
    """

    __slots__ = ("append", "closed", "foreign", "last_change", "last_count", "peer", "received", "transport")

    def __init__(self, append: Append) -> None:
        self.append = append
        self.peer: tuple[str, int] | None = None
        self.received = 0
        self.foreign = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = False
        # For the RTP timeout check, sampled by a periodic timer rather than per packet.
        self.last_count = 0
        self.last_change = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.closed:  # the call ended before the socket was attached
            transport.close()
            return
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # the hot path
        peer = self.peer
        if peer != addr:
            if peer is not None:
                self.foreign += 1
                return
            self.peer = addr
        self.received += 1
        self.append(_time(), data)

    def unlatch(self) -> None:
        """Accept a new source (the sender moved its media in a re-INVITE)."""
        self.peer = None

    def error_received(self, exc: Exception) -> None:
        log.debug("x rtp socket error: %s", exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class PortsExhausted(Exception):
    pass


class PortPool:
    """Even RTP ports from a range (the odd neighbour is left for RTCP), reused round-robin."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        self._free = list(range(first, high, 2))
        self._cursor = 0
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def bind(self, host: str) -> socket.socket:
        """Bind a UDP socket on the next free port; ports taken by other programs are skipped."""
        tried = 0
        n = len(self._free)
        while tried < n:
            port = self._free[self._cursor]
            self._cursor = (self._cursor + 1) % n
            tried += 1
            if port in self._in_use:
                continue
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            self._in_use.add(port)
            return sock
        raise PortsExhausted(f"no free RTP port in {self._free[0]}-{self._free[-1] + 1}")

    def release(self, port: int) -> None:
        self._in_use.discard(port)
