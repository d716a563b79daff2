"""L16 (RFC 3551 §4.5.11): uncompressed 16-bit big-endian linear PCM."""

from __future__ import annotations

import numpy as np

from callvault.codecs.base import Pcm, downmix, silence

_BIG_ENDIAN_INT16 = np.dtype(">i2")
SAMPLE_SIZE = 2


class L16Decoder:
    def __init__(self, clock_rate: int, channels: int = 1) -> None:
        self.sample_rate = clock_rate
        self.rtp_clock_rate = clock_rate
        self.channels = channels
        self.corrupt = 0

    def decode(self, payload: bytes) -> Pcm:
        usable = len(payload) - len(payload) % SAMPLE_SIZE
        if usable != len(payload):
            self.corrupt += 1
        pcm = np.frombuffer(payload, dtype=_BIG_ENDIAN_INT16, count=usable // SAMPLE_SIZE).astype(np.int16)
        return downmix(pcm, self.channels)

    def conceal(self, samples: int) -> Pcm:
        return silence(samples)


def encode(pcm: Pcm) -> bytes:
    return np.asarray(pcm, dtype=np.int16).astype(_BIG_ENDIAN_INT16).tobytes()
