"""RFC 4733 telephone-events: payload codec and a sans-I/O DTMF detector.

A sender announces one key press as a run of packets that all carry the same
RTP timestamp (the event start): the first with the marker bit, then updates
with a growing duration, then (typically three) copies of the final packet
with the E bit set.  :class:`DtmfDetector` folds such a run into exactly one
:class:`DtmfEvent`, however many of the packets were duplicated or lost.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

TELEPHONE_EVENT_SIZE = 4
MAX_EVENT_CODE = 0xFF
MAX_VOLUME = 0x3F
MAX_DURATION = 0xFFFF
DEFAULT_CLOCK_RATE = 8000
FLASH = "flash"
# RFC 4733 §3.2 table 7: events 0-9, *, #, A-D, flash.
DTMF_DIGITS: dict[int, str] = {
    **{code: str(code) for code in range(10)},
    10: "*",
    11: "#",
    12: "A",
    13: "B",
    14: "C",
    15: "D",
    16: FLASH,
}
# How many finished events to remember so that late redundant end packets are ignored.
_FINISHED_MEMORY = 32

_END_BIT = 0x80
_RESERVED_BIT = 0x40
_VOLUME_MASK = 0x3F
_EVENT = struct.Struct("!BBH")


class DtmfError(ValueError):
    """A telephone-event payload is malformed or a field is out of range."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet RFC 4733 §2.3 payload.  ``volume`` is -dBm0 (0-63)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < TELEPHONE_EVENT_SIZE:
            raise DtmfError(
                f"telephone-event payload too short: {len(payload)} bytes, need {TELEPHONE_EVENT_SIZE}"
            )
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event=event, end=bool(flags & _END_BIT), volume=flags & _VOLUME_MASK, duration=duration)

    def __bytes__(self) -> bytes:
        if not 0 <= self.event <= MAX_EVENT_CODE:
            raise DtmfError(f"event code {self.event} out of range 0-{MAX_EVENT_CODE}")
        if not 0 <= self.volume <= MAX_VOLUME:
            raise DtmfError(f"volume {self.volume} out of range 0-{MAX_VOLUME}")
        if not 0 <= self.duration <= MAX_DURATION:
            raise DtmfError(f"duration {self.duration} out of range 0-{MAX_DURATION}")
        return _EVENT.pack(self.event, (_END_BIT if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return DTMF_DIGITS.get(self.event)


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One key press.

    ``start_ts`` is the (extended) RTP timestamp of the event start in
    ``ssrc_epoch``; ``duration_samples`` is in units of ``clock_rate``.
    ``time`` (seconds) is filled in once the event is placed on a timeline.
    """

    digit: str
    start_ts: int
    duration_samples: int
    clock_rate: int = DEFAULT_CLOCK_RATE
    ssrc_epoch: int = 0
    time: float | None = None

    @property
    def duration(self) -> float:
        return self.duration_samples / self.clock_rate


@dataclass(slots=True)
class _Pending:
    epoch: int
    start_ts: int
    segment_ts: int
    code: int
    earlier_segments: int
    duration: int


class DtmfDetector:
    """Turns in-order telephone-event packets into one :class:`DtmfEvent` per key press.

    Feed packets in sequence order (the stream processor does that).  An
    event is emitted on its first end packet; if every end packet is lost it
    is emitted when the next event starts or at :meth:`finish`.  Events longer
    than 0xFFFF samples, sent as several segments (RFC 4733 §2.5.2.3), are
    merged.  Non-DTMF events (tones, fax signals) are counted in ``ignored``.
    """

    def __init__(self, clock_rate: int = DEFAULT_CLOCK_RATE) -> None:
        self.clock_rate = clock_rate
        self.events: list[DtmfEvent] = []
        self.malformed = 0
        self.ignored = 0
        self._pending: _Pending | None = None
        self._finished: deque[tuple[int, int]] = deque(maxlen=_FINISHED_MEMORY)

    def feed(
        self, timestamp: int, payload: bytes, *, marker: bool = False, ssrc_epoch: int = 0
    ) -> list[DtmfEvent]:
        """Consume one packet; return the events completed by it (usually none)."""
        try:
            tev = TelephoneEvent.parse(payload)
        except DtmfError:
            self.malformed += 1
            return []
        if tev.event not in DTMF_DIGITS:
            self.ignored += 1
            return []
        if (ssrc_epoch, timestamp) in self._finished:
            return []  # redundant copy of an end packet already reported
        emitted: list[DtmfEvent] = []
        pending = self._pending
        if pending is not None and (pending.epoch, pending.segment_ts) != (ssrc_epoch, timestamp):
            if self._continues(pending, tev, timestamp, ssrc_epoch, marker):
                pending.earlier_segments += pending.duration
                pending.segment_ts = timestamp
                pending.duration = 0
            else:
                emitted.append(self._emit(pending))
                pending = None
        if pending is None:
            pending = _Pending(ssrc_epoch, timestamp, timestamp, tev.event, 0, 0)
            self._pending = pending
        elif pending.code != tev.event:
            # Same timestamp, different event: a broken sender.  Keep the first.
            self.ignored += 1
            return emitted
        pending.duration = max(pending.duration, tev.duration)
        if tev.end:
            emitted.append(self._emit(pending))
        return emitted

    def finish(self) -> list[DtmfEvent]:
        """Emit an event whose end packets never arrived."""
        if self._pending is None:
            return []
        return [self._emit(self._pending)]

    def _continues(
        self, pending: _Pending, tev: TelephoneEvent, timestamp: int, epoch: int, marker: bool
    ) -> bool:
        return (
            not marker
            and epoch == pending.epoch
            and tev.event == pending.code
            and pending.duration > 0
            and timestamp == pending.segment_ts + pending.duration
        )

    def _emit(self, pending: _Pending) -> DtmfEvent:
        event = DtmfEvent(
            digit=DTMF_DIGITS[pending.code],
            start_ts=pending.start_ts,
            duration_samples=pending.earlier_segments + pending.duration,
            clock_rate=self.clock_rate,
            ssrc_epoch=pending.epoch,
        )
        self._finished.append((pending.epoch, pending.segment_ts))
        self._pending = None
        self.events.append(event)
        return event
