"""The pre-encoder: the worker encodes each call while it goes on, so hang-up leaves seconds.

Finalizing a call in one go costs CPU in proportion to its length (decode, mix, Opus):
about 6 ms per recorded second, so 20 s for an hour-long call, and at 100 concurrent
calls the queue of finalize jobs never drains in time. Instead, one process beside the
job workers (``callvault worker`` starts it) follows every active call's spool:

* it reads the journal and the stream files as the recorder appends to them (the
  recorder itself never decodes or encodes: capture only appends);
* it feeds the records to a :class:`~callvault.media.incremental.IncrementalMix` and
  appends whatever part of the timeline no later packet can change any more (older
  than ``SAFETY_MARGIN``, with every epoch anchored) to an Ogg Opus file in
  ``DATA_DIR/tmp/pre/``;
* when the journal is closed and the database has the call ended, it runs the normal
  finalize with that state (``finalize_call(pre=...)``): only the last seconds are
  decoded and encoded; then the usual verify, store, hash, database, spool removal.

Crash safety is unchanged: the spool stays the source of truth and is removed only
after the recording is verified and stored. The pre-encoder holds an exclusive
``flock`` on each spool directory it follows; a finalize job that finds the lock taken
answers ``deferred``. If the pre-encoder (or the worker) dies, the kernel releases its
locks, its partial files are deleted at the next start, and the job or the minute
sweep finalizes the call in one shot from the spool. A call the incremental path
cannot reproduce exactly (see :class:`~callvault.media.incremental.NotIncremental`) is
let go at once and finalized in one shot.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
import zlib
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from callvault.apps.calls.journal import JournalState

log = logging.getLogger("callvault.preencode")

TICK = 0.1
"""Seconds between looks at the journals (hang-ups are noticed this fast)."""
ADVANCE_EVERY = 1.0
"""Seconds between reads of one call's stream files while it goes on."""
ADVANCE_BUDGET = 0.05
"""Seconds of encoding per round before looking for hang-ups again."""
SCAN_EVERY = 0.5
"""Seconds between scans of the spool root for new calls."""
START_AFTER = 2.0
"""Seconds after the answer before a call is followed (its first packets are on disk)."""
WAIT_FOR_DATABASE = 30.0
"""How long a closed call may wait for the recorder to mark it ended in the database."""


