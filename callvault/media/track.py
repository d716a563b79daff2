"""Decode one spooled RTP stream into PCM on the call's true timeline.

Placement rule: within an epoch (see :mod:`callvault.rtp.stream`) a frame
starts at ``epoch_start + (ext_timestamp - base_ts) / clock_rate`` where
``epoch_start`` is the minimum over the epoch of ``arrival - rtp_time`` —
the least-delayed packet — so jitter never shifts audio.  Anything without
a frame (loss, DTX, comfort noise, hold) is silence of exactly the length
the timestamps say; nothing is ever appended in arrival order.

Each ``(epoch, decoder rate)`` pair is decoded into its own growable buffer
on the epoch's local sample grid, resampled once to ``out_rate`` (PyAV's
libswresample, delay-compensated) and then written into one preallocated
output array; where epochs overlap the later one overwrites, so later audio
never moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from callvault.codecs import Decoder, UnsupportedCodec, canonical_name, get_decoder
from callvault.rtp.dtmf import DtmfEvent
from callvault.rtp.packet import peek
from callvault.rtp.stream import (
    DEFAULT_REORDER_WINDOW,
    PacketKind,
    PayloadType,
    StreamProcessor,
    StreamStats,
    classify,
)

Pcm = npt.NDArray[np.int16]
# A segment buffer starts at this many first-frame lengths and doubles as needed,
# so a stream that splits into many tiny epochs stays small.
INITIAL_BUFFER_FRAMES = 16
# Resample long segments in pieces so no full-length intermediate copy is made.
RESAMPLE_CHUNK_SECONDS = 10
_FORMAT = "s16"
_LAYOUT = "mono"


class TrackError(ValueError):
    """Invalid arguments to :func:`decode_track`."""


@dataclass(frozen=True, slots=True)
class DecodedTrack:
    """One stream's audio.  ``pcm[0]`` plays at ``start`` seconds after ``t0``."""

    pcm: Pcm
    start: float
    stats: StreamStats
    dtmf: list[DtmfEvent]
    codecs: frozenset[str]
    unsupported: bool
    sample_rate: int
    undecodable: int = 0

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    @property
    def end(self) -> float:
        return self.start + self.duration


class _Segment:
    """Decoded audio of one epoch at one decoder rate, on the epoch's sample grid."""

    __slots__ = ("base_ts", "buf", "clock_rate", "high", "origin", "rate")

    def __init__(self, base_ts: int, rate: int, clock_rate: int, frame_samples: int) -> None:
        self.base_ts = base_ts
        self.rate = rate
        self.clock_rate = clock_rate
        self.origin = 0  # local sample offset of buf[0] (<= 0)
        self.high = 0  # used length of buf
        self.buf: Pcm = np.zeros(INITIAL_BUFFER_FRAMES * frame_samples, dtype=np.int16)

    def write(self, ext_timestamp: int, pcm: Pcm) -> None:
        index = (ext_timestamp - self.base_ts) * self.rate // self.clock_rate - self.origin
        if index < 0:
            self._grow_front(-index)
            index = 0
        end = index + len(pcm)
        if end > len(self.buf):
            grown = np.zeros(max(end, 2 * len(self.buf)), dtype=np.int16)
            grown[: self.high] = self.buf[: self.high]
            self.buf = grown
        self.buf[index:end] = pcm
        if end > self.high:
            self.high = end

    def _grow_front(self, extra: int) -> None:
        grown = np.zeros(max(len(self.buf), self.high + extra), dtype=np.int16)
        grown[extra : extra + self.high] = self.buf[: self.high]
        self.buf = grown
        self.origin -= extra
        self.high += extra

    def pcm(self) -> Pcm:
        return self.buf[: self.high]

    def release(self) -> None:
        self.buf = np.zeros(0, dtype=np.int16)
        self.high = 0


def resampled_length(samples: int, in_rate: int, out_rate: int) -> int:
    return samples if in_rate == out_rate else round(samples * out_rate / in_rate)


def resample_into(target: Pcm, pcm: Pcm, in_rate: int, out_rate: int) -> None:
    """Write ``pcm`` resampled to ``out_rate`` into ``target`` (cut or zero-padded to its length).

    Band-limited, delay-compensated libswresample conversion, fed in chunks.
    """
    if in_rate == out_rate:
        count = min(len(target), len(pcm))
        target[:count] = pcm[:count]
        return
    resampler = AudioResampler(format=_FORMAT, layout=_LAYOUT, rate=out_rate)
    chunk = RESAMPLE_CHUNK_SECONDS * in_rate
    filled = 0

    def put(frames: list[AudioFrame]) -> None:
        nonlocal filled
        for produced in frames:
            data = produced.to_ndarray().reshape(-1)[: len(target) - filled]
            target[filled : filled + len(data)] = data
            filled += len(data)

    for start in range(0, len(pcm), chunk):
        piece = np.ascontiguousarray(pcm[start : start + chunk]).reshape(1, -1)
        frame = AudioFrame.from_ndarray(piece, format=_FORMAT, layout=_LAYOUT)
        frame.sample_rate = in_rate
        put(resampler.resample(frame))
    put(resampler.resample(None))


