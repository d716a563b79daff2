"""Validate an audio file by decoding it: what it really is, never what its name or type say.

A file is accepted only if FFmpeg (through PyAV) recognises one of the allowed containers with an
allowed audio codec, it has one audio stream of 1 or 2 channels, and every packet decodes. Limits
against decompression bombs, checked before and while decoding:

- the duration the container declares must not exceed the maximum (a WAV header claiming days);
- decoding stops as soon as the audio exceeds the maximum duration, or exceeds what the file's
  size can plausibly hold (``min_bytes_per_second``: a 100 KB file cannot be an hour of speech),
  so a tiny file that would decode to hours costs a bounded amount of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _

# container name as FFmpeg reports it -> {codec: stored extension}
_PCM_WAV = {
    "pcm_s16le",
    "pcm_s24le",
    "pcm_s32le",
    "pcm_u8",
    "pcm_f32le",
    "pcm_alaw",
    "pcm_mulaw",
    "adpcm_ima_wav",
    "adpcm_ms",
    "gsm_ms",
}
ALLOWED: dict[str, dict[str, str]] = {
    "wav": dict.fromkeys(_PCM_WAV, "wav"),
    "mp3": {"mp3": "mp3", "mp3float": "mp3"},
    "mov,mp4,m4a,3gp,3g2,mj2": {"aac": "m4a", "amrnb": "m4a", "amrwb": "m4a"},
    "aac": {"aac": "aac"},
    "amr": {"amrnb": "amr", "amrwb": "amr"},
    "amrnb": {"amrnb": "amr"},
    "amrwb": {"amrwb": "amr"},
    "ogg": {"opus": "opus", "vorbis": "ogg"},
    "flac": {"flac": "flac"},
}
FORMAT_NAMES = "WAV, MP3, M4A/AAC, AMR, Ogg Opus, FLAC"
MIN_SECONDS = 0.1
# Containers whose declared length is exact: decoding to a different length means lost data.
EXACT_LENGTH = {"ogg", "flac", "wav", "mov,mp4,m4a,3gp,3g2,mj2"}
# Short files are accepted whatever their size per second (a few seconds of silence compress well).
BOMB_GRACE_SECONDS = 60.0


class AudioRejected(Exception):
    """The file is not acceptable audio; ``code`` for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AudioInfo:
    ext: str  # how the original is stored: wav, mp3, m4a, aac, amr, opus, ogg, flac
    container: str
    codec: str
    channels: int
    sample_rate: int
    duration: float  # seconds, from the decoded samples
    bytes: int


def validate_audio(path: Path, *, max_seconds: float, min_bytes_per_second: float = 0.0) -> AudioInfo:
    """Decode ``path`` completely and describe it; AudioRejected if it is not acceptable."""
    import av

    size = path.stat().st_size
    if size == 0:
        raise AudioRejected("empty_file", _("ファイルが空です (0 バイト)。"))
    # The most audio this file may decode to.
    cap = max_seconds
    if min_bytes_per_second > 0:
        cap = min(cap, max(BOMB_GRACE_SECONDS, size / min_bytes_per_second))
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioRejected(
            "not_audio",
            _("音声ファイルとして読み取れません (%(formats)s に対応)。") % {"formats": FORMAT_NAMES},
        ) from exc
    with container:
        fmt = container.format.name
        codecs = ALLOWED.get(fmt)
        if codecs is None:
            raise AudioRejected(
                "unsupported_format",
                _("対応していない形式です (検出: %(fmt)s)。%(formats)s のファイルを送ってください。")
                % {"fmt": fmt, "formats": FORMAT_NAMES},
            )
        if any(s.type == "video" for s in container.streams):
            raise AudioRejected(
                "has_video", _("映像を含むファイルは受け付けません。音声だけのファイルを送ってください。")
            )
        audio = list(container.streams.audio)
        if len(audio) != 1:
            raise AudioRejected(
                "stream_count",
                _("音声ストリームが %(n)s 本あります。1 本だけのファイルにしてください。")
                % {"n": len(audio)},
            )
        stream = audio[0]
        ctx = stream.codec_context
        codec = ctx.name
        if codec not in codecs:
            raise AudioRejected(
                "unsupported_codec",
                _("この形式 (%(fmt)s) では対応していないコーデックです: %(codec)s。")
                % {"fmt": fmt, "codec": codec},
            )
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds:
            raise AudioRejected(
                "too_long",
                _("録音が長すぎます (ファイル上の長さ %(declared).0f 秒、上限 %(max).0f 秒)。")
                % {"declared": declared, "max": max_seconds},
            )
        samples, rate, channels = _decode_all(container, stream, cap, max_seconds, size)
    if channels not in (1, 2):
        raise AudioRejected(
            "channels", _("チャンネル数 %(n)s には対応していません (1 または 2)。") % {"n": channels}
        )
    duration = samples / rate if rate else 0.0
    if declared is not None and fmt in EXACT_LENGTH and abs(declared - duration) > max(0.5, declared * 0.02):
        raise AudioRejected(
            "corrupt",
            _(
                "音声データが壊れています (ファイル上の長さ %(declared).1f 秒に対し、"
                "デコードできたのは %(decoded).1f 秒です)。"
            )
            % {"declared": declared, "decoded": duration},
        )
    if duration < MIN_SECONDS:
        raise AudioRejected("no_audio", _("音声が入っていません (長さ 0.1 秒未満)。"))
    return AudioInfo(
        ext=codecs[codec],
        container=fmt,
        codec=codec,
        channels=channels,
        sample_rate=rate,
        duration=round(duration, 3),
        bytes=size,
    )


def _declared_seconds(container: Any, stream: Any) -> float | None:
    values = []
    if stream.duration is not None and stream.time_base is not None:
        values.append(float(stream.duration * stream.time_base))
    if container.duration is not None:
        values.append(container.duration / 1_000_000)
    return max(values) if values else None


def _decode_all(
    container: Any, stream: Any, cap: float, max_seconds: float, size: int
) -> tuple[int, int, int]:
    import av

    samples = 0
    rate = 0
    channels = 0
    limit_samples: float | None = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                if not rate:
                    rate = int(frame.sample_rate)
                    channels = int(frame.layout.nb_channels)
                    limit_samples = cap * rate
                elif int(frame.sample_rate) != rate or int(frame.layout.nb_channels) != channels:
                    raise AudioRejected(
                        "format_changes",
                        _("途中でサンプリング周波数かチャンネル数が変わるファイルには対応していません。"),
                    )
                samples += int(frame.samples)
                if limit_samples is not None and samples > limit_samples:
                    if cap < max_seconds:
                        raise AudioRejected(
                            "decompression_bomb",
                            _(
                                "ファイルの大きさ (%(size)s バイト) に対して音声が長すぎます (%(cap).0f 秒を"
                                "超えました)。圧縮爆弾の可能性があるため受け付けません。"
                            )
                            % {"size": f"{size:,}", "cap": cap},
                        )
                    raise AudioRejected(
                        "too_long",
                        _("録音が長すぎます (上限 %(max).0f 秒を超えました)。") % {"max": max_seconds},
                    )
    except av.error.FFmpegError as exc:
        raise AudioRejected(
            "corrupt",
            _("音声データが壊れています (デコードできない箇所があります: %(error)s)。")
            % {"error": type(exc).__name__},
        ) from exc
    if not rate:
        raise AudioRejected("no_audio", _("音声が入っていません (デコードできるフレームがありません)。"))
    return samples, rate, channels