def lock_spool(spool_dir: Path) -> int | None:
    """Take the spool's exclusive lock without waiting: its fd, or None if someone holds it."""
    try:
        fd = os.open(spool_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return -1  # nothing to lock: the finalize reports the missing spool
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unlock_spool(fd: int) -> None:
    if fd >= 0:
        os.close(fd)  # closing the last fd of the open file releases the flock


def work_dir() -> Path:
    return Path(settings.DATA_DIR) / "tmp" / "pre"


class FollowedCall:
    """One call the pre-encoder follows: its spool tails, mix and partial Opus file."""

    def __init__(self, spool_dir: Path, lock: int) -> None:
        from callvault.spool.reader import JournalTail

        self.spool_dir = spool_dir
        self.key = spool_dir.name
        self.lock = lock
        self.journal = JournalTail(spool_dir)
        self.state = JournalState()
        self.journal_size = -1
        self.tails: dict[int, Any] = {}
        self.first_arrivals: dict[int, float] = {}
        self.backlog: dict[int, list[tuple[float, bytes]]] = {}
        self.mix: Any = None
        self.writer: Any = None
        self.fh: IO[bytes] | None = None
        self.part = work_dir() / f"{self.key}.opus.part"
        self.signature: Any = None
        self.gave_up = False
        self.next_advance = 0.0
        self.closed_at: float | None = None

    # -- following ------------------------------------------------------------------------

    def read_journal(self) -> None:
        try:
            size = os.stat(self.journal.path).st_size
        except FileNotFoundError:
            return
        if size != self.journal_size:
            self.journal_size = size
            self.journal.read()
            self.state = JournalState.fold(self.journal.events)

    def _read_streams(self) -> dict[int, list[tuple[float, bytes]]]:
        from callvault.spool.format import stream_name
        from callvault.spool.reader import StreamTail

        out: dict[int, list[tuple[float, bytes]]] = {}
        for index in sorted(self.state.streams):
            tail = self.tails.get(index)
            if tail is None:
                tail = self.tails[index] = StreamTail(self.spool_dir / stream_name(index))
            records = tail.read()
            if records and index not in self.first_arrivals:
                self.first_arrivals[index] = records[0][0]
            out[index] = records
        return out

    def advance(self, now: float) -> None:
        """Read what the recorder wrote since last time and encode what became final."""
        from callvault.media.incremental import NotIncremental

        if self.gave_up:
            return
        try:
            self._advance(now)
        except NotIncremental as exc:
            self.give_up(str(exc))
        except Exception as exc:  # never let one call stop the others; the spool is intact
            log.exception("x pre-encoding call %s failed", self.key)
            self.give_up(f"{type(exc).__name__}: {exc}")

    def _advance(self, now: float) -> None:
        from callvault.apps.recordings.finalize import stream_payload_types

        state = self.state
        if self.mix is None:
            if not state.call_id or state.answered_t is None or not state.streams:
                return
            if now < state.answered_t + START_AFTER and not state.closed:
                return
            self._start()
        signature = stream_payload_types(state)
        if signature != self.signature:
            from callvault.media.incremental import NotIncremental

            raise NotIncremental("the streams or their codecs changed during the call")
        for index, records in self._read_streams().items():
            if index in self.first_arrivals and self.first_arrivals[index] < self.mix.t0:
                from callvault.media.incremental import NotIncremental

                raise NotIncremental(f"stream {index} began before the start of the timeline")
            if records:
                self.mix.feed(index, records)
        pcm = self.mix.take(self.mix.stable())
        if len(pcm):
            self.writer.write(pcm)

    def _start(self) -> None:
        from callvault.apps.recordings.finalize import stream_payload_types, timeline_rate, timeline_start
        from callvault.media.incremental import IncrementalMix, NotIncremental, OpusWriter

        if settings.RECORDING_FORMAT != "opus":
            raise NotIncremental(f"{settings.RECORDING_FORMAT} recordings are made in one go")
        state = self.state
        self.signature = stream_payload_types(state)
        backlog = self._read_streams()
        t0 = timeline_start(state, list(self.first_arrivals.values()))
        self.mix = IncrementalMix(self.signature, t0=t0, out_rate=timeline_rate(state))
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.part, "w+b")  # kept open for the whole call
        self.writer = OpusWriter(
            self.fh,
            self.mix.rate,
            self.mix.channels,
            bitrate=settings.OPUS_BITRATE,
            complexity=settings.OPUS_COMPLEXITY,
            metadata=self._tags(),
        )
        for index, records in backlog.items():
            if records:
                self.mix.feed(index, records)

    def _tags(self) -> dict[str, str]:
        from callvault.apps.calls.models import Call
        from callvault.apps.recordings.finalize import recording_tags

        return recording_tags(Call.objects.only("id", "started_at").get(pk=self.state.call_id))

    def give_up(self, reason: str) -> None:
        log.info("= call %s will be finalized in one go: %s", self.key, reason)
        self.gave_up = True
        self.discard()

    # -- the end --------------------------------------------------------------------------

    def finish(self, state: JournalState) -> tuple[dict[str, Any], Path, Any] | None:
        """Called by finalize_call: the rest of the call, the closed file and its info (None: one shot)."""
        from callvault.media.encode import EncodedInfo
        from callvault.media.incremental import NotIncremental, file_sha256

        if self.gave_up:
            return None
        try:
            self.state = state
            self._advance(float("inf"))  # everything on disk (the journal is closed)
            if self.mix is None:
                return None
            rest = self.mix.finish(state.ended_t)
            if len(rest):
                self.writer.write(rest)
            self.writer.close()
            assert self.fh is not None
            self.fh.close()  # storage.put_file makes the stored copy durable
            self.fh = None
        except NotIncremental as exc:
            self.give_up(str(exc))
            return None
        sha, size = file_sha256(self.part)
        mix = self.mix
        info = EncodedInfo(
            path=self.part,
            format="opus",
            codec="opus",
            channels=mix.channels,
            sample_rate=mix.rate,
            bytes=size,
            sha256=sha,
            duration=mix.taken / mix.rate,
        )
        audio = {
            "rate": mix.rate,
            "samples": mix.taken,
            "channel_map": mix.channel_map,
            "tracks": mix.tracks(),
            "t0": mix.t0,
            "envelope": mix.envelope(),
        }
        return audio, self.part, info

    def discard(self) -> None:
        """Drop the partial file and the encoder (the lock is the follower's to release)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None
        self.mix = None
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()

    def release(self) -> None:
        self.discard()
        unlock_spool(self.lock)
        self.lock = -1


class PreEncoder:
    """Follows every spool under the spool root (one per host and data directory)."""

    def __init__(self, spool_root: Path, *, shard: int = 0, shards: int = 1) -> None:
        self.spool_root = Path(spool_root)
        self.shard = shard
        self.shards = shards
        self.calls: dict[str, FollowedCall] = {}
        self.let_go: set[str] = set()
        self._next_scan = 0.0

    def clean_work_dir(self) -> None:
        """Partial files of a pre-encoder that died are useless: the spools are intact."""
        folder = work_dir()
        folder.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("*.opus.part"):
            key = path.name.removesuffix(".opus.part")
            if not self._mine(key):
                continue
            lock = lock_spool(self.spool_root / key)
            if lock is None:
                continue  # a live pre-encoder (another worker on this data dir) is writing it
            try:
                path.unlink(missing_ok=True)
            finally:
                unlock_spool(lock)

    def _mine(self, key: str) -> bool:
        return self.shards <= 1 or zlib.crc32(key.encode()) % self.shards == self.shard

    def scan(self) -> None:
        from callvault.spool.format import CALL_KEY_RE

        try:
            entries = list(os.scandir(self.spool_root))
        except FileNotFoundError:
            return
        present = set()
        for entry in entries:
            name = entry.name
            present.add(name)
            if name in self.calls or name in self.let_go or not CALL_KEY_RE.fullmatch(name):
                continue
            if not self._mine(name):
                continue  # another pre-encoder process follows this one
            if not entry.is_dir(follow_symlinks=False):
                continue
            lock = lock_spool(Path(entry.path))
            if lock is None or lock < 0:
                continue  # a finalize job has it, or it just went away
            self.calls[name] = FollowedCall(Path(entry.path), lock)
        self.let_go &= present

    def tick(self, now: float) -> bool:
        """One round: new calls, hang-ups (first: someone waits for them), then encoding.

        Encoding stops after ``ADVANCE_BUDGET`` seconds so that a hang-up is never stuck
        behind the other calls' work; returns True when encoding work is left for now.
        """
        if now >= self._next_scan:
            self._next_scan = now + SCAN_EVERY
            self.scan()
        self._hang_ups(now)
        due = sorted(
            (c for c in self.calls.values() if not c.state.closed and c.next_advance <= now),
            key=lambda c: c.next_advance,
        )
        deadline = time.monotonic() + ADVANCE_BUDGET
        for index, call in enumerate(due):
            call.next_advance = now + ADVANCE_EVERY
            call.advance(now)
            if call.gave_up:
                self._let_go(call)
            if time.monotonic() > deadline:
                return index + 1 < len(due)
        return False

    def _hang_ups(self, now: float) -> None:
        closing: list[FollowedCall] = []
        for call in list(self.calls.values()):
            try:
                call.read_journal()
            except Exception:
                log.exception("x cannot read the journal of %s; letting it go", call.key)
                self._let_go(call)
                continue
            if call.state.closed:
                closing.append(call)
        for call in closing:
            self._complete(call, now)

    def _let_go(self, call: FollowedCall) -> None:
        call.release()
        self.calls.pop(call.key, None)
        self.let_go.add(call.key)

    def _complete(self, call: FollowedCall, now: float) -> None:
        from callvault.apps.calls.models import Call, RecordingState
        from callvault.apps.recordings.finalize import finalize_call

        row = (
            Call.objects.filter(spool_key=call.key).values_list("id", "recording_state").first()
            if call.state.call_id
            else None
        )
        if row is None or row[1] != RecordingState.PENDING:
            call.closed_at = call.closed_at or now
            if row is not None and row[1] not in (RecordingState.RECORDING, RecordingState.PENDING):
                self._let_go(call)  # finalized or being finalized elsewhere
            elif now - call.closed_at > WAIT_FOR_DATABASE:
                log.warning("x call %s: the database does not show it ended; letting it go", call.key)
                self._let_go(call)
            return
        try:
            finalize_call(str(row[0]), pre=call if not call.gave_up else None)
        except Exception:
            log.exception("x finalize of pre-encoded call %s failed (it stays queued)", call.key)
        finally:
            call.release()
            self.calls.pop(call.key, None)

    def close(self) -> None:
        for call in list(self.calls.values()):
            call.release()
        self.calls.clear()


def run_preencoder(stop: Any = None, *, shard: int = 0, shards: int = 1) -> None:
    """The pre-encoder's loop (child processes of ``callvault worker``, one per shard of the calls)."""
    from django.db import close_old_connections

    encoder = PreEncoder(settings.SPOOL_DIR, shard=shard, shards=shards)
    encoder.clean_work_dir()
    log.info("pre-encoder %d/%d started (spool %s)", shard + 1, shards, settings.SPOOL_DIR)
    running = [True]

    def _stop(*_args: Any) -> None:
        running[0] = False

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while running[0] and (stop is None or not stop()):
            started = time.monotonic()
            close_old_connections()
            busy = False
            try:
                busy = encoder.tick(time.time())
            except Exception:
                log.exception("x pre-encoder tick failed")
            if not busy:
                time.sleep(max(0.0, TICK - (time.monotonic() - started)))
    finally:
        encoder.close()
