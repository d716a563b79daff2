"""Sans-I/O RTP stream processor: spool records in, ordered frames out.

Feed ``(arrival, datagram)`` records in arrival order.  The processor

* skips multiplexed RTCP and counts malformed packets and unknown payload types;
* extends 16-bit sequence numbers and 32-bit timestamps across wrap
  (RFC 3550 A.1 style: the nearest value to the last one seen);
* reorders within ``reorder_window`` seconds of arrival time, drops duplicates,
  counts gaps as lost and packets that arrive after their slot was given up
  as late;
* starts a new *epoch* (a new timestamp base) when the SSRC changes, when the
  sequence number restarts (a jump confirmed by two consecutive packets), when
  the timestamps stop tracking arrival times (a sender that jumped or froze its
  clock, e.g. around hold) and when the audio clock rate changes;
* routes RFC 4733 telephone-events to a :class:`DtmfDetector` (they never
  become frames) and passes comfort noise through as a silence marker;
* keeps, per epoch, the robust start estimate used to put audio on a timeline:
  ``min(arrival - (ext_timestamp - base_ts) / clock_rate)`` over its packets that
  arrive within ``ANCHOR_WINDOW`` seconds of its first one.  Limiting the estimate
  to the start of the epoch makes it final early, so a call's timeline can be
  built (and encoded) while the call goes on and still come out exactly as a
  one-shot decode of the whole spool (see :meth:`StreamProcessor.anchored`).

No clock is read; all times are the caller's arrival times (seconds).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from callvault.rtp.dtmf import MAX_DURATION, DtmfDetector, DtmfEvent
from callvault.rtp.packet import (
    HEADER_SIZE,
    PLAIN_FIRST_BYTE,
    SEQUENCE_MODULO,
    TIMESTAMP_MODULO,
    RtpError,
    RtpPacket,
    is_rtcp,
)

DEFAULT_REORDER_WINDOW = 0.5
# The start estimate of an epoch takes the least-delayed packet among those arriving
# within this many seconds of its first packet: long enough that a sender's start-up
# hiccups (its first packets late, e.g. on a busy host) do not shift the audio, short
# enough that the pre-encoder can place and encode a long call's audio as it goes.
ANCHOR_WINDOW = 10.0
# Timestamps may drift from arrivals by jitter; beyond this the sender's clock jumped.
DEFAULT_TIMESTAMP_JUMP_TOLERANCE = 1.0
# RFC 3550 A.1: a forward jump larger than this (or a backward one larger than
# MAX_MISORDER) is a restart candidate, confirmed by the next sequential packet.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# How far back (in packets) a packet below the release point is classified as
# duplicate-or-late rather than as a restart candidate. RFC 3550 A.1 draws the line
# at MAX_MISORDER: a sender that replays or restarts its sequence (a device that
# resets after hold, an SBC relaying a new source with the same SSRC) goes further back.
LATE_HISTORY = MAX_MISORDER
# How many declared-lost sequence numbers are remembered (to tell late from duplicate).
LOST_HISTORY = MAX_DROPOUT
COMFORT_NOISE_PT = 13
COMFORT_NOISE_ENCODING = "CN"
COMFORT_NOISE_CLOCK_RATE = 8000
TELEPHONE_EVENT_ENCODING = "TELEPHONE-EVENT"
MS_PER_SECOND = 1000.0
JITTER_GAIN = 1 / 16  # RFC 3550 A.8

_SEQ_HALF = SEQUENCE_MODULO // 2
_TS_HALF = TIMESTAMP_MODULO // 2
_SEQ_MASK = SEQUENCE_MODULO - 1
_TS_MASK = TIMESTAMP_MODULO - 1
_FIXED_HEADER = struct.Struct("!BBHII")
_MARKER_BIT = 0x80
_PT_MASK = 0x7F


class StreamError(ValueError):
    """Invalid stream-processor configuration."""


@dataclass(frozen=True, slots=True)
class PayloadType:
    """An SDP ``rtpmap``/``fmtp`` entry."""

    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None


class PacketKind(Enum):
    AUDIO = "audio"
    COMFORT_NOISE = "cn"
    TELEPHONE_EVENT = "telephone-event"
    UNKNOWN = "unknown"


def classify(pt: int, info: PayloadType | None) -> PacketKind:
    if info is None:
        return PacketKind.COMFORT_NOISE if pt == COMFORT_NOISE_PT else PacketKind.UNKNOWN
    name = info.encoding.upper()
    if name == TELEPHONE_EVENT_ENCODING:
        return PacketKind.TELEPHONE_EVENT
    if name == COMFORT_NOISE_ENCODING:
        return PacketKind.COMFORT_NOISE
    return PacketKind.AUDIO


@dataclass(frozen=True, slots=True)
class Frame:
    """One in-order audio (or comfort-noise) packet of an epoch."""

    ssrc_epoch: int
    ext_timestamp: int
    payload_type: int
    payload: bytes
    arrival: float
    marker: bool
    ext_sequence: int = 0
    comfort_noise: bool = False


@dataclass(frozen=True, slots=True)
class EpochTiming:
    """How one epoch's RTP timestamps map to arrival time.

    ``start`` is the arrival-clock time of timestamp ``base_ts``:
    ``time(ts) = start + (ts - base_ts) / clock_rate``.
    """

    epoch: int
    ssrc: int
    clock_rate: int
    base_ts: int
    start: float

    def time_of(self, ext_timestamp: int) -> float:
        return self.start + (ext_timestamp - self.base_ts) / self.clock_rate


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Counters for one stream.

    ``received`` counts well-formed RTP packets with a known payload type
    (duplicates and late ones included).  ``lost`` counts sequence gaps in the
    output (a packet that later arrived late stays lost).  ``jitter`` is the
    RFC 3550 A.8 interarrival jitter in milliseconds.  ``restarts`` counts new
    epochs that were not caused by an SSRC change.
    """

    received: int = 0
    duplicates: int = 0
    lost: int = 0
    late: int = 0
    dropped_malformed: int = 0
    unknown_pt: int = 0
    ssrc_changes: int = 0
    first_arrival: float | None = None
    last_arrival: float | None = None
    jitter: float = 0.0
    rtcp: int = 0
    restarts: int = 0


