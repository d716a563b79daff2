"""Check an Ogg Opus file without decoding it: complete, intact, and how long.

Finalize used to verify each recording by decoding all of it (12 % of its CPU).
Reading the container says as much about completeness for a fraction of the cost:

* the file is a gapless run of Ogg pages (RFC 3533) from the first byte to the
  last, every page's CRC-32 is right, one logical stream, page sequence numbers
  0, 1, 2, ... without a hole, BOS on the first page and EOS on the last only;
* the first packet is a valid ``OpusHead`` (RFC 7845 §5.1) with the expected
  channel count and input rate, the second ``OpusTags``;
* every audio packet has a valid TOC byte (RFC 6716 §3.1); their durations add
  up to the final granule position (within one packet: the encoder pads the
  last one, the granule position trims it), and the granule positions never
  go backwards.

The duration reported is ``(final granule - pre-skip) / 48000``, which is what a
decoder plays.  The encoder's own output is what is checked here: a truncated or
torn write, a stream cut short, or a file overwritten by something else fails.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["OggCheckError", "OggOpusInfo", "check_ogg_opus", "ogg_crc32"]

_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, sequence, crc, segments
_CONTINUED, _BOS, _EOS = 0x01, 0x02, 0x04
_OPUS_RATE = 48000
# RFC 6716 §3.1: frame duration in 48 kHz samples by TOC configuration number.
_FRAME_SAMPLES = tuple(
    [480, 960, 1920, 2880] * 3  # SILK-only NB/MB/WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # hybrid SWB/FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT-only NB/WB/SWB/FB: 2.5, 5, 10, 20 ms
)
_MAX_PACKET_SAMPLES = 5760  # 120 ms
_BITREV = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


class OggCheckError(ValueError):
    """The file is not a complete, intact Ogg Opus stream."""


@dataclass(frozen=True)
class OggOpusInfo:
    duration: float
    """Seconds a decoder plays: (final granule position - pre-skip) / 48000."""
    channels: int
    sample_rate: int
    """The input rate recorded in OpusHead."""
    pre_skip: int
    final_granule: int
    pages: int
    packets: int
    """Audio packets (OpusHead and OpusTags not counted)."""


@lru_cache(maxsize=64)
def _zero_crc(length: int) -> int:
    return zlib.crc32(bytes(length))


def ogg_crc32(data: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, MSB first, init 0, no final xor).

    zlib only has the bit-reflected CRC with init and final xor 0xFFFFFFFF. Reflecting the
    input bytes, cancelling the init/xor terms with the CRC of as many zero bytes (CRC is
    linear) and reflecting the result gives the Ogg CRC at C speed.
    """
    reflected = zlib.crc32(data.translate(_BITREV)) ^ _zero_crc(len(data))
    return int(f"{reflected:032b}"[::-1], 2)


def _packet_samples(packet: bytes, where: str) -> int:
    if not packet:
        raise OggCheckError(f"{where}: empty audio packet")
    toc = packet[0]
    frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            raise OggCheckError(f"{where}: code 3 packet without a frame count")
        count = packet[1] & 0x3F
        if count == 0:
            raise OggCheckError(f"{where}: code 3 packet with zero frames")
    samples = frame * count
    if samples > _MAX_PACKET_SAMPLES:
        raise OggCheckError(f"{where}: packet of {samples / 48:.1f} ms exceeds 120 ms")
    return samples


