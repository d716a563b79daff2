"""G.711 μ-law (PCMU) and A-law (PCMA): table-driven numpy decode and encode.

Decoding is a 256-entry lookup per byte; encoding (used by the test client)
is a 65536-entry lookup indexed by the int16 sample.  Both tables are built
once, vectorised, from the ITU-T G.711 segment definitions (the same
formulation as the reference ``g711.c``), and produce 16-bit linear PCM.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from callvault.codecs.base import Pcm, downmix, silence

ULAW: Final = "ulaw"
ALAW: Final = "alaw"
Law = Literal["ulaw", "alaw"]
G711_CLOCK_RATE = 8000

_SIGN_BIT = 0x80
_SEGMENT_SHIFT = 4
_SEGMENT_MASK = 0x70
_MANTISSA_MASK = 0x0F
_ULAW_BIAS = 0x84  # 132: μ-law bias in 16-bit scale
_ULAW_CLIP = 8159  # largest 14-bit magnitude before the bias
_ULAW_BIAS_14 = 0x21  # the bias in 14-bit scale
_ALAW_XOR = 0x55  # even-bit inversion
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_SEGMENTS = 8


class G711Error(ValueError):
    """Input to a G.711 encoder/decoder has the wrong type or shape."""


def _build_ulaw_decode() -> Pcm:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code & _SEGMENT_MASK) >> _SEGMENT_SHIFT
    magnitude = (((code & _MANTISSA_MASK) << 3) + _ULAW_BIAS) << segment
    magnitude -= _ULAW_BIAS
    return np.where(code & _SIGN_BIT, -magnitude, magnitude).astype(np.int16)


def _build_alaw_decode() -> Pcm:
    code = np.arange(256, dtype=np.int32) ^ _ALAW_XOR
    segment = (code & _SEGMENT_MASK) >> _SEGMENT_SHIFT
    mantissa = (code & _MANTISSA_MASK) << 4
    magnitude = np.where(
        segment == 0,
        mantissa + 8,
        (mantissa + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & _SIGN_BIT, magnitude, -magnitude).astype(np.int16)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + _ULAW_BIAS_14
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)
    value = (segment << _SEGMENT_SHIFT) | ((magnitude >> (segment + 1)) & _MANTISSA_MASK)
    value = np.where(segment >= _SEGMENTS, 0x7F, value)
    table = (value ^ mask).astype(np.uint8)
    return np.roll(table, -32768)  # index by the int16 bit pattern viewed as uint16


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)
    shift = np.where(segment < 2, 1, segment)
    value = (segment << _SEGMENT_SHIFT) | ((magnitude >> shift) & _MANTISSA_MASK)
    value = np.where(segment >= _SEGMENTS, 0x7F, value)
    table = (value ^ mask).astype(np.uint8)
    return np.roll(table, -32768)


ULAW_TO_LINEAR: Pcm = _build_ulaw_decode()
ALAW_TO_LINEAR: Pcm = _build_alaw_decode()
LINEAR_TO_ULAW: npt.NDArray[np.uint8] = _build_ulaw_encode()
LINEAR_TO_ALAW: npt.NDArray[np.uint8] = _build_alaw_encode()
for _table in (ULAW_TO_LINEAR, ALAW_TO_LINEAR, LINEAR_TO_ULAW, LINEAR_TO_ALAW):
    _table.flags.writeable = False

_DECODE_TABLES = {ULAW: ULAW_TO_LINEAR, ALAW: ALAW_TO_LINEAR}
_ENCODE_TABLES = {ULAW: LINEAR_TO_ULAW, ALAW: LINEAR_TO_ALAW}


def _check_law(law: str) -> None:
    if law not in _DECODE_TABLES:
        raise G711Error(f"unknown G.711 law {law!r}, expected {ULAW!r} or {ALAW!r}")


def decode(payload: bytes, law: Law) -> Pcm:
    """G.711 bytes → int16 PCM."""
    _check_law(law)
    return _DECODE_TABLES[law][np.frombuffer(payload, dtype=np.uint8)]


def encode(pcm: Pcm, law: Law) -> bytes:
    """int16 PCM → G.711 bytes."""
    _check_law(law)
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise G711Error(f"G.711 encoder needs int16 samples, got {samples.dtype}")
    return _ENCODE_TABLES[law][samples.reshape(-1).view(np.uint16)].tobytes()


class G711Decoder:
    """Stateless PCMU/PCMA decoder (``channels`` > 1 is downmixed)."""

    def __init__(self, law: Law, clock_rate: int = G711_CLOCK_RATE, channels: int = 1) -> None:
        _check_law(law)
        self.law = law
        self.sample_rate = clock_rate
        self.rtp_clock_rate = clock_rate
        self.channels = channels
        self.corrupt = 0
        self._table = _DECODE_TABLES[law]

    def decode(self, payload: bytes) -> Pcm:
        pcm = self._table[np.frombuffer(payload, dtype=np.uint8)]
        return downmix(pcm, self.channels) if self.channels > 1 else pcm

    def conceal(self, samples: int) -> Pcm:
        return silence(samples)
