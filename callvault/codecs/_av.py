"""Thin helpers around PyAV codec contexts (per-packet decode, whole-buffer encode)."""

from __future__ import annotations

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

from callvault.codecs.base import Pcm, downmix, to_int16

_LAYOUTS = {1: "mono", 2: "stereo"}


def open_decoder(name: str, sample_rate: int, channels: int) -> AudioCodecContext:
    ctx = av.codec.CodecContext.create(name, "r")
    assert isinstance(ctx, AudioCodecContext)
    ctx.sample_rate = sample_rate
    ctx.layout = _LAYOUTS[channels]
    ctx.open()
    return ctx


def frame_to_mono(frame: AudioFrame) -> Pcm:
    """One decoded frame as mono int16, whatever the sample format and layout."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if frame.format.is_planar:
        mono = data.mean(axis=0) if channels > 1 else data[0]
        return to_int16(mono)
    return downmix(to_int16(data.reshape(-1)), channels)


def decode_packet(ctx: AudioCodecContext, payload: bytes) -> Pcm:
    """Decode one packet; raises ``av.FFmpegError`` on corrupt input."""
    frames = ctx.decode(av.Packet(payload))
    if not frames:
        return np.zeros(0, dtype=np.int16)
    if len(frames) == 1:
        return frame_to_mono(frames[0])
    return np.concatenate([frame_to_mono(f) for f in frames])


def open_encoder(name: str, sample_rate: int, bit_rate: int | None = None) -> AudioCodecContext:
    ctx = av.codec.CodecContext.create(name, "w")
    assert isinstance(ctx, AudioCodecContext)
    ctx.sample_rate = sample_rate
    ctx.format = "s16"
    ctx.layout = "mono"
    if bit_rate is not None:
        ctx.bit_rate = bit_rate
    ctx.open()
    return ctx


def make_frame(pcm: Pcm, sample_rate: int, pts: int) -> AudioFrame:
    frame = AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = pts
    return frame
