"""Passive capture adapters: ``callvault import FILE.pcap`` and ``callvault sniff -i IFACE``.

The sans-I/O core (:mod:`callvault.pcap.follower`) finds calls and routes RTP; this module
is the only place that reads files or opens a capture handle.  Output goes through the
same path as SIPREC: every call gets a spool (journal + one file per channel, the format
of :mod:`callvault.spool`), the database is updated from that journal
(:func:`callvault.capture.siprec_server.db_update`, which publishes the same live events:
ringing when the INVITE is seen, so screen-pop works from a mirror port too) and the
finalize job makes the recording.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import resource
import select
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from callvault.pcap.follower import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTrack,
    CallUpdated,
    Channel,
    PassiveCapture,
)
from callvault.pcap.reader import PcapError, PcapReader
from callvault.spool.writer import CallSpool, SpoolError, SpoolFlusher, StreamSpool

log = logging.getLogger("callvault.capture")

CHUNK = 4 << 20
# Ended calls wait for the capture's drop counters before their spool is closed; at most this many.
MAX_WAITING = 256
LIVE_SETTLE = 1.0  # seconds after its end that a live call waits for the next statistics


@dataclass
class _Open:
    call: CallTrack
    spool: CallSpool
    streams: dict[int, StreamSpool] = field(default_factory=dict)


class SpoolSink:
    """Turns the core's events and channel packets into call spools (import and sniff alike)."""

    def __init__(
        self,
        core: PassiveCapture,
        spool_root: Path,
        *,
        is_known: Callable[[str], bool] = lambda call_id: False,
        on_change: Callable[[Path, bool], None] | None = None,
        fsync: bool = False,
        sync_new: bool = True,
    ) -> None:
        self.core = core
        self.spool_root = spool_root
        self.is_known = is_known
        self.on_change = on_change  # (spool dir, ended) -> None, e.g. the database update
        self._pending_changes: dict[Path, bool] = {}
        self.fsync = fsync
        self.sync_new = sync_new  # make a new call's spool durable at once (live); an import can be redone
        self.flusher = SpoolFlusher()
        self.open: dict[str, _Open] = {}
        self.waiting: dict[str, _Open] = {}  # ended, waiting for drop statistics
        self.skipped: set[str] = set()
        self.completed: list[Path] = []
        self.duplicates = 0
        self.errors: list[str] = []

    def pump(self) -> None:
        """Handle the core's events in order, then move pending packets to the spools."""
        core = self.core
        while (ev := core.next_event()) is not None:
            call_id = ev.call.call_id
            if isinstance(ev, CallStarted):
                self._start(ev)
                continue
            entry = self.open.get(call_id)
            if entry is None:
                if call_id in self.skipped:
                    for ch in ev.call.channels:
                        ch.take_records()
                continue
            if isinstance(ev, CallAnswered | CallUpdated):
                entry.spool.journal(ev.record)
                self._changed(entry.spool.path, False)
            elif isinstance(ev, CallEnded):
                for ch in ev.call.channels:
                    self._write(entry, ch)
                entry.spool.journal(ev.record)
                for stream in list(entry.streams.values()):
                    stream.close()
                del self.open[call_id]
                self.waiting[call_id] = entry
        for entry in self.open.values():
            for ch in entry.call.channels:
                if ch.pending:
                    self._write(entry, ch)
        while len(self.waiting) > MAX_WAITING:
            self.complete(next(iter(self.waiting)))
        self._report_changes()

    def _changed(self, path: Path, ended: bool) -> None:
        if self.on_change is not None:
            self._pending_changes[path] = self._pending_changes.get(path, False) or ended

    def _report_changes(self) -> None:
        """One database update per call and pump, however many events it had (ringing, answered...)."""
        changes, self._pending_changes = self._pending_changes, {}
        if self.on_change is not None:
            for path, ended in changes.items():
                self.on_change(path, ended)

    def _start(self, ev: CallStarted) -> None:
        call_id = ev.call.call_id
        key = call_id.replace("-", "")
        if self.is_known(call_id) or (self.spool_root / key).exists():
            self.skipped.add(call_id)
            self.duplicates += 1
            return
        try:
            spool = CallSpool(self.spool_root, key, fsync=self.fsync, flusher=self.flusher)
            spool.journal(ev.record)
            if self.sync_new:
                spool.sync()
        except SpoolError as exc:
            self.skipped.add(call_id)
            self.errors.append(f"call {ev.call.sip_call_id}: {exc}")
            log.error("x cannot create spool for call %s: %s", ev.call.sip_call_id, exc)
            return
        self.open[call_id] = _Open(ev.call, spool)
        log.debug("< INVITE call=%s sip=%s", call_id, ev.call.sip_call_id)
        self._changed(spool.path, False)

    def _write(self, entry: _Open, ch: Channel) -> None:
        records = ch.take_records()
        if not records:
            return
        stream = entry.streams.get(ch.index)
        if stream is None:
            stream = entry.streams[ch.index] = entry.spool.open_stream(ch.index)
        stream.extend_records(records)

    def complete(self, call_id: str) -> None:
        """Write what the capture knows about the call's loss, close its spool, hand it on."""
        entry = self.waiting.pop(call_id)
        call = entry.call
        spool = entry.spool
        spool.journal(
            {
                "type": "capture",
                "packets": [ch.packets for ch in call.channels],
                "foreign": sum(ch.foreign for ch in call.channels),
                "garbage": sum(ch.garbage for ch in call.channels),
                "early": call.early_packets,
                "capture_drops": call.capture_drops,
            }
        )
        spool.mark_complete()
        self.completed.append(spool.path)
        self._changed(spool.path, True)
        self._report_changes()

    def complete_settled(self, now: float) -> None:
        for call_id in [c for c, e in self.waiting.items() if (e.call.ended_ts or 0.0) < now - LIVE_SETTLE]:
            self.complete(call_id)

    def complete_all(self) -> None:
        for call_id in list(self.waiting):
            self.complete(call_id)

    def close(self) -> None:
        """Finish: end whatever is open (at its last packet) and close every spool."""
        self.core.finish()
        self.pump()
        self.complete_all()


