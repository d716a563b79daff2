"""Write, verify and read back call recordings (Ogg Opus, FLAC, WAV).

Stereo recordings keep the two parties apart: channel 0 and channel 1 are encoded
as two independent mono Opus streams (channel mapping family 255, no coupled
streams), never as one joint-stereo stream that could blend caller and agent.

Every file is written to a temporary name next to ``dest``, fsynced and renamed
over ``dest``, so ``dest`` is either absent, the old file, or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import av.error
import numpy as np

__all__ = [
    "OPUS_BITRATE_PER_CHANNEL",
    "OPUS_FRAME_MS",
    "EncodeError",
    "EncodedInfo",
    "ProbeInfo",
    "decode_recording",
    "encode_recording",
    "probe_recording",
    "sha256_file",
    "verify_recording",
]

OPUS_BITRATE_PER_CHANNEL = 9_000
"""Default Opus target bitrate per channel (bits/s, VBR); chosen by benchmarks/opus_size_quality.py."""
OPUS_FRAME_MS = 60
"""Default Opus frame duration; chosen by benchmarks/opus_size_quality.py."""
OPUS_COMPLEXITY = 4
"""Default libopus encoder complexity (0..10); chosen by benchmarks/opus_size_quality.py."""
OPUS_FRAME_CHOICES = (10, 20, 40, 60)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
OPUS_BITRATE_RANGE = (6_000, 256_000)
FORMATS = ("opus", "flac", "wav")

_CONTAINER = {"opus": "ogg", "flac": "flac"}
_CODEC = {"opus": "opus", "flac": "flac", "wav": "pcm_s16le"}
_TAG_NAME = re.compile(r"[\x20-\x3c\x3e-\x7d]+")  # Vorbis comment field names: printable ASCII but '='
_ENCODE_CHUNK = 4800


class EncodeError(Exception):
    """A recording could not be encoded, probed or decoded."""


@dataclass(frozen=True)
class EncodedInfo:
    path: Path
    format: str
    codec: str
    channels: int
    sample_rate: int
    bytes: int
    sha256: str
    duration: float


@dataclass(frozen=True)
class ProbeInfo:
    duration: float
    channels: int
    sample_rate: int
    """The rate decode_recording returns: for Opus the input rate stored in OpusHead."""
    codec: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise EncodeError(f"{path}: cannot read for sha256: {exc.strerror or exc}") from exc
    return digest.hexdigest()


# -- validation ------------------------------------------------------------------------


def _check_pcm(pcm: np.ndarray) -> np.ndarray:
    if not isinstance(pcm, np.ndarray):
        raise EncodeError(f"pcm must be a numpy array, got {type(pcm).__name__}")
    if pcm.dtype != np.int16:
        raise EncodeError(f"pcm must be int16, got {pcm.dtype}")
    if pcm.ndim == 1:
        pcm = pcm[:, np.newaxis]
    if pcm.ndim != 2 or pcm.shape[1] not in (1, 2):
        raise EncodeError(f"pcm must have shape (n,) or (n, 2), got {pcm.shape}")
    if pcm.shape[0] == 0:
        raise EncodeError("pcm has no samples")
    return np.ascontiguousarray(pcm)


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    tags = dict(metadata or {})
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_NAME.fullmatch(key):
            raise EncodeError(f"metadata key {key!r} must be printable ASCII without '='")
        if not isinstance(value, str):
            raise EncodeError(f"metadata value for {key!r} must be str, got {type(value).__name__}")
        if "\x00" in value:
            raise EncodeError(f"metadata value for {key!r} contains a NUL character")
    return tags


# -- encoding --------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_output(dest: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    """Yield a temp file beside ``dest``; on success fsync it and rename it over ``dest``."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise EncodeError(f"cannot create a temporary file beside {dest}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield tmp, fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    try:
        dir_fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise EncodeError(f"cannot fsync directory {dest.parent}: {exc.strerror or exc}") from exc


def _opus_options(channels: int, bitrate: int, frame_ms: int, complexity: int) -> dict[str, str]:
    options = {
        "application": "voip",
        "vbr": "on",
        "frame_duration": str(frame_ms),
        "b": str(bitrate * channels),
        "compression_level": str(complexity),
    }
    if channels == 2:
        # Two uncoupled mono streams: libopus' family-255 layout is streams=channels, coupled=0.
        options["mapping_family"] = "255"
    return options


