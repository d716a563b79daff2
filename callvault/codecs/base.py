"""Decoder interface shared by all RTP audio codecs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]


class UnsupportedCodec(Exception):
    """No decoder exists for the requested encoding / clock rate / channel count."""


@runtime_checkable
class Decoder(Protocol):
    """Stateful per-stream decoder: one instance per RTP stream (and epoch).

    ``sample_rate`` is the PCM output rate, ``rtp_clock_rate`` the RTP timestamp
    rate (they differ for G.722: 16 kHz PCM, 8 kHz clock).  ``decode`` returns
    mono int16 PCM; a payload the codec cannot decode yields an empty array and
    increments ``corrupt``.  ``conceal(samples)`` returns ``samples`` output-rate
    samples to stand in for lost audio.
    """

    sample_rate: int
    rtp_clock_rate: int
    corrupt: int

    def decode(self, payload: bytes) -> Pcm: ...

    def conceal(self, samples: int) -> Pcm: ...


def silence(samples: int) -> Pcm:
    return np.zeros(max(samples, 0), dtype=np.int16)


def to_int16(samples: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> Pcm:
    """Round and saturate to int16 (float input is taken as full scale ±1.0)."""
    if np.issubdtype(samples.dtype, np.floating):
        scaled = np.rint(samples * 32768.0)
        return np.clip(scaled, -32768, 32767).astype(np.int16)
    if samples.dtype == np.int16:
        return samples.astype(np.int16, copy=False)
    return np.clip(samples, -32768, 32767).astype(np.int16)


def downmix(interleaved: Pcm, channels: int) -> Pcm:
    """Average interleaved channels to mono (a trailing partial frame is dropped)."""
    if channels == 1:
        return interleaved
    usable = len(interleaved) - len(interleaved) % channels
    frames = interleaved[:usable].reshape(-1, channels).astype(np.int32)
    return (frames.sum(axis=1) // channels).astype(np.int16)
