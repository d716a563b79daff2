"""Fixtures of the upload tests: real audio made with FFmpeg at test time, devices, clients."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client

from callvault.apps.uploads.models import Device
from tests.apps.conftest import (  # noqa: F401  (fixtures used by the tests of this package)
    PASSWORD,
    Cast,
    _fast_password_hashing,
    cast,
    make_call,
    make_user,
)

FORMATS = {
    # name -> (file name, ffmpeg codec arguments)
    "wav": ("call.wav", ["-c:a", "pcm_s16le"]),
    "mp3": ("call.mp3", ["-c:a", "libmp3lame", "-b:a", "32k"]),
    "m4a": ("call.m4a", ["-c:a", "aac", "-b:a", "32k"]),
    "flac": ("call.flac", ["-c:a", "flac"]),
    "opus": ("call.opus", ["-c:a", "libopus", "-b:a", "16k"]),
    "amr": ("call.amr", []),  # no AMR encoder in the ffmpeg CLI here: PyAV's libopencore_amrnb
}


def make_audio(
    folder: Path,
    fmt: str,
    *,
    seconds: float = 3.0,
    channels: int = 1,
    freq: int = 440,
    name: str | None = None,
) -> Path:
    """A real recording: a sine tone (per channel a different one) encoded with FFmpeg."""
    filename, codec = FORMATS[fmt]
    out = folder / (name or filename)
    rate = 8000 if fmt == "amr" else 16000
    if fmt == "amr":
        _amr(out, seconds, freq)
        return out
    sources: list[str] = []
    for ch in range(channels):
        sources += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={freq * (ch + 1)}:duration={seconds}:sample_rate={rate}",
        ]
    mix = (
        ["-filter_complex", "[0:a][1:a]join=inputs=2:channel_layout=stereo"]
        if channels == 2
        else ["-ac", "1"]
    )
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *sources, *mix, *codec, str(out)], check=True
    )
    return out


def _amr(out: Path, seconds: float, freq: int) -> None:
    import av

    t = np.arange(int(seconds * 8000)) / 8000
    pcm = (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)
    with av.open(str(out), "w", format="amr") as container:
        stream: Any = container.add_stream("libopencore_amrnb", rate=8000, layout="mono")
        stream.bit_rate = 12200
        for i in range(0, len(pcm), 160):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 160], format="s16", layout="mono")
            frame.sample_rate = 8000
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """Recordings, staging and caches of this test under its own temporary directory."""
    root = tmp_path / "data"
    settings.DATA_DIR = root
    settings.RECORDINGS_DIR = root / "recordings"
    settings.UPLOADS_DIR = root / "uploads"
    settings.SPOOL_DIR = root / "spool"
    for d in (settings.RECORDINGS_DIR, settings.UPLOADS_DIR, settings.SPOOL_DIR):
        d.mkdir(parents=True)
    return root


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    path = tmp_path / "audio"
    path.mkdir()
    return path


@pytest.fixture
def device(cast: Cast) -> tuple[Device, str]:  # noqa: F811
    """A smartphone of team A (営業部) belonging to the member."""
    return Device.create_with_token(name="営業 山本のスマホ", team=cast.team_a, user=cast.member)


def device_client(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


META = {
    "started_at": "2026-11-27T14:05:00+09:00",
    "caller": "03-1234-5678",
    "callee": "090-8765-4321",
    "direction": "in",
}


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "recordings").rglob("*") if p.is_file())
