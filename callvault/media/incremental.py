"""Build and encode a call's recording while the call is still going on.

:class:`IncrementalMix` takes each stream's spool records as they are written
(arrival order, any batch size) and keeps the call's timeline; the part of the
timeline that no later packet can change any more is taken out with
:meth:`IncrementalMix.take` and appended to an :class:`OpusWriter`.  When the call
ends, :meth:`IncrementalMix.finish` returns the rest.  The samples are exactly
those of the one-shot path (``finalize.build_audio``: decode_track per stream,
mix_mono per side, stereo, pad to the end of the call), and the Ogg Opus file is
byte for byte the one ``encode_recording`` writes from them.

That holds because the RTP stream processor places an epoch by its first
``ANCHOR_WINDOW`` seconds only (:meth:`StreamProcessor.anchored`), frames are
decoded in the same order, and audio is taken only from before a horizon that
new packets cannot reach.  Calls this cannot reproduce exactly raise
:class:`NotIncremental` (the caller then finalizes in one shot from the spool):
streams that need resampling (e.g. G.722 and G.711 mixed), epochs that overlap
on the timeline, and any packet that would land before what was already taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import numpy.typing as npt

from callvault.codecs import Decoder, UnsupportedCodec, canonical_name, get_decoder
from callvault.media.encode import (
    _ENCODE_CHUNK,
    OPUS_BITRATE_PER_CHANNEL,
    OPUS_COMPLEXITY,
    OPUS_FRAME_MS,
    _check_metadata,
    _opus_options,
)
from callvault.media.track import DecodedTrack
from callvault.rtp.stream import ANCHOR_WINDOW, DEFAULT_REORDER_WINDOW, StreamProcessor

__all__ = ["SAFETY_MARGIN", "IncrementalMix", "NotIncremental", "OpusWriter"]

Pcm = npt.NDArray[np.int16]
SAFETY_MARGIN = 2.0
"""Audio younger than this (seconds before the newest arrival) is never taken before the end."""
ENVELOPE_STEP_S = 0.01
INT16_MIN, INT16_MAX = -32768, 32767


class NotIncremental(Exception):
    """This call cannot be built incrementally with the one-shot result; finalize it in one go."""


class OpusWriter:
    """``encode_recording(fmt="opus")`` fed piece by piece: the same file, bytes for bytes.

    Samples are handed to libopus in the same 4800-sample chunks as the one-shot encoder,
    so the packets (and the file) are identical whatever sizes :meth:`write` gets.
    """

    def __init__(
        self,
        fh: IO[bytes],
        sample_rate: int,
        channels: int,
        *,
        bitrate: int | None = None,
        complexity: int | None = None,
        frame_ms: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.samples = 0
        self._fh = fh
        self._layout = "stereo" if channels == 2 else "mono"
        options = _opus_options(
            channels,
            OPUS_BITRATE_PER_CHANNEL if bitrate is None else bitrate,
            OPUS_FRAME_MS if frame_ms is None else frame_ms,
            OPUS_COMPLEXITY if complexity is None else complexity,
        )
        self._container: Any = av.open(fh, "w", format="ogg")
        self._container.metadata.update(_check_metadata(metadata))
        self._stream: Any = self._container.add_stream(
            "libopus", rate=sample_rate, layout=self._layout, options=options
        )
        self._stream.codec_context.format = "s16"
        self._time_base = Fraction(1, sample_rate)
        self._pending: list[Pcm] = []
        self._pending_len = 0
        self._closed = False

    def write(self, pcm: Pcm) -> None:
        """Append samples of shape (n, channels) (or (n,) for mono)."""
        if self._closed:
            raise ValueError("write after close")
        if len(pcm) == 0:
            return
        self._pending.append(np.ascontiguousarray(pcm).reshape(-1, self.channels))
        self._pending_len += len(pcm)
        if self._pending_len >= _ENCODE_CHUNK:
            self._encode(final=False)

    def _encode(self, *, final: bool) -> None:
        data = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        whole = len(data) if final else len(data) - len(data) % _ENCODE_CHUNK
        for start in range(0, whole, _ENCODE_CHUNK):
            chunk = data[start : start + _ENCODE_CHUNK]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=self._layout)
            frame.sample_rate = self.sample_rate
            frame.pts = self.samples
            frame.time_base = self._time_base
            self._container.mux(self._stream.encode(frame))
            self.samples += len(chunk)
        rest = data[whole:]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)

    def close(self) -> None:
        """Encode what is left, write the last pages and flush (the caller fsyncs and closes fh)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._pending_len:
                self._encode(final=True)
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
        self._fh.flush()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # the partial file is thrown away anyway
                self._container.close()


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@dataclasses.dataclass
class _Stream:
    index: int
    side: int
    processor: StreamProcessor
    decoders: dict[tuple[int, int], Decoder | None] = dataclasses.field(default_factory=dict)
    codecs: set[str] = dataclasses.field(default_factory=set)
    unsupported: bool = False
    held: list[tuple[int, int, Pcm]] = dataclasses.field(default_factory=list)  # (epoch, ts, pcm)
    bases: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)  # epoch -> (base_ts, pos)
    buf: Pcm = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    end: int | None = None  # sample position after the last sample written
    last_epoch: int = -1
    any_frame: bool = False