def _encode_av(
    fh: IO[bytes],
    pcm: np.ndarray,
    sample_rate: int,
    fmt: str,
    tags: dict[str, str],
    options: dict[str, str],
) -> None:
    channels = pcm.shape[1]
    layout = "stereo" if channels == 2 else "mono"
    with av.open(fh, "w", format=_CONTAINER[fmt]) as container:
        container.metadata.update(tags)
        codec = "libopus" if fmt == "opus" else "flac"
        stream: Any = container.add_stream(codec, rate=sample_rate, layout=layout, options=options)
        stream.codec_context.format = "s16"
        time_base = Fraction(1, sample_rate)
        for start in range(0, pcm.shape[0], _ENCODE_CHUNK):
            chunk = pcm[start : start + _ENCODE_CHUNK]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _encode_wav(fh: IO[bytes], pcm: np.ndarray, sample_rate: int) -> None:
    with wave.open(fh, "wb") as wav:
        wav.setnchannels(pcm.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.astype("<i2", copy=False).tobytes())


def encode_recording(
    pcm: np.ndarray,
    sample_rate: int,
    fmt: str,
    dest: Path,
    *,
    bitrate: int | None = None,
    metadata: dict[str, str] | None = None,
    frame_ms: int | None = None,
    complexity: int | None = None,
) -> EncodedInfo:
    """Encode int16 ``pcm`` ((n,) mono or (n, 2) stereo) to ``dest`` atomically.

    ``fmt`` is ``"opus"`` (Ogg Opus, VoIP mode, VBR; ``bitrate`` is the target per
    channel in bits/s, default :data:`OPUS_BITRATE_PER_CHANNEL`; ``frame_ms`` one of
    10/20/40/60, default :data:`OPUS_FRAME_MS`; ``complexity`` 0..10, default
    :data:`OPUS_COMPLEXITY`), ``"flac"`` or ``"wav"`` (PCM s16le).
    ``metadata`` becomes Ogg/FLAC Vorbis comments; WAV files carry none.
    """
    if fmt not in FORMATS:
        raise EncodeError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    pcm = _check_pcm(pcm)
    tags = _check_metadata(metadata)
    dest = Path(dest)
    channels = pcm.shape[1]
    options: dict[str, str] = {}
    if fmt == "opus":
        if sample_rate not in OPUS_RATES:
            raise EncodeError(
                f"Opus cannot take {sample_rate} Hz input: use one of {', '.join(map(str, OPUS_RATES))}"
            )
        rate_bits = OPUS_BITRATE_PER_CHANNEL if bitrate is None else bitrate
        low, high = OPUS_BITRATE_RANGE
        if not low <= rate_bits <= high:
            raise EncodeError(f"Opus bitrate per channel must be {low}..{high} bit/s, got {rate_bits}")
        frame = OPUS_FRAME_MS if frame_ms is None else frame_ms
        if frame not in OPUS_FRAME_CHOICES:
            choices = ", ".join(map(str, OPUS_FRAME_CHOICES))
            raise EncodeError(f"Opus frame duration must be one of {choices} ms, got {frame}")
        level = OPUS_COMPLEXITY if complexity is None else complexity
        if not 0 <= level <= 10:
            raise EncodeError(f"Opus complexity must be 0..10, got {level}")
        options = _opus_options(channels, rate_bits, frame, level)
    else:
        if bitrate is not None or frame_ms is not None or complexity is not None:
            raise EncodeError(f"bitrate, frame_ms and complexity apply to opus only, not {fmt}")
        if not 1 <= sample_rate <= 655_350:
            raise EncodeError(f"sample rate must be 1..655350 Hz, got {sample_rate}")
    if not dest.parent.is_dir():
        raise EncodeError(f"destination directory {dest.parent} does not exist")
    try:
        with _atomic_output(dest) as (_tmp, fh):
            if fmt == "wav":
                _encode_wav(fh, pcm, sample_rate)
            else:
                _encode_av(fh, pcm, sample_rate, fmt, tags, options)
            fh.flush()
            size = os.fstat(fh.fileno()).st_size
            fh.seek(0)
            digest = hashlib.sha256()
            while block := fh.read(1 << 20):
                digest.update(block)
    except (av.error.FFmpegError, OSError, wave.Error, ValueError) as exc:
        raise EncodeError(f"cannot encode {fmt} to {dest}: {exc}") from exc
    return EncodedInfo(
        path=dest,
        format=fmt,
        codec=_CODEC[fmt],
        channels=channels,
        sample_rate=sample_rate,
        bytes=size,
        sha256=digest.hexdigest(),
        duration=pcm.shape[0] / sample_rate,
    )


