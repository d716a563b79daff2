"""Message framing for stream transports (TCP, later TLS), RFC 3261 §18.3 and RFC 5626 §3.5.1.

A ``StreamFramer`` is fed whatever the socket delivered and hands back
complete messages, cut with the mandatory Content-Length.  CRLFs between
messages are skipped; every double CRLF (an RFC 5626 keep-alive "ping") is
counted so the caller can answer it with a single CRLF "pong".

Framing errors (no Content-Length, header section or body over the limit)
raise ``SipParseError``; the stream can no longer be resynchronised, so the
caller must close the connection.  The framer refuses further input after one.
"""

from __future__ import annotations

import re
from typing import Final

from callvault.sip.message import (
    MAX_MESSAGE_SIZE,
    Request,
    Response,
    SipParseError,
    content_length_of,
    parse_head,
    parse_message,
)

PONG: Final = b"\r\n"
_LF: Final = 0x0A
_CR: Final = 0x0D
# End of the header section: an empty line, CRLF or (liberally) bare LF line breaks.
_HEAD_END_RE: Final = re.compile(rb"\r?\n\r?\n")
_HEAD_END_MAX_LEN: Final = 4


class StreamFramer:
    """Cuts a byte stream into SIP messages.  One instance per connection."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._scan_from = 0  # where to resume looking for the end of the header section
        self._line_breaks = 0  # consecutive line breaks seen between messages
        self._pings = 0
        self._pending_total: int | None = None  # size of a message whose head is complete
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a message."""
        return len(self._buffer)

    @property
    def error(self) -> str | None:
        """The framing error that broke this stream, if any."""
        return self._error

    def take_pings(self) -> int:
        """Keep-alive pings (double CRLF) seen since the last call; answer each with ``PONG``."""
        pings, self._pings = self._pings, 0
        return pings

    def feed(self, data: bytes) -> list[Request | Response]:
        """Buffer ``data`` and return the messages it completes, parsed."""
        return [parse_message(frame) for frame in self.feed_frames(data)]

    def feed_frames(self, data: bytes) -> list[bytes]:
        """Buffer ``data`` and return the raw bytes of every message it completes."""
        if self._error is not None:
            raise SipParseError(f"stream already failed: {self._error}")
        self._buffer += data
        frames: list[bytes] = []
        while True:
            self._skip_keepalives()
            if not self._buffer:
                return frames
            frame = self._next_frame()
            if frame is None:
                return frames
            frames.append(frame)

    def _fail(self, message: str) -> SipParseError:
        self._error = message
        self._buffer.clear()
        return SipParseError(message)

    def _skip_keepalives(self) -> None:
        """Drop CRLFs before a start line (§7.5), counting double-CRLF pings (RFC 5626)."""
        index = 0
        while index < len(self._buffer) and self._buffer[index] in (_CR, _LF):
            if self._buffer[index] == _LF:
                self._line_breaks += 1
                if self._line_breaks == 2:
                    self._pings += 1
                    self._line_breaks = 0
            index += 1
        if index:
            del self._buffer[:index]
            self._scan_from = 0
        if self._buffer:
            self._line_breaks = 0

    def _next_frame(self) -> bytes | None:
        if self._pending_total is not None:
            return self._cut(self._pending_total)
        match = _HEAD_END_RE.search(self._buffer, self._scan_from)
        if match is None:
            if len(self._buffer) > self.max_message_size:
                raise self._fail(f"header section exceeds {self.max_message_size} bytes")
            self._scan_from = max(0, len(self._buffer) - _HEAD_END_MAX_LEN + 1)
            return None
        head_end = match.end()
        try:
            _, headers, _ = parse_head(bytes(self._buffer[:head_end]))
            length = content_length_of(headers)
        except SipParseError as exc:
            raise self._fail(str(exc)) from None
        if length is None:
            raise self._fail("missing Content-Length on stream transport")
        total = head_end + length
        if total > self.max_message_size:
            raise self._fail(f"message of {total} bytes exceeds the limit of {self.max_message_size} bytes")
        return self._cut(total)

    def _cut(self, total: int) -> bytes | None:
        if len(self._buffer) < total:
            self._pending_total = total
            return None
        frame = bytes(self._buffer[:total])
        del self._buffer[:total]
        self._scan_from = 0
        self._pending_total = None
        return frame