def _raise_fd_limit() -> None:
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------------- import
@dataclass
class FileResult:
    path: str
    packets: int = 0
    bytes: int = 0
    error: str | None = None


@dataclass
class ImportResult:
    files: list[FileResult] = field(default_factory=list)
    calls_found: int = 0
    calls_created: int = 0
    duplicates: int = 0
    call_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    net: dict[str, int] = field(default_factory=dict)

    @property
    def packets(self) -> int:
        return sum(f.packets for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


class _Progress:
    """A one-line progress bar on a terminal (nothing when output is not a TTY)."""

    def __init__(self, stream: IO[str], total: int, name: str) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.name = name
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, done: int, calls: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        frac = min(done / self.total, 1.0)
        rate = done / max(now - self.started, 1e-6) / 1e6
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.name[:30]:30} [{bar:30}] {frac:4.0%} {rate:6.1f} MB/s 通話 {calls}")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()


def import_files(
    paths: list[Path],
    spool_root: Path,
    *,
    is_known: Callable[[str], bool],
    on_closed: Callable[[list[Path]], None],
    progress: IO[str] | None = None,
) -> ImportResult:
    """Import capture files; completed call spools are handed to ``on_closed`` in batches.

    Each file is read on its own (time restarts with every file); a file that is cut off or
    corrupt keeps everything read before the damage, and its calls end at their last packet.
    """
    _raise_fd_limit()
    result = ImportResult()
    started = time.monotonic()
    cpu0 = time.process_time()
    for path in paths:
        fr = FileResult(str(path))
        result.files.append(fr)
        core = PassiveCapture()
        sink = SpoolSink(core, spool_root, is_known=is_known, sync_new=False)
        reader = PcapReader()
        try:
            size = path.stat().st_size
            bar = _Progress(progress or sys.stderr, size, path.name) if progress is not None else None
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    reader.feed(chunk)
                    try:
                        core.process(reader.records())
                    finally:
                        fr.packets = reader.packets
                        fr.bytes = reader.bytes_read
                    if reader.stats_changed:
                        reader.stats_changed = False
                        _drops_to_core(core, reader)
                    sink.pump()
                    sink.flusher.flush_all()
                    if sink.completed:
                        on_closed(sink.completed)
                        result.calls_created += len(sink.completed)
                        sink.completed = []
                    if bar is not None:
                        bar.update(reader.bytes_read, core.stats["calls"])
                reader.close()
            if bar is not None:
                bar.done()
        except PcapError as exc:
            fr.error = str(exc)
        except OSError as exc:
            fr.error = f"cannot read {path}: {exc.strerror or exc}"
        if reader.stats_changed:
            _drops_to_core(core, reader)
        sink.close()
        result.calls_found += core.stats["calls"]
        result.duplicates += sink.duplicates
        if sink.completed:
            on_closed(sink.completed)
            result.calls_created += len(sink.completed)
            sink.completed = []
        for key, value in core.stats.items():
            result.stats[key] = result.stats.get(key, 0) + value
        net = {
            "not_ip": core.net.not_ip,
            "malformed": core.net.malformed,
            "unknown_linktype": core.net.unknown_linktype,
            "other_protocol": core.net.other_protocol,
            "fragments_reassembled": core.net.defrag.reassembled,
            "fragments_dropped": core.net.defrag.dropped,
            "tcp_retransmissions": core.tcp.retransmitted,
            "tcp_gaps": core.tcp.gaps,
        }
        for key, value in net.items():
            result.net[key] = result.net.get(key, 0) + value
    result.seconds = time.monotonic() - started
    result.cpu_seconds = time.process_time() - cpu0
    return result


