"""Shared helpers for the spool tests."""

from __future__ import annotations

import struct

RTP_HEADER = struct.Struct("!BBHII")


def rtp_packet(seq: int, payload_len: int = 160, ssrc: int = 0x1234ABCD) -> bytes:
    """A G.711-sized RTP packet whose payload encodes its sequence number."""
    header = RTP_HEADER.pack(0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
    return header + bytes((seq + i) & 0xFF for i in range(payload_len))