class IncrementalMix:
    """One call's timeline built from its streams as their records come (see the module docstring).

    ``streams`` maps a stream index to ``(role, payload types)``; ``t0`` is the time of
    sample 0 and ``out_rate`` the recording's rate, as ``finalize.build_audio`` chose them.
    """

    def __init__(
        self,
        streams: dict[int, tuple[str, dict[int, Any]]],
        *,
        t0: float,
        out_rate: int,
        reorder_window: float = DEFAULT_REORDER_WINDOW,
    ) -> None:
        self.t0 = t0
        self.rate = out_rate
        roles = {i: role for i, (role, _pts) in streams.items()}
        left = [i for i in sorted(roles) if roles[i] == "caller"]
        mixed = [i for i in sorted(roles) if roles[i] == "mixed"]
        right = [i for i in sorted(roles) if roles[i] not in ("caller", "mixed")]
        if mixed and not left and not right:
            self.channels = 1
            self.channel_map = {"mono": "mixed"}
            sides = dict.fromkeys(mixed, 0)
        else:
            self.channels = 2
            self.channel_map = {"left": "caller", "right": "callee"}
            sides = {**dict.fromkeys(left, 0), **dict.fromkeys(right + mixed, 1)}
        self._streams = {
            i: _Stream(i, sides[i], StreamProcessor(pts, reorder_window))
            for i, (_role, pts) in streams.items()
        }
        self.taken = 0  # samples handed out so far
        self._envelope: list[npt.NDArray[np.int16]] = []
        self._env_step = max(1, round(out_rate * ENVELOPE_STEP_S))
        self._env_carry = np.zeros((0, self.channels), dtype=np.int16)
        self._finished = False

    # -- input ----------------------------------------------------------------------------

    def feed(self, index: int, records: Iterable[tuple[float, bytes]]) -> None:
        stream = self._streams[index]
        processor = stream.processor
        for arrival, packet in records:
            processor.feed(arrival, packet)
        self._drain(stream)

    def _drain(self, stream: _Stream) -> None:
        processor = stream.processor
        payload_types = processor.payload_types
        for frame in processor.frames():
            if frame.comfort_noise:
                continue
            key = (frame.ssrc_epoch, frame.payload_type)
            if key in stream.decoders:
                decoder = stream.decoders[key]
            else:
                info = payload_types[frame.payload_type]
                stream.codecs.add(canonical_name(info.encoding))
                try:
                    decoder = get_decoder(info.encoding, info.clock_rate, info.channels, info.fmtp)
                except UnsupportedCodec:
                    decoder = None
                    stream.unsupported = True
                stream.decoders[key] = decoder
            if decoder is None:
                continue
            if decoder.sample_rate != self.rate:
                raise NotIncremental(
                    f"stream {stream.index}: {decoder.sample_rate} Hz audio in a {self.rate} Hz mix"
                )
            pcm = decoder.decode(frame.payload)
            if not len(pcm):
                continue
            stream.held.append((frame.ssrc_epoch, frame.ext_timestamp, pcm))
        self._place(stream)

    def _place(self, stream: _Stream) -> None:
        """Write the held frames whose epoch start is final onto the stream's timeline."""
        processor = stream.processor
        if not stream.held:
            return
        placed = 0
        epochs = None
        for epoch, ts, pcm in stream.held:
            if epoch not in stream.bases:
                if not processor.anchored(epoch):
                    break
                if epochs is None:
                    epochs = processor.epochs
                # as decode_track: the segment starts at its first frame (origin 0)
                seconds = epochs[epoch].time_of(ts) - self.t0 + 0 / self.rate
                position = round(seconds * self.rate)
                if epoch < stream.last_epoch:
                    raise NotIncremental(f"stream {stream.index}: epochs out of order")
                if stream.end is not None and position < stream.end:
                    raise NotIncremental(f"stream {stream.index}: epoch {epoch} overlaps the one before")
                stream.bases[epoch] = (ts, position)
                stream.last_epoch = epoch
            base_ts, position = stream.bases[epoch]
            clock = processor.epochs[epoch].clock_rate if epochs is None else epochs[epoch].clock_rate
            offset = (ts - base_ts) * self.rate // clock
            if offset < 0:
                raise NotIncremental(f"stream {stream.index}: a frame before the start of its epoch")
            self._write(stream, position + offset, pcm)
            placed += 1
        del stream.held[:placed]

    def _write(self, stream: _Stream, at: int, pcm: Pcm) -> None:
        end = at + len(pcm)
        stream.end = end if stream.end is None else max(stream.end, end)
        stream.any_frame = True
        if at < 0:  # before the start of the recording: cut, as mix_mono does
            pcm = pcm[-at:]
            at = 0
        if len(pcm) == 0:
            return
        if at < self.taken:
            raise NotIncremental(f"stream {stream.index}: audio arrived for a part already encoded")
        index = at - self.taken
        if index + len(pcm) > len(stream.buf):
            grown = np.zeros(max(index + len(pcm), 2 * len(stream.buf), 4096), dtype=np.int16)
            grown[: len(stream.buf)] = stream.buf
            stream.buf = grown
        stream.buf[index : index + len(pcm)] = pcm

    # -- output ---------------------------------------------------------------------------

    def stable(self) -> int:
        """Sample position before which the timeline can no longer change."""
        limit: int | None = None
        newest = max((s.processor.now for s in self._streams.values()), default=float("-inf"))
        horizon = round((newest - self.t0 - SAFETY_MARGIN) * self.rate)
        written = max((s.end for s in self._streams.values() if s.end is not None), default=0)
        limit = min(horizon, written)
        for stream in self._streams.values():
            if stream.held:  # an epoch not placed yet began at most ANCHOR_WINDOW + reorder ago
                processor = stream.processor
                began = processor.now - ANCHOR_WINDOW - processor.reorder_window
                limit = min(limit, round((began - self.t0 - SAFETY_MARGIN) * self.rate))
        return max(self.taken, limit)

    def take(self, upto: int) -> Pcm:
        """Samples [taken, upto) of the mix, shape (n, channels); they can no longer change."""
        count = upto - self.taken
        if count <= 0:
            return np.zeros((0, self.channels), dtype=np.int16)
        acc = np.zeros((count, self.channels), dtype=np.int32)
        for stream in self._streams.values():
            part = stream.buf[:count]
            acc[: len(part), stream.side] += part
            stream.buf = stream.buf[count:]
        out = np.clip(acc, INT16_MIN, INT16_MAX).astype(np.int16)
        self.taken = upto
        self._add_envelope(out)
        return out

    def finish(self, ended_t: float | None) -> Pcm:
        """End of the call: release everything and return the rest of the timeline."""
        self._finished = True
        for stream in self._streams.values():
            stream.processor.finish()
            self._drain(stream)
            if stream.held:
                raise NotIncremental(f"stream {stream.index}: frames left unplaced")
        length = 0
        for stream in self._streams.values():
            if stream.any_frame:
                assert stream.end is not None
                length = max(length, stream.end)
            else:  # as decode_track and mix_mono do for a stream without audio
                first = stream.processor.stats.first_arrival
                start = 0.0 if first is None else first - self.t0
                length = max(length, round(start * self.rate))
        if ended_t is not None:
            length = max(length, round((ended_t - self.t0) * self.rate))
        if length < self.taken:
            raise NotIncremental("the call is shorter than what was already encoded")
        return self.take(length)

    def tracks(self) -> dict[int, DecodedTrack]:
        """Per-stream statistics, codecs and DTMF (no samples), as decode_track reports them."""
        out: dict[int, DecodedTrack] = {}
        for index, stream in self._streams.items():
            processor = stream.processor
            epochs = processor.epochs
            dtmf = [
                dataclasses.replace(event, time=epochs[event.ssrc_epoch].time_of(event.start_ts) - self.t0)
                for event in processor.dtmf
            ]
            out[index] = DecodedTrack(
                pcm=np.zeros(0, dtype=np.int16),
                start=0.0,
                stats=processor.stats,
                dtmf=dtmf,
                codecs=frozenset(stream.codecs),
                unsupported=stream.unsupported,
                sample_rate=self.rate,
                undecodable=sum(d.corrupt for d in stream.decoders.values() if d is not None),
            )
        return out

    # -- waveform -------------------------------------------------------------------------

    def _add_envelope(self, pcm: Pcm) -> None:
        data = np.concatenate([self._env_carry, pcm]) if len(self._env_carry) else pcm
        whole = len(data) - len(data) % self._env_step
        if whole:
            blocks = np.abs(data[:whole].astype(np.int32)).reshape(-1, self._env_step, self.channels)
            self._envelope.append(blocks.max(axis=1).astype(np.int32).clip(0, INT16_MAX).astype(np.int16))
        self._env_carry = data[whole:]

    def envelope(self) -> tuple[npt.NDArray[np.int16], int]:
        """Largest absolute sample per ``ENVELOPE_STEP_S`` block, shape (blocks, channels), and the step."""
        parts = list(self._envelope)
        if len(self._env_carry):
            parts.append(
                np.abs(self._env_carry.astype(np.int32)).max(axis=0, keepdims=True).clip(0, INT16_MAX)
            )
        if not parts:
            return np.zeros((0, self.channels), dtype=np.int16), self._env_step
        return np.concatenate(parts).astype(np.int16), self._env_step


def fsync_close(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
