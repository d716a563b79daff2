"""The figures of /metrics that come from the database and the job queue.

Cheap at any table size, with the indexes the models already have:

- counts by call state and by recording state: one SQL statement (one consistent
  snapshot, no transaction: the embedded SQLite opens IMMEDIATE transactions,
  which would take the write lock) of ``COUNT(*)`` over the table, which SQLite
  answers from the b-tree without visiting rows, plus index-range counts of every
  state but the dominant one (``completed``, ``ready``), which is the difference;
- the oldest waiting recording: an index search on ``recording_state``;
- finalize latency and packet totals: the recordings table is followed by primary
  key, each scrape reading only the rows added since the previous one.

No row-level detail (numbers, names, ids) ever reaches the output.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import connection
from django.db.models import Min

from callvault.apps.calls.models import Call, CallState, RecordingState
from callvault.apps.ops import jobqueue
from callvault.apps.ops.exposition import Family
from callvault.apps.recordings.models import Recording

log = logging.getLogger("callvault.ops")

# Finalize latency is taken over the recordings of this window, at most this many (the newest).
FINALIZE_WINDOW = timedelta(minutes=15)
FINALIZE_SAMPLE = 1000
# A recording row is folded into the running totals once it is this old: a database transaction
# that took its id earlier but commits later than this would be missed (finalize's is short).
SETTLE = timedelta(seconds=60)
FETCH_LIMIT = 10_000
QUANTILES = (0.5, 0.9, 0.99)
WAITING: tuple[str, ...] = ("pending", "processing")
LIVE: tuple[str, ...] = ("ringing", "active")
# The state most calls end in: derived as the total minus the others, so that no scrape walks them.
DOMINANT_STATE = "completed"
DOMINANT_RECORDING = "ready"


@lru_cache(maxsize=1)
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        return pkg_version("callvault")
    except PackageNotFoundError:
        return "unknown"


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list; NaN for none (the Prometheus convention)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def state_counts() -> tuple[dict[str, int], dict[str, int]]:
    """Calls by state and by recording state, exact, in one statement."""
    qn = connection.ops.quote_name
    table = qn(Call._meta.db_table)
    state_col = qn(Call._meta.get_field("state").column)
    rs_col = qn(Call._meta.get_field("recording_state").column)
    states = [s for s in CallState.values if s != DOMINANT_STATE]
    recording_states = [s for s in RecordingState.values if s != DOMINANT_RECORDING]
    # Only quoted names from the models are formatted in; the values are parameters.
    parts = [f"(SELECT COUNT(*) FROM {table})"]  # noqa: S608
    parts += [f"(SELECT COUNT(*) FROM {table} WHERE {state_col} = %s)"] * len(states)  # noqa: S608
    parts += [f"(SELECT COUNT(*) FROM {table} WHERE {rs_col} = %s)"] * len(recording_states)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), [*states, *recording_states])
        row = [int(v) for v in cursor.fetchone()]
    total, rest = row[0], row[1:]
    by_state = dict(zip(states, rest[: len(states)], strict=True))
    by_recording = dict(zip(recording_states, rest[len(states) :], strict=True))
    by_state[DOMINANT_STATE] = total - sum(by_state.values())
    by_recording[DOMINANT_RECORDING] = total - sum(by_recording.values())
    return by_state, by_recording


def call_families() -> list[Family]:
    by_state, by_recording = state_counts()
    calls = Family("callvault_calls", "gauge", "Calls in the database, by call state.")
    for state, n in sorted(by_state.items()):
        calls.add(n, {"state": state})
    recordings = Family("callvault_recordings", "gauge", "Calls in the database, by recording state.")
    for state, n in sorted(by_recording.items()):
        recordings.add(n, {"recording_state": state})
    return [
        calls,
        Family("callvault_calls_active", "gauge", "Calls ringing or in progress (database).").add(
            sum(by_state[s] for s in LIVE)
        ),
        recordings,
        Family(
            "callvault_finalize_queue_depth",
            "gauge",
            "Recordings waiting to be finalized: recording state pending or processing.",
        ).add(sum(by_recording[s] for s in WAITING)),
    ]


def waiting_families(now: datetime) -> list[Family]:
    oldest = Call.objects.filter(recording_state__in=WAITING).aggregate(t=Min("ended_at"))["t"]
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return [
        Family(
            "callvault_finalize_oldest_waiting_seconds",
            "gauge",
            "Seconds since hang-up of the oldest call whose recording is still pending or processing "
            "(0 when none waits).",
        ).add(age)
    ]


@dataclass(frozen=True)
class _Row:
    pk: int
    created: datetime
    latency: float | None
    received: int
    lost: int


class FinalizedRecordings:
    """Follows the recordings table by primary key: running totals and a latency window.

    The totals are counters from the first scrape of this process on (recordings that
    existed before it are not counted, as any counter starts at 0 with its process).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.settled_id: int | None = None
        self.count = 0
        self.received = 0
        self.lost = 0
        self.window: deque[tuple[datetime, float]] = deque(maxlen=FINALIZE_SAMPLE)

    @staticmethod
    def _rows(newest_first: bool, after: int, limit: int) -> list[_Row]:
        qs = Recording.objects.filter(pk__gt=after).order_by("-pk" if newest_first else "pk")
        rows = [
            _Row(
                pk,
                created,
                max(0.0, (created - ended).total_seconds()) if ended is not None else None,
                received or 0,
                lost or 0,
            )
            for pk, created, ended, received, lost in qs.values_list(
                "pk", "created_at", "call__ended_at", "call__packets_received", "call__packets_lost"
            )[:limit]
        ]
        return sorted(rows, key=lambda r: r.pk)

    def read(self, now: datetime) -> tuple[int, int, int, list[float]]:
        """(recordings, packets received, packets lost, latencies in the window, ascending)."""
        cutoff = now - SETTLE
        with self.lock:
            if self.settled_id is None:
                rows = self._rows(True, 0, FINALIZE_SAMPLE)
                old = [r.pk for r in rows if r.created < cutoff]
                self.settled_id = max(old) if old else (rows[0].pk - 1 if rows else 0)
                for r in rows:
                    if r.pk <= self.settled_id and r.latency is not None:
                        self.window.append((r.created, r.latency))
                fresh = [r for r in rows if r.pk > self.settled_id]
            else:
                fresh = self._rows(False, self.settled_id, FETCH_LIMIT)
            settle_to = max((r.pk for r in fresh if r.created < cutoff), default=None)
            if settle_to is not None:
                for r in fresh:
                    if r.pk <= settle_to:
                        self.count += 1
                        self.received += r.received
                        self.lost += r.lost
                        if r.latency is not None:
                            self.window.append((r.created, r.latency))
                self.settled_id = settle_to
            pending = [r for r in fresh if r.pk > self.settled_id]
            start = now - FINALIZE_WINDOW
            latencies = [lat for created, lat in self.window if created >= start]
            latencies += [r.latency for r in pending if r.latency is not None and r.created >= start]
            return (
                self.count + len(pending),
                self.received + sum(r.received for r in pending),
                self.lost + sum(r.lost for r in pending),
                sorted(latencies)[-FINALIZE_SAMPLE:],
            )


