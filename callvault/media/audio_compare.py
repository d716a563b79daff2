"""Compare audio by loudness envelope: is this channel the same speech as that one?

Used by end-to-end tests and benchmarks to prove a recording's channels hold the
right party after codecs, resampling and mixing, which change waveforms but keep
the loudness envelope (when speech starts and stops, syllable by syllable).

Samples are int16-scaled (integers, or floats in the int16 range) and mono:
pass one channel of a stereo array, e.g. ``pcm[:, 0]``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AudioCompareError",
    "energy_envelope",
    "envelope_correlation",
    "find_silence",
]

FLOOR_DB = -100.0
"""Envelope floor in dBFS, the level reported for digital silence."""


class AudioCompareError(Exception):
    """Inputs that cannot be compared (wrong shape, rate, or too short)."""


def _mono(pcm: np.ndarray, what: str = "pcm") -> np.ndarray:
    arr = np.asarray(pcm)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise AudioCompareError(f"{what} must be mono (n,), got shape {arr.shape}; pass one channel")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise AudioCompareError(f"{what} must hold numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _frame_len(rate: int, frame_ms: float) -> int:
    if rate <= 0:
        raise AudioCompareError(f"sample rate must be positive, got {rate}")
    exact = rate * frame_ms / 1000
    n = round(exact)
    if n < 1 or abs(n - exact) > 1e-9:
        raise AudioCompareError(f"{frame_ms} ms is not a whole number of samples at {rate} Hz")
    return n


def energy_envelope(pcm: np.ndarray, rate: int, frame_ms: float = 20) -> np.ndarray:
    """Log energy (dBFS, floored at -100) of each whole ``frame_ms`` frame."""
    x = _mono(pcm)
    n = _frame_len(rate, frame_ms)
    frames = len(x) // n
    if frames == 0:
        return np.empty(0, dtype=np.float64)
    power = np.mean((x[: frames * n].reshape(frames, n) / 32768.0) ** 2, axis=1)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return 0.0 if denom == 0.0 else float(np.dot(a, b) / denom)


def envelope_correlation(
    a: np.ndarray,
    rate_a: int,
    b: np.ndarray,
    rate_b: int,
    max_lag_ms: float = 200,
    *,
    frame_ms: float = 10,
) -> float:
    """Best Pearson correlation of the two loudness envelopes within ±``max_lag_ms``.

    Envelopes are taken with the same frame duration at each signal's own rate, so
    signals at different rates line up without resampling.  Returns a value in
    [-1, 1]; 0.0 when an envelope is constant (e.g. digital silence).
    """
    env_a = energy_envelope(a, rate_a, frame_ms)
    env_b = energy_envelope(b, rate_b, frame_ms)
    max_lag = int(max_lag_ms // frame_ms)
    shortest = min(len(env_a), len(env_b))
    if shortest - max_lag < 10:
        raise AudioCompareError(
            f"signals too short to compare: {shortest} frames of {frame_ms} ms with a ±{max_lag_ms} ms lag"
        )
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        # lag > 0: b is late relative to a
        xa = env_a[max(0, -lag) :]
        xb = env_b[max(0, lag) :]
        n = min(len(xa), len(xb))
        best = max(best, _pearson(xa[:n], xb[:n]))
    return best


def find_silence(
    pcm: np.ndarray,
    rate: int,
    min_ms: float,
    *,
    threshold_dbfs: float = -60.0,
    frame_ms: float = 5,
) -> list[tuple[float, float]]:
    """Spans ``(start_s, end_s)`` at least ``min_ms`` long where the audio is quiet.

    A frame is quiet when its RMS is below ``threshold_dbfs``; runs of quiet frames
    are then widened sample by sample into their neighbours while ``|x|`` stays at
    or below the threshold amplitude, so edges next to speech are sample-accurate
    and otherwise within one frame.
    """
    x = _mono(pcm)
    if min_ms <= 0:
        raise AudioCompareError(f"min_ms must be positive, got {min_ms}")
    n = _frame_len(rate, frame_ms)
    quiet = energy_envelope(x, rate, frame_ms) < threshold_dbfs
    amp = 32768.0 * 10 ** (threshold_dbfs / 20)
    if len(x) % n:  # a partial last frame counts as quiet if its samples are
        quiet = np.append(quiet, bool(np.all(np.abs(x[len(quiet) * n :]) <= amp)))
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    loud = np.abs(x) > amp
    spans: list[tuple[float, float]] = []
    for fs, fe in zip(starts, ends, strict=True):
        start = int(fs) * n
        end = min(int(fe) * n, len(x))
        limit = max(0, start - n)
        while start > limit and not loud[start - 1]:
            start -= 1
        limit = min(len(x), end + n)
        while end < limit and not loud[end]:
            end += 1
        if (end - start) * 1000 >= min_ms * rate:
            spans.append((start / rate, end / rate))
    return spans