class BackgroundIngest:
    """Enter completed call spools in the database from a second process.

    Following a capture is CPU-bound Python; so is the ORM work of entering calls.  A forked
    process does the latter in batches (one transaction each) while the import reads on, so
    the two use both cores.  Call :meth:`close` to wait; it returns the call ids.
    """

    def __init__(self, *, enqueue: bool) -> None:
        from concurrent.futures import Future

        from django.db import connections

        connections.close_all()  # a forked child must not share the parent's database connection
        self.enqueue = enqueue
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        self.futures: list[Future[tuple[list[str], list[str]]]] = []
        self.cpu_seconds = 0.0

    def __call__(self, spool_dirs: list[Path]) -> None:
        self.futures.append(self.pool.submit(ingest_batch, [str(d) for d in spool_dirs], self.enqueue))

    def close(self) -> tuple[list[str], list[str]]:
        ids: list[str] = []
        errors: list[str] = []
        for fut in self.futures:
            got, failed = fut.result()
            ids += got
            errors += failed
        self.pool.shutdown()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime  # the ingest process (waited for above)
        return ids, errors


def ingest_batch(spool_dirs: list[str], enqueue: bool) -> tuple[list[str], list[str]]:
    """Runs in the ingest process: one transaction per batch, one savepoint per call."""
    from django.db import close_old_connections, transaction

    from callvault.apps.recordings.finalize import ingest_spool
    from callvault.apps.recordings.tasks import enqueue_finalize
    from callvault.live import batched

    close_old_connections()
    ids: list[str] = []
    errors: list[str] = []
    with batched(), transaction.atomic():
        for d in spool_dirs:
            try:
                with transaction.atomic():
                    call_id = ingest_spool(Path(d), interrupted=False)
            except Exception as exc:  # the spool stays; the recorder's start-up recovery retries it
                errors.append(f"{Path(d).name}: {exc}")
                continue
            if call_id:
                ids.append(call_id)
    if enqueue:
        for call_id in ids:
            enqueue_finalize(call_id)
    return ids, errors


def _drops_to_core(core: PassiveCapture, reader: PcapReader) -> None:
    """pcapng statistics: drops since the previous statistics block go to the calls alive then."""
    new = reader.stats.drops - getattr(reader, "_reported_drops", 0)
    since = getattr(reader, "_reported_at", float("-inf"))
    until = reader.stats.time if reader.stats.time is not None else core.now
    core.report_drops(new, since, until)
    reader._reported_drops = reader.stats.drops  # type: ignore[attr-defined]
    reader._reported_at = until  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- sniff
PCAP_ERROR_PERM_DENIED = -8
_ACTIVATE_ERRORS = {  # pcap_activate(3PCAP)
    -1: "libpcap error",
    -4: "the capture handle was already activated",
    -5: "no such interface",
    -6: "monitor mode is not supported",
    -7: "the interface does not support packet capture",
    -9: "the interface is down",
    -11: "the requested time stamp precision is not supported",
}


class CaptureUnavailable(Exception):
    """The interface cannot be opened (no such interface, no CAP_NET_RAW, bad filter)."""


STATS_INTERVAL = 0.5
BATCH = 4096
PUMP_INTERVAL = 0.05
FLUSH_INTERVAL = 0.5