def resample(pcm: Pcm, in_rate: int, out_rate: int) -> Pcm:
    """Resampled copy of ``pcm``, length ``round(len * out_rate / in_rate)``."""
    if in_rate == out_rate:
        return pcm
    out = np.zeros(resampled_length(len(pcm), in_rate, out_rate), dtype=np.int16)
    resample_into(out, pcm, in_rate, out_rate)
    return out


def decode_track(
    records: Iterable[tuple[float, bytes]],
    payload_types: dict[int, PayloadType],
    *,
    t0: float,
    out_rate: int,
    reorder_window: float = DEFAULT_REORDER_WINDOW,
) -> DecodedTrack:
    """Decode one stream's spool records (in arrival order) into a :class:`DecodedTrack`."""
    if out_rate <= 0:
        raise TrackError(f"out_rate must be positive, got {out_rate}")
    processor = StreamProcessor(payload_types, reorder_window)
    decoders: dict[tuple[int, int], Decoder | None] = {}
    segments: dict[tuple[int, int], _Segment] = {}
    codecs: set[str] = set()
    unsupported = False
    for frame in processor.process(records):
        if frame.comfort_noise:
            continue  # silence: the gap up to the next audio frame stays zero
        key = (frame.ssrc_epoch, frame.payload_type)
        if key in decoders:
            decoder = decoders[key]
        else:
            info = payload_types[frame.payload_type]
            codecs.add(canonical_name(info.encoding))
            try:
                decoder = get_decoder(info.encoding, info.clock_rate, info.channels, info.fmtp)
            except UnsupportedCodec:
                decoder = None
                unsupported = True
            decoders[key] = decoder
        if decoder is None:
            continue
        pcm = decoder.decode(frame.payload)
        if not len(pcm):
            continue
        segment_key = (frame.ssrc_epoch, decoder.sample_rate)
        segment = segments.get(segment_key)
        if segment is None:
            segment = segments[segment_key] = _Segment(
                frame.ext_timestamp, decoder.sample_rate, decoder.rtp_clock_rate, len(pcm)
            )
        segment.write(frame.ext_timestamp, pcm)

    stats = processor.stats
    epochs = processor.epochs
    layout: list[tuple[int, int, _Segment]] = []
    for (epoch, _rate), segment in sorted(segments.items()):
        seconds = epochs[epoch].time_of(segment.base_ts) - t0 + segment.origin / segment.rate
        length = resampled_length(segment.high, segment.rate, out_rate)
        layout.append((round(seconds * out_rate), length, segment))
    if layout:
        first = min(position for position, _, _ in layout)
        last = max(position + length for position, length, _ in layout)
        out = np.zeros(last - first, dtype=np.int16)
        for position, length, segment in layout:  # epoch order: a later epoch overwrites an overlap
            offset = position - first
            resample_into(out[offset : offset + length], segment.pcm(), segment.rate, out_rate)
            segment.release()
        start = first / out_rate
    else:
        out = np.zeros(0, dtype=np.int16)
        start = 0.0 if stats.first_arrival is None else stats.first_arrival - t0
    dtmf = [
        dataclasses.replace(event, time=epochs[event.ssrc_epoch].time_of(event.start_ts) - t0)
        for event in processor.dtmf
    ]
    return DecodedTrack(
        pcm=out,
        start=start,
        stats=stats,
        dtmf=dtmf,
        codecs=frozenset(codecs),
        unsupported=unsupported,
        sample_rate=out_rate,
        undecodable=sum(d.corrupt for d in decoders.values() if d is not None),
    )


def used_pcm_rates(records: Iterable[tuple[float, bytes]], payload_types: dict[int, PayloadType]) -> set[int]:
    """PCM rates of the supported audio codecs a stream actually uses (cheap header peek).

    Feed the result of both sides to :func:`callvault.media.mix.choose_out_rate`
    before calling :func:`decode_track`.
    """
    seen: set[int] = set()
    for _arrival, packet in records:
        header = peek(packet)
        if header is not None:
            seen.add(header[0])
    rates: set[int] = set()
    for pt in seen:
        info = payload_types.get(pt)
        if info is None or classify(pt, info) is not PacketKind.AUDIO:
            continue
        try:
            decoder = get_decoder(info.encoding, info.clock_rate, info.channels, info.fmtp)
        except UnsupportedCodec:
            continue
        rates.add(decoder.sample_rate)
    return rates
