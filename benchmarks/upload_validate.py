"""CPU cost of accepting an uploaded recording: hashing plus decoding every sample to validate it.

For each format, a 30-minute mono speech-band recording (a tone sweep, 8 or 16 kHz) is made with
FFmpeg, then validated by ``callvault.apps.uploads.media.validate_audio`` (the full decode the
server does for every upload and import) and hashed (SHA-256). Times are CPU time of this process
(``time.process_time``), not wall clock, so other work on the machine does not skew them.

    .venv/bin/python benchmarks/upload_validate.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CODECS = {
    "wav": ["-c:a", "pcm_s16le"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "32k"],
    "m4a": ["-c:a", "aac", "-b:a", "32k"],
    "opus": ["-c:a", "libopus", "-b:a", "16k"],
    "flac": ["-c:a", "flac"],
}


def make(folder: Path, ext: str, minutes: float) -> Path:
    out = folder / f"rec.{ext}"
    source = f"sine=frequency=440:sample_rate=16000:duration={minutes * 60}"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
         "-af", "vibrato=f=3:d=0.5", "-ac", "1", *CODECS[ext], str(out)],
        check=True,
    )  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    from callvault.apps.uploads.media import validate_audio

    print("format  size MB  audio min  validate CPU s  sha256 CPU s  x real time")
    with tempfile.TemporaryDirectory() as td:
        for ext in CODECS:
            path = make(Path(td), ext, args.minutes)
            t0 = time.process_time()
            info = validate_audio(path, max_seconds=4 * 3600, min_bytes_per_second=100)
            t1 = time.process_time()
            hashlib.sha256(path.read_bytes()).hexdigest()
            t2 = time.process_time()
            speed = info.duration / max(t1 - t0, 1e-9)
            print(
                f"{ext:6}  {path.stat().st_size / 1e6:7.1f}  {info.duration / 60:9.1f}  "
                f"{t1 - t0:13.2f}  {t2 - t1:12.3f}  {speed:10.0f}"
            )
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