class _SeqEpoch:
    """Sequencing state of one run of packets with a consistent SSRC/sequence space."""

    __slots__ = (
        "candidate",
        "declared_lost",
        "highest_seq",
        "index",
        "last_arrival",
        "next_seq",
        "ref_ts",
        "ssrc",
        "transit",
    )

    def __init__(self, index: int, ssrc: int, seq: int) -> None:
        self.index = index
        self.ssrc = ssrc
        self.highest_seq = seq
        self.ref_ts: int | None = None
        self.next_seq: int | None = None
        self.declared_lost: set[int] = set()
        self.last_arrival = 0.0
        self.transit: float | None = None
        self.candidate: tuple[float, int, int, int, bool, bytes] | None = None

    def extend_seq(self, seq: int) -> int:
        return self.highest_seq + ((seq - self.highest_seq + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF

    def extend_ts(self, ts: int) -> int:
        ref = self.ref_ts
        ext = ts if ref is None else ref + ((ts - ref + _TS_HALF) & _TS_MASK) - _TS_HALF
        self.ref_ts = ext
        return ext


class _Timing:
    __slots__ = ("anchor_until", "base_ts", "clock_rate", "last_arrival", "last_ts", "ssrc", "start")

    def __init__(self, ssrc: int, clock_rate: int, base_ts: int, arrival: float) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.base_ts = base_ts
        self.start = arrival
        self.anchor_until = arrival + ANCHOR_WINDOW
        self.last_ts: int | None = None
        self.last_arrival = arrival


# Heap entry: (seq epoch, ext seq, arrival, ext ts, pt, marker, payload, kind)
_Entry = tuple[int, int, float, int, int, bool, bytes, PacketKind]


class StreamProcessor:
    """Orders, de-duplicates and times one RTP stream.  See the module docstring."""

    def __init__(
        self,
        payload_types: dict[int, PayloadType],
        reorder_window: float = DEFAULT_REORDER_WINDOW,
        *,
        timestamp_jump_tolerance: float = DEFAULT_TIMESTAMP_JUMP_TOLERANCE,
    ) -> None:
        if reorder_window < 0:
            raise StreamError(f"reorder_window must be >= 0 seconds, got {reorder_window}")
        if timestamp_jump_tolerance <= 0:
            raise StreamError(f"timestamp_jump_tolerance must be > 0 seconds, got {timestamp_jump_tolerance}")
        for pt, info in payload_types.items():
            if info.clock_rate <= 0:
                raise StreamError(f"payload type {pt} has invalid clock rate {info.clock_rate}")
        self.payload_types = dict(payload_types)
        self.reorder_window = reorder_window
        self.timestamp_jump_tolerance = timestamp_jump_tolerance
        self._kinds = {pt: classify(pt, info) for pt, info in self.payload_types.items()}
        self._clock = {pt: info.clock_rate for pt, info in self.payload_types.items()}
        if COMFORT_NOISE_PT not in self._kinds:
            self._kinds[COMFORT_NOISE_PT] = PacketKind.COMFORT_NOISE
            self._clock[COMFORT_NOISE_PT] = COMFORT_NOISE_CLOCK_RATE
        self._detectors: dict[int, DtmfDetector] = {}
        self._dtmf: list[DtmfEvent] = []

        self._epochs: list[_SeqEpoch] = []
        self._current: _SeqEpoch | None = None
        self._by_ssrc: dict[int, _SeqEpoch] = {}
        self._heap: list[_Entry] = []
        self._buffered: set[tuple[int, int]] = set()
        self._release_epoch = 0
        self._now = float("-inf")
        self._ready: list[Frame] = []
        self._finished = False

        self._out_epoch = -1
        self._out_seq_epoch = -1
        self._timings: list[_Timing] = []

        self._received = 0
        self._duplicates = 0
        self._lost = 0
        self._late = 0
        self._malformed = 0
        self._unknown_pt = 0
        self._ssrc_changes = 0
        self._restarts = 0
        self._rtcp = 0
        self._first_arrival: float | None = None
        self._last_arrival: float | None = None
        self._jitter = 0.0

    # ------------------------------------------------------------------ input

    def feed(self, arrival: float, packet: bytes) -> None:
        """Consume one datagram received at ``arrival`` seconds (records in arrival order)."""
        if self._finished:
            raise StreamError("feed() called after finish()")
        if arrival > self._now:
            self._now = arrival
        if len(packet) >= HEADER_SIZE and packet[0] == PLAIN_FIRST_BYTE:
            _, second, seq, ts, ssrc = _FIXED_HEADER.unpack_from(packet)
            pt = second & _PT_MASK
            marker = bool(second & _MARKER_BIT)
            payload = packet[HEADER_SIZE:]
            if pt not in self._kinds and is_rtcp(packet):
                self._rtcp += 1
                return
        else:
            if is_rtcp(packet):
                self._rtcp += 1
                return
            try:
                parsed = RtpPacket.parse(packet)
            except RtpError:
                self._malformed += 1
                return
            pt, seq, ts, ssrc = parsed.payload_type, parsed.sequence_number, parsed.timestamp, parsed.ssrc
            marker, payload = parsed.marker, parsed.payload
        kind = self._kinds.get(pt, PacketKind.UNKNOWN)
        if kind is PacketKind.UNKNOWN:
            self._unknown_pt += 1
            current = self._current
            if current is None or current.ssrc != ssrc:
                return  # a foreign packet must not disturb the stream
        else:
            self._received += 1
            if self._first_arrival is None:
                self._first_arrival = arrival
            self._last_arrival = arrival
        epoch = self._epoch_for(ssrc, seq, arrival)
        self._accept(epoch, arrival, seq, ts, pt, marker, payload, kind)
        self._release(flush=False)

    def finish(self) -> None:
        """End of input: release everything still buffered (nothing is lost at the end)."""
        if self._finished:
            return
        self._finished = True
        for epoch in list(self._epochs):
            candidate = epoch.candidate
            if candidate is not None:
                # A restart that the stream ended before confirming: keep its audio.
                epoch.candidate = None
                self._restarts += 1
                arrival, seq, ts, pt, marker, payload = candidate
                restarted = self._new_epoch(epoch.ssrc, seq)
                self._accept(restarted, arrival, seq, ts, pt, marker, payload, self._kinds[pt])
        self._release(flush=True)
        for pt in sorted(self._detectors):
            self._dtmf.extend(self._detectors[pt].finish())

    def frames(self) -> Iterator[Frame]:
        """Yield (and forget) the frames released so far, in order."""
        ready = self._ready
        while ready:
            self._ready = []
            yield from ready
            ready = self._ready

    def process(self, records: Iterable[tuple[float, bytes]]) -> Iterator[Frame]:
        """Feed all records, finish, and yield every frame in order."""
        for arrival, packet in records:
            self.feed(arrival, packet)
            if self._ready:
                yield from self.frames()
        self.finish()
        yield from self.frames()

    # ----------------------------------------------------------------- output

    @property
    def stats(self) -> StreamStats:
        return StreamStats(
            received=self._received,
            duplicates=self._duplicates,
            lost=self._lost,
            late=self._late,
            dropped_malformed=self._malformed,
            unknown_pt=self._unknown_pt,
            ssrc_changes=self._ssrc_changes,
            first_arrival=self._first_arrival,
            last_arrival=self._last_arrival,
            jitter=self._jitter * MS_PER_SECOND,
            rtcp=self._rtcp,
            restarts=self._restarts,
        )

    @property
    def dtmf(self) -> list[DtmfEvent]:
        """DTMF events completed so far (all of them after :meth:`finish`)."""
        return list(self._dtmf)

    @property
    def now(self) -> float:
        """The latest arrival fed so far."""
        return self._now

    def anchored(self, epoch: int) -> bool:
        """True when the start estimate of output epoch ``epoch`` can no longer change.

        Packets arriving within ``ANCHOR_WINDOW`` of the epoch's first audio may lower it;
        they leave the reorder buffer at the latest ``reorder_window`` later.
        """
        if self._finished:
            return True
        timing = self._timings[epoch]
        return timing.last_ts is not None and self._now > timing.anchor_until + self.reorder_window

    @property
    def epochs(self) -> dict[int, EpochTiming]:
        """Timing of every epoch that released at least one packet."""
        return {
            index: EpochTiming(index, t.ssrc, t.clock_rate, t.base_ts, t.start)
            for index, t in enumerate(self._timings)
        }

    # -------------------------------------------------------------- internals

    def _epoch_for(self, ssrc: int, seq: int, arrival: float) -> _SeqEpoch:
        current = self._current
        if current is not None:
            if current.ssrc == ssrc:
                return current
            previous = self._by_ssrc.get(ssrc)
            if previous is not None:
                delta = previous.extend_seq(seq) - previous.highest_seq
                if -LATE_HISTORY <= delta <= 0:
                    return previous  # a straggler: buffered, or counted late/duplicate
                if delta <= MAX_MISORDER and arrival - previous.last_arrival <= self.reorder_window:
                    return previous  # still interleaved with the stream we just switched to
            self._ssrc_changes += 1
        return self._new_epoch(ssrc, seq)

    def _new_epoch(self, ssrc: int, seq: int) -> _SeqEpoch:
        epoch = _SeqEpoch(len(self._epochs), ssrc, seq)
        self._epochs.append(epoch)
        self._by_ssrc[ssrc] = epoch
        self._current = epoch
        return epoch

    def _accept(
        self,
        epoch: _SeqEpoch,
        arrival: float,
        seq: int,
        ts: int,
        pt: int,
        marker: bool,
        payload: bytes,
        kind: PacketKind,
    ) -> None:
        ext_seq = epoch.extend_seq(seq)
        next_seq = epoch.next_seq
        if next_seq is not None and next_seq - LATE_HISTORY <= ext_seq < next_seq:
            if ext_seq in epoch.declared_lost:
                self._late += 1
            else:
                self._duplicates += 1
            return
        if epoch.index < self._release_epoch:
            self._late += 1  # its epoch has been released completely
            return
        delta = ext_seq - epoch.highest_seq
        if not -MAX_MISORDER <= delta <= MAX_DROPOUT:
            self._restart_candidate(epoch, arrival, seq, ts, pt, marker, payload, kind)
            return
        if epoch.candidate is not None:
            self._malformed += 1  # an unconfirmed restart candidate: a stray packet
            epoch.candidate = None
        key = (epoch.index, ext_seq)
        if key in self._buffered:
            self._duplicates += 1
            return
        if delta > 0:
            epoch.highest_seq = ext_seq
        epoch.last_arrival = arrival
        # An unknown payload type only holds its sequence slot; its timestamp is not trusted.
        ext_ts = 0 if kind is PacketKind.UNKNOWN else epoch.extend_ts(ts)
        if kind is PacketKind.AUDIO or kind is PacketKind.COMFORT_NOISE:
            transit = arrival - ext_ts / self._clock[pt]
            if epoch.transit is not None:
                self._jitter += (abs(transit - epoch.transit) - self._jitter) * JITTER_GAIN
            epoch.transit = transit
        if (
            not self._heap
            and epoch.index == self._release_epoch
            and next_seq is not None
            and ext_seq == next_seq
        ):
            self._emit((epoch.index, ext_seq, arrival, ext_ts, pt, marker, payload, kind))
            return
        self._buffered.add(key)
        heapq.heappush(self._heap, (epoch.index, ext_seq, arrival, ext_ts, pt, marker, payload, kind))

    def _restart_candidate(
        self,
        epoch: _SeqEpoch,
        arrival: float,
        seq: int,
        ts: int,
        pt: int,
        marker: bool,
        payload: bytes,
        kind: PacketKind,
    ) -> None:
        candidate = epoch.candidate
        if candidate is not None and (candidate[1] + 1) & _SEQ_MASK == seq:
            epoch.candidate = None
            self._restarts += 1
            restarted = self._new_epoch(epoch.ssrc, candidate[1])
            c_arrival, c_seq, c_ts, c_pt, c_marker, c_payload = candidate
            self._accept(restarted, c_arrival, c_seq, c_ts, c_pt, c_marker, c_payload, self._kinds[c_pt])
            self._accept(restarted, arrival, seq, ts, pt, marker, payload, kind)
            return
        if candidate is not None:
            self._malformed += 1
        if kind is PacketKind.UNKNOWN:
            epoch.candidate = None
            return
        epoch.candidate = (arrival, seq, ts, pt, marker, payload)

    def _release(self, *, flush: bool) -> None:
        heap = self._heap
        epochs = self._epochs
        horizon = self._now - self.reorder_window
        while heap:
            head = heap[0]
            epoch_index, ext_seq, arrival = head[0], head[1], head[2]
            if epoch_index == self._release_epoch:
                expected = epochs[epoch_index].next_seq
                if expected != ext_seq and arrival > horizon and not flush:
                    return
            elif arrival > horizon and not flush:
                return  # give stragglers of the previous epoch their window
            heapq.heappop(heap)
            self._buffered.discard((epoch_index, ext_seq))
            self._emit(head)

    def _emit(self, entry: _Entry) -> None:
        epoch_index, ext_seq, arrival, ext_ts, pt, marker, payload, kind = entry
        epoch = self._epochs[epoch_index]
        self._release_epoch = epoch_index
        expected = epoch.next_seq
        if expected is not None and ext_seq > expected:
            self._lost += ext_seq - expected
            lost = epoch.declared_lost
            lost.update(range(expected, ext_seq))
            if len(lost) > 2 * LOST_HISTORY:
                floor = ext_seq - LOST_HISTORY
                epoch.declared_lost = {s for s in lost if s >= floor}
        epoch.next_seq = ext_seq + 1
        if kind is PacketKind.UNKNOWN:
            return
        clock = self._clock[pt]
        timing = self._timing_for(epoch, ext_ts, arrival, clock, kind)
        if kind is PacketKind.TELEPHONE_EVENT:
            if not self._plausible_event_start(timing, ext_ts, arrival, clock):
                self._malformed += 1
                return
            detector = self._detectors.get(pt)
            if detector is None:
                detector = self._detectors[pt] = DtmfDetector(clock)
            self._dtmf.extend(detector.feed(ext_ts, payload, marker=marker, ssrc_epoch=self._out_epoch))
            return
        if timing.last_ts is None:
            # First audio of an epoch opened by a telephone-event: anchor on the audio.
            timing.base_ts = ext_ts
            timing.start = arrival
            timing.anchor_until = arrival + ANCHOR_WINDOW
        offset = arrival - (ext_ts - timing.base_ts) / timing.clock_rate
        if offset < timing.start and arrival <= timing.anchor_until:
            timing.start = offset
        timing.last_ts = ext_ts
        timing.last_arrival = arrival
        self._ready.append(
            Frame(
                ssrc_epoch=self._out_epoch,
                ext_timestamp=ext_ts,
                payload_type=pt,
                payload=payload,
                arrival=arrival,
                marker=marker,
                ext_sequence=ext_seq,
                comfort_noise=kind is PacketKind.COMFORT_NOISE,
            )
        )

    def _plausible_event_start(self, timing: _Timing, ext_ts: int, arrival: float, clock: int) -> bool:
        """An event's timestamp is its start: not in the future, not older than one segment."""
        if timing.last_ts is None:
            return True
        now_ts = timing.last_ts + (arrival - timing.last_arrival) * timing.clock_rate
        age = (now_ts - ext_ts) / timing.clock_rate
        tolerance = self.timestamp_jump_tolerance
        return -tolerance <= age <= MAX_DURATION / clock + tolerance

    def _timing_for(
        self, epoch: _SeqEpoch, ext_ts: int, arrival: float, clock: int, kind: PacketKind
    ) -> _Timing:
        if epoch.index != self._out_seq_epoch:
            self._out_seq_epoch = epoch.index
            return self._open_timing(epoch.ssrc, clock, ext_ts, arrival)
        timing = self._timings[self._out_epoch]
        if kind is PacketKind.TELEPHONE_EVENT:
            return timing
        if clock != timing.clock_rate:
            self._restarts += 1
            return self._open_timing(epoch.ssrc, clock, ext_ts, arrival)
        if timing.last_ts is not None:
            drift = (arrival - timing.last_arrival) - (ext_ts - timing.last_ts) / clock
            if abs(drift) > self.timestamp_jump_tolerance:
                self._restarts += 1
                return self._open_timing(epoch.ssrc, clock, ext_ts, arrival)
        return timing

    def _open_timing(self, ssrc: int, clock: int, base_ts: int, arrival: float) -> _Timing:
        timing = _Timing(ssrc, clock, base_ts, arrival)
        self._timings.append(timing)
        self._out_epoch = len(self._timings) - 1
        return timing