# -- decoding --------------------------------------------------------------------------


def _output_rate(stream: Any) -> int:
    """The rate to hand back: Opus decodes at 48 kHz but records its input rate in OpusHead."""
    ctx = stream.codec_context
    if ctx.name == "opus":
        head = bytes(ctx.extradata or b"")
        if len(head) >= 16 and head.startswith(b"OpusHead"):
            original = int.from_bytes(head[12:16], "little")
            if original in OPUS_RATES:
                return original
        return 48000
    return int(ctx.sample_rate)


def _decode(path: Path, want_samples: bool) -> tuple[np.ndarray | None, int, int, str, int]:
    """Decode every packet of the first audio stream.

    Returns (samples or None, sample count, channels, codec name, rate).
    """
    path = Path(path)
    try:
        container = av.open(str(path), "r")
    except FileNotFoundError:
        raise EncodeError(f"{path}: no such file") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise EncodeError(f"{path}: not a readable media file: {exc}") from exc
    try:
        with container:
            if not container.streams.audio:
                raise EncodeError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            ctx = stream.codec_context
            channels = int(ctx.channels)
            rate = _output_rate(stream)
            resampler = av.AudioResampler(format="s16", layout=ctx.layout, rate=rate)
            chunks: list[np.ndarray] = []
            count = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    count += out.samples
                    if want_samples:
                        chunks.append(out.to_ndarray().reshape(-1, channels))
            for out in resampler.resample(None):
                count += out.samples
                if want_samples:
                    chunks.append(out.to_ndarray().reshape(-1, channels))
            codec = str(ctx.name)
    except av.error.FFmpegError as exc:
        raise EncodeError(f"{path}: decoding failed: {exc}") from exc
    samples = None
    if want_samples:
        samples = np.concatenate(chunks) if chunks else np.zeros((0, channels), dtype=np.int16)
    return samples, count, channels, codec, rate


def probe_recording(path: Path) -> ProbeInfo:
    """Decode the whole file to measure it; raises EncodeError if it is not audio."""
    _, count, channels, codec, rate = _decode(path, want_samples=False)
    return ProbeInfo(duration=count / rate, channels=channels, sample_rate=rate, codec=codec)


def verify_recording(path: Path, fmt: str, *, channels: int, sample_rate: int) -> ProbeInfo:
    """Check a file just written: complete, intact, the expected layout; measure its length.

    Ogg Opus is checked from its container (every page's CRC, sequence, headers, packet
    durations against granule positions: see :mod:`callvault.media.oggcheck`), which costs
    about 1 % of decoding it; FLAC and WAV are decoded.
    """
    if fmt == "opus":
        from callvault.media.oggcheck import OggCheckError, check_ogg_opus

        try:
            info = check_ogg_opus(path, channels=channels, sample_rate=sample_rate)
        except OggCheckError as exc:
            raise EncodeError(str(exc)) from exc
        return ProbeInfo(
            duration=info.duration, channels=info.channels, sample_rate=info.sample_rate, codec="opus"
        )
    probe = probe_recording(path)
    if probe.channels != channels or probe.sample_rate != sample_rate:
        raise EncodeError(
            f"{path}: {probe.channels} channels at {probe.sample_rate} Hz, "
            f"expected {channels} at {sample_rate}"
        )
    return probe


def decode_recording(path: Path) -> tuple[np.ndarray, int]:
    """Decode to int16 samples of shape (n, channels) and their rate (Opus: its input rate)."""
    samples, _, _, _, rate = _decode(path, want_samples=True)
    assert samples is not None
    return samples, rate