def check_ogg_opus(path: Path, *, channels: int | None = None, sample_rate: int | None = None) -> OggOpusInfo:
    """Check the whole file (see the module docstring); raises :class:`OggCheckError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise OggCheckError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    pos = 0
    end = len(data)
    serial: int | None = None
    expected_seq = 0
    packets: list[bytes] = []
    granules: list[tuple[int, int]] = []  # (packets completed so far, granule) per page ending a packet
    pending: list[bytes] = []
    eos = False
    while pos < end:
        where = f"{path}: page {expected_seq} at byte {pos}"
        if eos:
            raise OggCheckError(f"{where}: data after the end-of-stream page")
        if end - pos < _PAGE.size:
            raise OggCheckError(f"{where}: truncated page header")
        capture, version, kind, granule, page_serial, seq, crc, nseg = _PAGE.unpack_from(data, pos)
        if capture != b"OggS":
            raise OggCheckError(f"{where}: no Ogg capture pattern")
        if version != 0:
            raise OggCheckError(f"{where}: unknown Ogg version {version}")
        lacing_at = pos + _PAGE.size
        body_at = lacing_at + nseg
        if body_at > end:
            raise OggCheckError(f"{where}: truncated segment table")
        lacing = data[lacing_at:body_at]
        page_end = body_at + sum(lacing)
        if page_end > end:
            raise OggCheckError(f"{where}: truncated page ({page_end - end} bytes missing)")
        page = bytearray(data[pos:page_end])
        page[22:26] = b"\0\0\0\0"
        if ogg_crc32(bytes(page)) != crc:
            raise OggCheckError(f"{where}: CRC mismatch (damaged page)")
        if serial is None:
            serial = page_serial
        elif page_serial != serial:
            raise OggCheckError(f"{where}: a second logical stream (serial {page_serial:#x})")
        if seq != expected_seq:
            raise OggCheckError(f"{where}: page sequence {seq}, expected {expected_seq} (pages missing)")
        if bool(kind & _BOS) != (expected_seq == 0):
            raise OggCheckError(f"{where}: beginning-of-stream flag misplaced")
        if bool(kind & _CONTINUED) != bool(pending):
            raise OggCheckError(f"{where}: continuation flag does not match the previous page")
        eos = bool(kind & _EOS)
        offset = body_at
        completed = False
        for size in lacing:
            pending.append(data[offset : offset + size])
            offset += size
            if size < 255:
                packets.append(b"".join(pending))
                pending = []
                completed = True
        if completed:
            granules.append((len(packets), granule))
        elif granule != -1:
            raise OggCheckError(f"{where}: granule position on a page that ends no packet")
        expected_seq += 1
        pos = page_end
    if not eos:
        raise OggCheckError(f"{path}: no end-of-stream page (file incomplete)")
    if pending:
        raise OggCheckError(f"{path}: the last packet is unfinished")
    if len(packets) < 2:
        raise OggCheckError(f"{path}: no OpusHead/OpusTags headers")
    head, tags = packets[0], packets[1]
    if len(head) < 19 or not head.startswith(b"OpusHead") or head[8] >> 4 != 0:
        raise OggCheckError(f"{path}: first packet is not a version 0/1 OpusHead")
    if not tags.startswith(b"OpusTags"):
        raise OggCheckError(f"{path}: second packet is not OpusTags")
    if granules[0] != (1, 0) or (len(granules) > 1 and granules[1] != (2, 0)):
        raise OggCheckError(f"{path}: the headers must sit alone on their pages with granule 0")
    head_channels = head[9]
    pre_skip, input_rate = struct.unpack_from("<HI", head, 10)
    if channels is not None and head_channels != channels:
        raise OggCheckError(f"{path}: {head_channels} channels, expected {channels}")
    if sample_rate is not None and input_rate != sample_rate:
        raise OggCheckError(f"{path}: input rate {input_rate} Hz, expected {sample_rate}")
    # Granule position of each page = samples of all packets completed by it (the last one trimmed).
    total = 0
    done = 2
    last_granule = 0
    for index, (upto, granule) in enumerate(granules[2:], start=2):
        for number in range(done, upto):
            total += _packet_samples(packets[number], f"{path}: packet {number}")
        done = upto
        if granule < last_granule:
            raise OggCheckError(f"{path}: granule position goes backwards on page with packet {upto}")
        last_granule = granule
        is_last = index == len(granules) - 1
        if granule > total or (not is_last and granule != total):
            raise OggCheckError(
                f"{path}: granule position {granule} does not match the {total} samples of its packets"
            )
    audio_packets = len(packets) - 2
    if audio_packets == 0:
        raise OggCheckError(f"{path}: no audio packets")
    last = _packet_samples(packets[-1], f"{path}: last packet")
    if total - last_granule >= last:
        raise OggCheckError(
            f"{path}: final granule {last_granule} trims more than the last packet ({total} samples)"
        )
    if last_granule < pre_skip:
        raise OggCheckError(f"{path}: final granule {last_granule} is before the pre-skip {pre_skip}")
    return OggOpusInfo(
        duration=(last_granule - pre_skip) / _OPUS_RATE,
        channels=head_channels,
        sample_rate=input_rate,
        pre_skip=pre_skip,
        final_granule=last_granule,
        pages=expected_seq,
        packets=audio_packets,
    )