def open_live(interface: str, bpf: str | None, *, buffer_mb: int = 256) -> Any:
    """Open a libpcap capture handle; raise CaptureUnavailable with a clear reason."""
    import pcapy

    try:
        handle = pcapy.create(interface)
        handle.set_snaplen(65535)
        handle.set_promisc(1)
        handle.set_timeout(100)
        handle.set_buffer_size(buffer_mb << 20)
        status = handle.activate()
    except pcapy.PcapError as exc:
        status, text = None, str(exc)
    else:
        text = (
            _ACTIVATE_ERRORS.get(status, f"libpcap error {status}")
            if status is not None and status < 0
            else ""
        )
    if status == PCAP_ERROR_PERM_DENIED or "ermission" in text or "not permitted" in text:
        raise CaptureUnavailable(
            f"cannot capture on {interface}: permission denied. Sniffing needs the CAP_NET_RAW capability: "
            "run as root, or grant it once with `sudo setcap cap_net_raw,cap_net_admin=eip "
            "$(readlink -f .venv/bin/python)`"
        )
    if text:
        raise CaptureUnavailable(f"cannot capture on {interface}: {text}")
    if bpf:
        try:
            handle.setfilter(bpf)
        except pcapy.PcapError as exc:
            raise CaptureUnavailable(f"invalid capture filter {bpf!r}: {exc}") from None
    return handle


def run_sniffer(
    handle: Any, interface: str, bpf: str | None, *, stop: Callable[[], bool] | None = None
) -> int:
    """Capture live from an :func:`open_live` handle until SIGTERM/SIGINT.

    Calls appear in the list as they ring, talk and end, exactly like SIPREC calls.
    """
    import struct as _struct

    from django.conf import settings

    from callvault.capture.siprec_server import db_update, recover_spools

    _raise_fd_limit()
    linktype = handle.datalink()
    recover_spools(settings.SPOOL_DIR)
    # The database is updated from the journals by a second process (in order: one worker), so the
    # ORM work of hundreds of calls never holds this process's GIL while packets wait in the ring.
    from django.db import connections

    connections.close_all()
    db = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))

    def to_db(spool_dir: Path, ended: bool) -> None:
        fut = db.submit(db_update, spool_dir, ended)
        fut.add_done_callback(_log_db_failure)

    def known(call_id: str) -> bool:
        return False  # live calls are new by definition; their spool directory guards a restart

    core = PassiveCapture(rtp_timeout=settings.RTP_TIMEOUT)
    # No fdatasync per new call on the capture thread (hundreds of INVITEs a second would stall the ring):
    # the page cache survives a crash of this process; CALLVAULT_SPOOL_FSYNC=true also survives power loss.
    sink = SpoolSink(
        core, settings.SPOOL_DIR, is_known=known, on_change=to_db, fsync=settings.SPOOL_FSYNC, sync_new=False
    )
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("capturing on %s (link type %d)%s", interface, linktype, f" filter {bpf!r}" if bpf else "")
    meta = _struct.Struct("=IIII")
    last_flush = last_stats = time.monotonic()
    drops_seen = 0
    stats_ts = time.time()
    # Non-blocking reads after select(): libpcap's own timeout does not fire on an idle interface.
    handle.setnonblock(1)
    fd = handle.getfd()
    while not stopping and not (stop is not None and stop()):
        select.select([fd], [], [], 0.2)
        # libpcap hands out one ring block per call: read until it has nothing more, and only then
        # do the per-call housekeeping (at most every PUMP_INTERVAL while packets keep coming)
        last_pump = time.monotonic()
        while True:
            data, packed = handle.next_batch(BATCH)
            if not packed:
                break
            core.process(
                (sec + usec * 1e-6, linktype, data[off : off + caplen])
                for sec, usec, off, caplen in meta.iter_unpack(packed)
            )
            if time.monotonic() - last_pump >= PUMP_INTERVAL:
                sink.pump()
                last_pump = time.monotonic()
        core.tick(max(core.now, time.time() - 0.2))
        sink.pump()
        now = time.monotonic()
        if now - last_stats >= STATS_INTERVAL:
            last_stats = now
            _received, dropped, ifdropped = handle.stats()
            total = dropped + ifdropped
            wall = time.time()
            if total > drops_seen:
                core.report_drops(total - drops_seen, stats_ts, wall)
                drops_seen = total
            stats_ts = wall
            sink.complete_settled(wall)
        if now - last_flush >= FLUSH_INTERVAL:
            last_flush = now
            try:
                sink.flusher.flush_all()
            except SpoolError as exc:
                log.error("x spool flush failed (kept in memory, retried): %s", exc)
    received, dropped, ifdropped = handle.stats()
    log.info(
        "capture statistics: %d packets received, %d dropped by the kernel, %d dropped by the interface",
        received,
        dropped,
        ifdropped,
    )
    log.info("stopping: ending %d open call(s)", len(core.active))
    core.finish("shutdown")
    sink.pump()
    sink.complete_all()
    db.shutdown(wait=True)
    handle.close()
    return 0


def _log_db_failure(fut: Any) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("x database update failed (the spool keeps the call; it will be retried): %s", exc)
