"""Opus size vs speech quality for stereo call recordings.

Builds realistic two-party calls from espeak-ng speech (Japanese and English):
the parties take turns, each talking about half the time while the other channel
carries only low line noise, and both channels pass through G.711 µ-law like the
RTP they came from.  Each call is encoded with callvault.media.encode at several
per-channel bitrates and frame durations, decoded, and measured:

* KB/min: encoded bytes per recorded minute (1 KB = 1000 bytes), target <= 120;
* PESQ-NB per channel against the G.711 source channel, target >= 3.6;
* encode speed as a multiple of real time (CPU time of this process, includes the fsync).

Run: ``.venv/bin/python benchmarks/opus_size_quality.py [--rates 8000,16000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pesq import pesq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callvault.media.encode import (
    OPUS_BITRATE_PER_CHANNEL,
    OPUS_COMPLEXITY,
    OPUS_FRAME_MS,
    decode_recording,
    encode_recording,
)
from tests.audio_fixtures import two_party_call

TARGET_KB_PER_MIN = 120.0
TARGET_PESQ = 3.6


def _to_8k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """PESQ-NB wants 8 kHz: decimate 16 kHz by 2 after a windowed-sinc low-pass."""
    x = pcm.astype(np.float64)
    if rate == 8000:
        return x
    if rate != 16000:
        raise SystemExit(f"unsupported rate {rate}")
    taps = np.arange(-64, 65)
    kernel = np.sinc(taps / 2) / 2 * np.hamming(len(taps))
    return np.convolve(x, kernel, mode="same")[::2]


def measure(
    lang: str, rate: int, bitrates: list[int], frames: list[int], tmp: Path, complexity: int
) -> list[tuple[int, int, float, float, float, float]]:
    call = two_party_call(lang, rate=rate)
    ref = [_to_8k(call.pcm[:, ch], rate) for ch in (0, 1)]
    minutes = call.pcm.shape[0] / rate / 60
    rows = []
    for frame_ms in frames:
        for bitrate in bitrates:
            started = time.process_time()
            info = encode_recording(
                call.pcm, rate, "opus", tmp / f"{lang}-{rate}-{frame_ms}-{bitrate}.opus",
                bitrate=bitrate, frame_ms=frame_ms, complexity=complexity,
            )  # fmt: skip
            speed = call.pcm.shape[0] / rate / (time.process_time() - started)
            decoded, got_rate = decode_recording(info.path)
            assert got_rate == rate and decoded.shape == call.pcm.shape
            scores = [pesq(8000, ref[ch], _to_8k(decoded[:, ch], rate), "nb") for ch in (0, 1)]
            rows.append((frame_ms, bitrate, info.bytes / 1000 / minutes, scores[0], scores[1], speed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="8000", help="comma-separated input rates (8000,16000)")
    parser.add_argument("--bitrates", default="6000,8000,10000,12000,16000", help="per channel, bit/s")
    parser.add_argument("--frames", default="20,40,60", help="frame durations, ms")
    parser.add_argument("--complexity", type=int, default=OPUS_COMPLEXITY, help="libopus complexity 0..10")
    args = parser.parse_args()
    bitrates = [int(v) for v in args.bitrates.split(",")]
    frames = [int(v) for v in args.frames.split(",")]
    print(
        f"defaults: {OPUS_BITRATE_PER_CHANNEL} bit/s per channel, {OPUS_FRAME_MS} ms frames, "
        f"complexity {OPUS_COMPLEXITY}; measuring complexity {args.complexity}"
    )
    print(f"targets: <= {TARGET_KB_PER_MIN:.0f} KB/min, PESQ-NB >= {TARGET_PESQ} per channel\n")
    header = f"{'call':6} {'rate':>5} {'frame':>5} {'kbit/ch':>7} {'KB/min':>7} "
    header += f"{'PESQ ch0':>8} {'PESQ ch1':>8} {'encode':>8}  ok"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (int(v) for v in args.rates.split(",")):
            for lang in ("ja", "en"):
                rows = measure(lang, rate, bitrates, frames, Path(tmp), args.complexity)
                for frame_ms, bitrate, kb_min, p0, p1, speed in rows:
                    ok = kb_min <= TARGET_KB_PER_MIN and min(p0, p1) >= TARGET_PESQ
                    print(
                        f"{lang:6} {rate:5d} {frame_ms:5d} {bitrate / 1000:7.1f} {kb_min:7.1f} "
                        f"{p0:8.2f} {p1:8.2f} {speed:6.0f}x  {'yes' if ok else '-'}"
                    )
                print()


if __name__ == "__main__":
    main()
