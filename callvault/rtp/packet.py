"""RTP fixed header (RFC 3550 §5.1): parse, serialise and a fast header peek.

Sans-I/O: operates on ``bytes`` only.  ``RtpPacket.parse`` validates the whole
packet; :func:`peek` reads just the fixed header with one ``struct`` call for
bulk passes over a spool; :func:`is_rtcp` spots RTCP that shares the port
(rtcp-mux, RFC 5761) so it can be skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
HEADER_SIZE = 12
CSRC_SIZE = 4
EXTENSION_HEADER_SIZE = 4
EXTENSION_WORD_SIZE = 4
MAX_CSRC_COUNT = 15
MAX_PAYLOAD_TYPE = 0x7F
SEQUENCE_MODULO = 1 << 16
TIMESTAMP_MODULO = 1 << 32

_VERSION_SHIFT = 6
_PADDING_BIT = 0x20
_EXTENSION_BIT = 0x10
_CSRC_COUNT_MASK = 0x0F
_MARKER_BIT = 0x80
_PAYLOAD_TYPE_MASK = 0x7F
# First header byte of the common case: V=2, P=0, X=0, CC=0.
PLAIN_FIRST_BYTE = RTP_VERSION << _VERSION_SHIFT

# RFC 5761 §4: with rtcp-mux, second bytes 192-223 are RTCP packet types
# (SR=200, RR=201, SDES=202, BYE=203, APP=204, RTPFB=205, PSFB=206, XR=207).
RTCP_TYPE_FIRST = 192
RTCP_TYPE_LAST = 223
RTCP_MIN_SIZE = 4

_FIXED_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_CSRC = struct.Struct("!I")


class RtpError(ValueError):
    """A datagram is not a well-formed RTP packet (or a field is out of range)."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet.  ``padding`` is the number of padding octets (incl. the count octet)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension_data: bytes = b""
    padding: int = 0
    version: int = RTP_VERSION

    @property
    def extension(self) -> bool:
        return self.extension_profile is not None

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        size = len(data)
        if size < HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {size} bytes, need at least {HEADER_SIZE}")
        first, second, seq, ts, ssrc = _FIXED_HEADER.unpack_from(data)
        version = first >> _VERSION_SHIFT
        if version != RTP_VERSION:
            raise RtpError(f"unsupported RTP version {version}, expected {RTP_VERSION}")
        offset = HEADER_SIZE
        csrc_count = first & _CSRC_COUNT_MASK
        csrc_end = offset + csrc_count * CSRC_SIZE
        if csrc_end > size:
            raise RtpError(f"CSRC count {csrc_count} needs {csrc_end} bytes but packet has {size}")
        csrc = [_CSRC.unpack_from(data, offset + i * CSRC_SIZE)[0] for i in range(csrc_count)]
        offset = csrc_end
        extension_profile: int | None = None
        extension_data = b""
        if first & _EXTENSION_BIT:
            if offset + EXTENSION_HEADER_SIZE > size:
                raise RtpError(f"extension header truncated at offset {offset} (packet has {size} bytes)")
            extension_profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            offset += EXTENSION_HEADER_SIZE
            end = offset + words * EXTENSION_WORD_SIZE
            if end > size:
                raise RtpError(f"extension length {words} words needs {end} bytes but packet has {size}")
            extension_data = bytes(data[offset:end])
            offset = end
        payload_end = size
        padding = 0
        if first & _PADDING_BIT:
            padding = data[-1]
            if padding == 0:
                raise RtpError("padding bit set but padding count is 0")
            if padding > size - offset:
                raise RtpError(f"padding count {padding} exceeds the {size - offset} bytes after the header")
            payload_end -= padding
        return cls(
            payload_type=second & _PAYLOAD_TYPE_MASK,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[offset:payload_end]),
            marker=bool(second & _MARKER_BIT),
            csrc=csrc,
            extension_profile=extension_profile,
            extension_data=extension_data,
            padding=padding,
            version=version,
        )

    def __bytes__(self) -> bytes:
        self._check_ranges()
        first = (self.version << _VERSION_SHIFT) | len(self.csrc)
        if self.padding:
            first |= _PADDING_BIT
        if self.extension_profile is not None:
            first |= _EXTENSION_BIT
        second = self.payload_type | (_MARKER_BIT if self.marker else 0)
        parts = [_FIXED_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        parts.extend(_CSRC.pack(c) for c in self.csrc)
        if self.extension_profile is not None:
            words = len(self.extension_data) // EXTENSION_WORD_SIZE
            parts.append(_EXTENSION_HEADER.pack(self.extension_profile, words))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)

    def _check_ranges(self) -> None:
        if self.version != RTP_VERSION:
            raise RtpError(f"cannot serialise RTP version {self.version}")
        if not 0 <= self.payload_type <= MAX_PAYLOAD_TYPE:
            raise RtpError(f"payload type {self.payload_type} out of range 0-{MAX_PAYLOAD_TYPE}")
        if not 0 <= self.sequence_number < SEQUENCE_MODULO:
            raise RtpError(f"sequence number {self.sequence_number} out of range 0-{SEQUENCE_MODULO - 1}")
        if not 0 <= self.timestamp < TIMESTAMP_MODULO:
            raise RtpError(f"timestamp {self.timestamp} out of range 0-{TIMESTAMP_MODULO - 1}")
        if not 0 <= self.ssrc < TIMESTAMP_MODULO:
            raise RtpError(f"SSRC {self.ssrc} out of range 0-{TIMESTAMP_MODULO - 1}")
        if len(self.csrc) > MAX_CSRC_COUNT:
            raise RtpError(f"{len(self.csrc)} CSRCs, at most {MAX_CSRC_COUNT} allowed")
        if len(self.extension_data) % EXTENSION_WORD_SIZE:
            raise RtpError(f"extension data length {len(self.extension_data)} is not a multiple of 4")
        if not 0 <= self.padding <= 0xFF:
            raise RtpError(f"padding {self.padding} out of range 0-255")


def peek(data: bytes) -> tuple[int, int, int, int] | None:
    """Return ``(payload_type, sequence_number, timestamp, ssrc)`` or ``None`` if not RTP v2.

    One ``struct`` unpack; does not validate CSRC/extension/padding (use
    :meth:`RtpPacket.parse` for that).
    """
    if len(data) < HEADER_SIZE:
        return None
    first, second, seq, ts, ssrc = _FIXED_HEADER.unpack_from(data)
    if first >> _VERSION_SHIFT != RTP_VERSION:
        return None
    return second & _PAYLOAD_TYPE_MASK, seq, ts, ssrc


def is_rtcp(data: bytes) -> bool:
    """True for an RTCP packet multiplexed on the RTP port (RFC 5761 §4)."""
    return (
        len(data) >= RTCP_MIN_SIZE
        and data[0] >> _VERSION_SHIFT == RTP_VERSION
        and RTCP_TYPE_FIRST <= data[1] <= RTCP_TYPE_LAST
    )
