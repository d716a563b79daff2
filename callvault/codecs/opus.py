"""Opus (RFC 7587) via PyAV: ``libopus`` when available, else FFmpeg's native decoder.

RTP Opus always uses a 48 kHz clock and is always signalled as 2 channels;
the decoder outputs 48 kHz mono: stereo packets are downmixed by the decoder.  No OpusHead is sent
over RTP, so the decoder runs without extradata (no pre-skip).
"""

from __future__ import annotations

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from callvault.codecs import _av
from callvault.codecs.base import Pcm, silence

OPUS_SAMPLE_RATE = 48000
OPUS_RTP_CLOCK_RATE = 48000
OPUS_DECODERS = ("libopus", "opus")
OPUS_ENCODER = "libopus"
FRAME_MS = 20
DEFAULT_BIT_RATE = 32000
MS_PER_SECOND = 1000


class OpusError(ValueError):
    """No Opus decoder/encoder is available, or encoder input is invalid."""


def _open_decoder(channels: int) -> AudioCodecContext:
    for name in OPUS_DECODERS:
        try:
            return _av.open_decoder(name, OPUS_SAMPLE_RATE, channels)
        except (av.FFmpegError, ValueError):
            continue
    raise OpusError(f"none of the Opus decoders {', '.join(OPUS_DECODERS)} is available in PyAV")


class OpusDecoder:
    def __init__(self, channels: int = 2, rtp_clock_rate: int = OPUS_RTP_CLOCK_RATE) -> None:
        if channels not in (1, 2):
            raise OpusError(f"Opus over RTP has 1 or 2 channels, got {channels}")
        self.sample_rate = OPUS_SAMPLE_RATE
        self.rtp_clock_rate = rtp_clock_rate
        self.corrupt = 0
        self.channels = channels
        # Decoding to one channel makes libopus downmix stereo packets itself (cheaper
        # than decoding two channels and averaging); mono packets are unaffected.
        self._ctx = _open_decoder(1)

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


def encode(
    pcm: Pcm, sample_rate: int = OPUS_SAMPLE_RATE, frame_ms: int = FRAME_MS, bit_rate: int = DEFAULT_BIT_RATE
) -> list[bytes]:
    """Encode mono int16 PCM into one Opus packet per ``frame_ms`` (test client)."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise OpusError(f"Opus encoder needs int16 samples, got {samples.dtype}")
    try:
        ctx = _av.open_encoder(OPUS_ENCODER, sample_rate, bit_rate)
    except (av.FFmpegError, ValueError) as exc:
        raise OpusError(f"Opus encoder {OPUS_ENCODER} unavailable at {sample_rate} Hz: {exc}") from exc
    frame_size = sample_rate * frame_ms // MS_PER_SECOND
    flat = samples.reshape(-1)
    packets: list[bytes] = []
    for start in range(0, len(flat), frame_size):
        chunk = flat[start : start + frame_size]
        if len(chunk) < frame_size:
            chunk = np.concatenate([chunk, np.zeros(frame_size - len(chunk), dtype=np.int16)])
        packets.extend(bytes(p) for p in ctx.encode(_av.make_frame(chunk, sample_rate, start)))
    packets.extend(bytes(p) for p in ctx.encode(None))
    return packets
