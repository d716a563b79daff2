"""Recorder figures for Prometheus: counted in the recorder, published without touching capture.

The recorder keeps plain integer counters (``Recorder.stats``, the SIP layer's
``stats``, each RTP receiver's ``received``/``foreign``). :class:`RecorderMetrics`
reads them from a 2 s timer on the event loop and

- writes a small JSON snapshot to ``<data dir>/run/recorder-<host>-<pid>.json``
  (temporary file + rename, so a reader never sees half a file); the web
  process's ``/metrics`` and ``/readyz`` read every snapshot of that directory
  (the embedded default and any recorder sharing the web's data directory);
- and, optionally, answers ``GET /metrics`` itself on a port of its own
  (:func:`serve_metrics`) for recorders on hosts of their own (scale-out).

Nothing here runs per packet. Counts of a session are folded into the totals
when it ends (:meth:`RecorderMetrics.session_ended`), so totals never go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import socket
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callvault.apps.ops.exposition import CONTENT_TYPE, Family, render

log = logging.getLogger("callvault.recorder")

SNAPSHOT_INTERVAL = 2.0
# A snapshot older than this means its recorder is stopped or stuck.
STALE_AFTER = 10.0
SCHEMA = 1
FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SNAPSHOT_GLOB = "recorder-*.json"
SIP_EVENTS = ("received", "sent", "retransmissions", "dropped", "bad_requests", "absorbed", "keepalives")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", text)[:64] or "host"


class RecorderMetrics:
    """The recorder's counters as a snapshot; attach one to a ``Recorder`` as ``rec.metrics``."""

    def __init__(self, recorder: Any, run_dir: Path | None, *, host: str | None = None) -> None:
        self.rec = recorder
        self.host = _safe(host or socket.gethostname())
        self.pid = os.getpid()
        self.name = f"{self.host}-{self.pid}"
        self.run_dir = run_dir
        self.path = run_dir / f"recorder-{self.name}.json" if run_dir is not None else None
        self.started_at = time.time()
        self.sessions_ended = 0
        self.ended_received = 0
        self.ended_foreign = 0
        # receivers of ended sessions that may still be receiving (the recorder's grace period)
        self._closing: list[Any] = []
        self.flush_counts = [0] * (len(FLUSH_BUCKETS) + 1)
        self.flush_sum = 0.0
        self.flush_last = 0.0
        self._write_failing = False
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            remove_dead_snapshots(run_dir, self.host)

    # ------------------------------------------------------------------ hooks for the recorder
    def timed(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Wrap the spool flush so that its duration is observed (also when it raises)."""

        @functools.wraps(fn)
        def run() -> Any:
            start = time.perf_counter()
            try:
                return fn()
            finally:
                self.observe_flush(time.perf_counter() - start)

        return run

    def observe_flush(self, seconds: float) -> None:
        self.flush_counts[bisect_left(FLUSH_BUCKETS, seconds)] += 1
        self.flush_sum += seconds
        self.flush_last = seconds

    def session_ended(self, session: Any) -> None:
        """Call when a session ends (once is enough; a second call for it does nothing).

        Its receivers stay counted as they are until they are closed (packets still in flight
        when the call ends are received for a moment), then their final counts are folded into
        the totals, so the totals never go down and no packet is missed.
        """
        if getattr(session, "_metrics_counted", False):
            return
        session._metrics_counted = True
        self.sessions_ended += 1
        self._closing.extend(st.receiver for st in session.streams.values())

    def _fold_closed(self) -> None:
        still_open = []
        for receiver in self._closing:
            if receiver.closed:
                self.ended_received += receiver.received
                self.ended_foreign += receiver.foreign
            else:
                still_open.append(receiver)
        self._closing = still_open

    def tick(self) -> None:
        """The periodic timer: write the snapshot file (if this recorder has a run directory)."""
        if self.path is None:
            return
        try:
            write_snapshot(self.path, self.snapshot())
        except OSError as exc:
            if not self._write_failing:
                log.error("x cannot write metrics snapshot %s: %s", self.path, exc)
            self._write_failing = True
            return
        if self._write_failing:
            log.info("metrics snapshot %s written again", self.path)
            self._write_failing = False

    def close(self) -> None:
        """On a clean stop: remove the snapshot so that nobody mistakes it for a stuck recorder."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading the counters
    def snapshot(self) -> dict[str, Any]:
        rec = self.rec
        self._fold_closed()
        live = {
            id(st.receiver): st.receiver for s in list(rec.sessions.values()) for st in s.streams.values()
        }
        for receiver in self._closing:
            live.setdefault(id(receiver), receiver)
        received = self.ended_received + sum(r.received for r in live.values())
        foreign = self.ended_foreign + sum(r.foreign for r in live.values())
        sip = getattr(getattr(rec, "layer", None), "stats", {}) or {}
        stats = getattr(rec, "stats", {}) or {}
        ports = getattr(rec, "ports", None)
        return {
            "schema": SCHEMA,
            "recorder": self.name,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "written_at": time.time(),
            "sessions_active": len(rec.sessions),
            "sessions_ended": self.sessions_ended,
            "calls_answered": int(stats.get("calls", 0)),
            "calls_rejected": int(stats.get("rejected", 0)),
            "rtp_packets_received": received,
            "rtp_foreign_packets_dropped": foreign,
            "rtp_ports_in_use": ports.in_use if ports is not None else 0,
            "rtp_ports_capacity": ports.capacity if ports is not None else 0,
            "sip": {k: int(v) for k, v in sip.items()},
            "spool_flush_seconds": {
                "buckets": list(FLUSH_BUCKETS),
                "counts": list(self.flush_counts),
                "sum": self.flush_sum,
                "last": self.flush_last,
            },
        }


# ---------------------------------------------------------------------- snapshot files
def write_snapshot(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_snapshots(run_dir: Path, host: str) -> int:
    """Remove snapshots that recorders of this host left when they died (their pid is gone)."""
    removed = 0
    pattern = re.compile(rf"recorder-{re.escape(host)}-(\d+)\.json")
    for path in run_dir.glob(SNAPSHOT_GLOB):
        m = pattern.fullmatch(path.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@dataclass
class Snapshot:
    path: Path
    data: dict[str, Any] | None  # None: unreadable (the error says why)
    age: float
    error: str = ""

    @property
    def name(self) -> str:
        if self.data and isinstance(self.data.get("recorder"), str):
            return str(self.data["recorder"])
        return self.path.stem.removeprefix("recorder-")

    @property
    def fresh(self) -> bool:
        return self.data is not None and self.age < STALE_AFTER


def read_snapshots(run_dir: Path, now: float | None = None) -> list[Snapshot]:
    now = time.time() if now is None else now
    out: list[Snapshot] = []
    try:
        paths = sorted(run_dir.glob(SNAPSHOT_GLOB))
    except OSError:
        return out
    for path in paths:
        try:
            raw = path.read_text(encoding="utf-8")
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue  # removed between the listing and the read: a recorder stopped
        except OSError as exc:
            out.append(Snapshot(path, None, 0.0, f"unreadable: {exc.strerror or exc}"))
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("schema") != SCHEMA:
                raise ValueError("unknown snapshot schema")
            written = float(data.get("written_at", mtime))
        except (ValueError, TypeError) as exc:
            out.append(Snapshot(path, None, max(0.0, now - mtime), f"invalid: {exc}"))
            continue
        out.append(Snapshot(path, data, max(0.0, now - written)))
    return out


# ---------------------------------------------------------------------- Prometheus families
def snapshot_families(snapshots: list[Snapshot]) -> list[Family]:
    """The recorder metric families, one series per recorder (``recorder="<host>-<pid>"``)."""
    up = Family(
        "callvault_recorder_up",
        "gauge",
        f"1 if the recorder's snapshot is younger than {STALE_AFTER:.0f} s, else 0.",
    )
    age = Family("callvault_recorder_snapshot_age_seconds", "gauge", "Age of the recorder's last snapshot.")
    started = Family("callvault_recorder_start_time_seconds", "gauge", "Unix time the recorder started.")
    active = Family("callvault_recorder_sessions_active", "gauge", "SIPREC sessions open in the recorder.")
    answered = Family("callvault_recorder_calls_answered_total", "counter", "SIPREC calls answered.")
    rejected = Family(
        "callvault_recorder_calls_rejected_total", "counter", "SIPREC INVITEs refused (bad offer)."
    )
    rtp = Family(
        "callvault_recorder_rtp_packets_received_total", "counter", "RTP packets received and spooled."
    )
    foreign = Family(
        "callvault_recorder_rtp_foreign_packets_dropped_total",
        "counter",
        "RTP packets dropped because they came from another source than the latched peer.",
    )
    sip = Family(
        "callvault_recorder_sip_messages_total",
        "counter",
        "SIP messages by event: received, sent, retransmissions, dropped (unanswerable input), "
        "bad_requests (answered 400), absorbed (retransmissions swallowed), keepalives.",
    )
    ports_used = Family("callvault_recorder_rtp_ports_in_use", "gauge", "RTP ports bound for calls.")
    ports_cap = Family("callvault_recorder_rtp_ports_capacity", "gauge", "RTP ports the recorder may use.")
    flush = Family(
        "callvault_recorder_spool_flush_seconds",
        "histogram",
        "Time of one spool flush round (every stream with pending data written).",
    )
    flush_last = Family(
        "callvault_recorder_spool_flush_last_seconds", "gauge", "Time of the latest spool flush round."
    )
    for snap in snapshots:
        labels = {"recorder": snap.name}
        up.add(1 if snap.fresh else 0, labels)
        age.add(round(snap.age, 3), labels)
        d = snap.data
        if d is None:
            continue
        started.add(float(d.get("started_at", 0.0)), labels)
        active.add(int(d.get("sessions_active", 0)), labels)
        answered.add(int(d.get("calls_answered", 0)), labels)
        rejected.add(int(d.get("calls_rejected", 0)), labels)
        rtp.add(int(d.get("rtp_packets_received", 0)), labels)
        foreign.add(int(d.get("rtp_foreign_packets_dropped", 0)), labels)
        sip_stats = d.get("sip") or {}
        for event in SIP_EVENTS:
            if event in sip_stats:
                sip.add(int(sip_stats[event]), {**labels, "event": event})
        ports_used.add(int(d.get("rtp_ports_in_use", 0)), labels)
        ports_cap.add(int(d.get("rtp_ports_capacity", 0)), labels)
        fl = d.get("spool_flush_seconds") or {}
        buckets, counts = fl.get("buckets"), fl.get("counts")
        if isinstance(buckets, list) and isinstance(counts, list) and len(counts) == len(buckets) + 1:
            flush.add_histogram(buckets, counts, float(fl.get("sum", 0.0)), labels)
            flush_last.add(float(fl.get("last", 0.0)), labels)
    return [
        up,
        age,
        started,
        active,
        answered,
        rejected,
        rtp,
        foreign,
        sip,
        ports_used,
        ports_cap,
        flush,
        flush_last,
    ]


# ---------------------------------------------------------------------- the recorder's own /metrics
def _loopback(host: str) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


async def serve_metrics(
    metrics: RecorderMetrics, host: str, port: int, *, token: str = "", trust_loopback: bool = True
) -> asyncio.AbstractServer:
    """Answer ``GET /metrics`` on (host, port) from the recorder's event loop.

    For recorders on hosts of their own. Access as for the web's /metrics: loopback
    clients (unless ``trust_loopback`` is false), or ``Authorization: Bearer <token>``;
    others get 404 (no token set) or 403.
    One request per connection, headers limited to 8 KiB and 5 s.
    """
    from callvault.apps.ops.access import bearer_matches

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body, ctype, method = 400, b"Bad Request\n", "text/plain", ""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = [*lines[0].split(" "), "", "", ""][:3]
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            peer = (writer.get_extra_info("peername") or ("", 0))[0]
            allowed = (trust_loopback and _loopback(str(peer))) or bearer_matches(
                headers.get("authorization", ""), token
            )
            path = target.split("?", 1)[0]
            if not version.startswith("HTTP/1.") or not target.startswith("/"):
                status = 400
            elif not allowed:
                status, body = (403, b"Forbidden\n") if token else (404, b"Not Found\n")
            elif path != "/metrics":
                status, body = 404, b"Not Found\n"
            elif method not in ("GET", "HEAD"):
                status, body = 405, b"Method Not Allowed\n"
            else:
                snap = Snapshot(Path(metrics.name), metrics.snapshot(), 0.0)
                status, ctype = 200, CONTENT_TYPE
                body = render(snapshot_families([snap])).encode()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, UnicodeError):
            pass
        reason = {
            200: "OK",
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
        }
        writer.write(
            f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + (b"" if method == "HEAD" else body)
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port, limit=8192)