FINALIZED = FinalizedRecordings()


def finalized_families(now: datetime) -> list[Family]:
    count, received, lost, latencies = FINALIZED.read(now)
    window = int(FINALIZE_WINDOW.total_seconds())
    summary = Family(
        "callvault_finalize_latency_seconds",
        "summary",
        f"Seconds from hang-up to the recording being stored, over the recordings of the last {window} s "
        f"(at most {FINALIZE_SAMPLE}); _count and _sum are over that window, not cumulative.",
    )
    for q in QUANTILES:
        summary.add(quantile(latencies, q), {"quantile": str(q)})
    summary.add(sum(latencies), suffix="_sum")
    summary.add(len(latencies), suffix="_count")
    return [
        summary,
        Family(
            "callvault_finalize_latency_max_seconds",
            "gauge",
            f"Longest hang-up-to-stored time over the last {window} s (0 when none).",
        ).add(latencies[-1] if latencies else 0.0),
        Family(
            "callvault_recordings_finalized_total",
            "counter",
            "Recordings stored (seen in the database since this web process's first scrape).",
        ).add(count),
        Family(
            "callvault_recorded_packets_received_total",
            "counter",
            "RTP packets received in the calls of those recordings.",
        ).add(received),
        Family(
            "callvault_recorded_packets_lost_total",
            "counter",
            "RTP packets lost in transit in the calls of those recordings.",
        ).add(lost),
    ]


def queue_families() -> list[Family]:
    return [
        Family(
            "callvault_job_queue_length",
            "gauge",
            "Jobs waiting in the job queue (huey), not yet taken by a worker.",
        ).add(jobqueue.queue_length(), {"backend": jobqueue.backend()})
    ]


def build_family() -> Family:
    return Family("callvault_build_info", "gauge", "callvault version of this web process.").add(
        1, {"version": version()}
    )
