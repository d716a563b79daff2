"""G.722 (SB-ADPCM 64 kbit/s) via PyAV's ``g722`` codec.

Per RFC 3551 §4.5.2 the RTP clock is 8000 Hz although the audio is sampled
at 16000 Hz, so one RTP timestamp unit is two PCM samples.  The decoder is
stateful (ADPCM predictors): keep one instance per stream.
"""

from __future__ import annotations

import av
import numpy as np

from callvault.codecs import _av
from callvault.codecs.base import Pcm, silence

G722_SAMPLE_RATE = 16000
G722_RTP_CLOCK_RATE = 8000
G722_CODEC = "g722"
BYTES_PER_20MS = 160  # 64 kbit/s: one byte per two 16 kHz samples


class G722Error(ValueError):
    """Input to the G.722 test encoder is not int16 PCM."""


class G722Decoder:
    def __init__(self, rtp_clock_rate: int = G722_RTP_CLOCK_RATE) -> None:
        self.sample_rate = G722_SAMPLE_RATE
        self.rtp_clock_rate = rtp_clock_rate
        self.corrupt = 0
        self._ctx = _av.open_decoder(G722_CODEC, G722_SAMPLE_RATE, 1)

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            return silence(0)
        try:
            return _av.decode_packet(self._ctx, payload)
        except av.FFmpegError:
            self.corrupt += 1
            return silence(0)

    def conceal(self, samples: int) -> Pcm:
        return silence(samples)


def encode(pcm: Pcm, payload_size: int = BYTES_PER_20MS) -> list[bytes]:
    """Encode 16 kHz int16 PCM into RTP payloads of ``payload_size`` bytes (test client)."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise G722Error(f"G.722 encoder needs int16 samples, got {samples.dtype}")
    ctx = _av.open_encoder(G722_CODEC, G722_SAMPLE_RATE)
    stream = b"".join(bytes(p) for p in ctx.encode(_av.make_frame(samples.reshape(-1), G722_SAMPLE_RATE, 0)))
    stream += b"".join(bytes(p) for p in ctx.encode(None))
    return [stream[i : i + payload_size] for i in range(0, len(stream), payload_size)]
