"""Place decoded tracks on the call timeline and mix them (stereo or mono)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from callvault.media.track import DecodedTrack

Pcm = npt.NDArray[np.int16]
NARROWBAND_RATE = 8000
WIDEBAND_RATE = 16000
DEFAULT_MAX_RATE = WIDEBAND_RATE  # speech: 48 kHz Opus is stored at 16 kHz unless configured
STEREO = 2
INT16_MIN = -32768
INT16_MAX = 32767


class MixError(ValueError):
    """Tracks cannot be mixed as asked (wrong rate, bad duration)."""


def choose_out_rate(tracks_rates: Iterable[int], *, max_rate: int = DEFAULT_MAX_RATE) -> int:
    """8000 if every codec is narrowband, else the highest PCM rate capped at ``max_rate``."""
    if max_rate < NARROWBAND_RATE:
        raise MixError(f"max_rate must be at least {NARROWBAND_RATE}, got {max_rate}")
    highest = max(tracks_rates, default=NARROWBAND_RATE)
    return max(NARROWBAND_RATE, min(highest, max_rate))


def _length(tracks: Sequence[DecodedTrack], out_rate: int, duration: float | None) -> int:
    if duration is not None:
        if duration < 0:
            raise MixError(f"duration must be >= 0 seconds, got {duration}")
        return math.ceil(duration * out_rate)
    ends = [round(t.start * out_rate) + len(t.pcm) for t in tracks]
    return max(0, *ends) if ends else 0


def _check_rate(track: DecodedTrack, out_rate: int) -> None:
    if track.sample_rate != out_rate:
        raise MixError(f"track is at {track.sample_rate} Hz but the mix is at {out_rate} Hz")


def _place(target: npt.NDArray[np.int16] | npt.NDArray[np.int32], track: DecodedTrack, out_rate: int) -> None:
    """Add ``track`` into ``target`` at its start (parts before 0 or past the end are cut)."""
    position = round(track.start * out_rate)
    pcm = track.pcm
    if position < 0:
        pcm = pcm[-position:]
        position = 0
    room = max(len(target) - position, 0)
    pcm = pcm[:room]
    target[position : position + len(pcm)] += pcm


def mix_stereo(
    left: DecodedTrack | None,
    right: DecodedTrack | None,
    *,
    out_rate: int,
    duration: float | None = None,
) -> Pcm:
    """Caller on the left, callee on the right; ``(n, 2)`` int16 starting at ``t0``."""
    present = [t for t in (left, right) if t is not None]
    for track in present:
        _check_rate(track, out_rate)
    out = np.zeros((_length(present, out_rate, duration), STEREO), dtype=np.int16)
    for channel, side in enumerate((left, right)):
        if side is not None:
            _place(out[:, channel], side, out_rate)
    return out


def mix_mono(
    tracks: Iterable[DecodedTrack | None], *, out_rate: int | None = None, duration: float | None = None
) -> Pcm:
    """Sum tracks into one int16 channel (saturating), each at its start.

    ``out_rate`` defaults to the tracks' common rate (8000 when there are none).
    """
    present = [t for t in tracks if t is not None]
    if out_rate is None:
        out_rate = present[0].sample_rate if present else NARROWBAND_RATE
    for track in present:
        _check_rate(track, out_rate)
    acc = np.zeros(_length(present, out_rate, duration), dtype=np.int32)
    for track in present:
        _place(acc, track, out_rate)
    return np.clip(acc, INT16_MIN, INT16_MAX).astype(np.int16)
