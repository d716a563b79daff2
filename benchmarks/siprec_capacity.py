"""SIPREC recorder capacity: concurrent two-stream G.711 calls on one core, BYE -> recording latency,
and size/quality of the stereo Opus recordings.

What runs where (2-core machine):

* core 0: the recorder (``callvault recorder``, pinned with ``taskset -c 0``), nothing else of ours;
* core 1: the load generator (a separate process: one SIP socket for all dialogs, one UDP
  socket per RTP stream, one media timer, see ``callvault.tools.siprec_client.SiprecLoad``),
  this script (sampling /proc, polling the database) and the finalize worker
  (``callvault worker``, ``taskset -c 1``).  In the capacity ladder the worker starts only after
  the load phase (packets are counted from the spool files first), so the generator has core 1
  to itself while calls are up; in the latency phase it runs throughout, as in production.

Phases (each on fresh processes and a fresh data directory):

1. capacity ladder: for each N, N calls are set up at ``--rate`` per second, all N are held for
   ``--duration`` seconds of media, then hung up at the same rate (so every call lasts the
   same).  In the steady-state window (all N up, before the first BYE) the script measures the
   recorder's CPU (/proc/PID/stat, and its main thread alone), RSS (VmRSS/VmHWM), socket
   receive queues and drops (/proc/net/udp), system UDP errors (/proc/net/snmp), how far the
   spool files trail the packets sent, and the generator's own timer lag.  After the last BYE
   the packets in each call's spool files are compared with the packets sent; then the worker
   finalizes every call (``--ladder-finalize all``) and ``callvault calls --json`` gives the
   recorder's loss counts and whether each recording is ready.  The ladder stops at the first N
   that loses packets or falls behind (unless ``--keep-going``).
2. BYE -> finalized recording at ``--latency-calls`` concurrent calls: 2 x N calls of
   ``--latency-call-seconds`` start staggered so that N are always up and BYEs arrive at a steady
   N / call-seconds per second; the database is polled every 20 ms (read-only sqlite).  The ladder
   steps also report the latency of their burst of BYEs.
3. Opus size and quality: two-party speech calls (espeak-ng, English and Japanese, different
   sentences and voices per party) through the recorder; the recording is decoded and PESQ-NB is
   computed per channel against the G.711 audio that was sent.

Run: ``.venv/bin/python benchmarks/siprec_capacity.py`` (about 10 minutes), ``--quick`` for a smoke
run (< 1 minute), ``--calls 1000`` for one capacity step, ``--json-out FILE`` for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from callvault.tools.siprec_client import sip_ping

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The servers run from a copy of the callvault package taken when the benchmark starts, so that
# edits in the working tree during a long run cannot mix two versions of the code.
CODE = [REPO]
NICE = [0]  # --nice: priority of the measured processes (recorder, worker, generator)

TARGET_CALLS = 1000
TARGET_LATENCY_P95 = 1.0
TARGET_KB_PER_MIN = 120.0
TARGET_PESQ = 3.6
CLK_TCK = os.sysconf("SC_CLK_TCK")
RTP_BYTES = 172  # 12-byte header + 160 bytes of G.711 (20 ms)
SPOOL_RECORD = 10 + RTP_BYTES  # <dH record header + packet
SPOOL_FILE_HEADER = 16
RECORDER_CPU = 0
OTHER_CPU = 1
# "kept up": the recorder's receive queues hold < 100 ms of traffic and the spool files trail the
# packets sent by < 1 s (the flush timer runs every 0.5 s).
MAX_RX_BACKLOG_MS = 100.0
MAX_SPOOL_BACKLOG_S = 1.0
# the generator kept up: its timer is never a whole packet interval late
MAX_GEN_LAG_MS = 20.0


# ------------------------------------------------------------------------------------- /proc
def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its live descendants (the worker's job processes and
    pre-encoders are its children), plus what its waited-for children used."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(rest[1])
        stats[int(entry)] = rest
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        rest = stats.get(current)
        if rest is None:
            continue
        total += (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / CLK_TCK
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def main_thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread (the recorder's event loop: capture and SIP)."""
    with open(f"/proc/{pid}/task/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def cpu_busy(cpu: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat."""
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                return sum(v[:8]) - idle, sum(v[:8])
    return 0, 0


def udp_snmp() -> dict[str, int]:
    with open("/proc/net/snmp") as fh:
        rows = [line.split() for line in fh if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(x) for x in rows[1][1:]), strict=False))


@dataclass
class UdpSample:
    sockets: int
    rx_queue: int  # bytes (skb truesize) waiting in the recorder's RTP sockets
    drops: int
    backlogged: int  # sockets with a non-empty queue


def udp_sockets(low: int, high: int) -> UdpSample:
    """The recorder's RTP sockets (127.0.0.1, ports low..high) in /proc/net/udp."""
    out = UdpSample(0, 0, 0, 0)
    with open("/proc/net/udp") as fh:
        next(fh)
        for line in fh:
            f = line.split()
            ip, _, port = f[1].partition(":")
            if ip != "0100007F" or not low <= int(port, 16) <= high:
                continue
            rx = int(f[4].partition(":")[2], 16)
            out.sockets += 1
            out.rx_queue += rx
            out.drops += int(f[-1])
            out.backlogged += rx > 0
    return out


def skb_truesize() -> int:
    """Bytes a queued 172-byte loopback datagram counts against a socket's receive queue."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        for _ in range(10):
            tx.sendto(bytes(RTP_BYTES), ("127.0.0.1", port))
        time.sleep(0.05)
        with open("/proc/net/udp") as fh:
            for line in fh:
                f = line.split()
                if f[1] == f"0100007F:{port:04X}":
                    return max(1, int(f[4].partition(":")[2], 16) // 10)
    return 768


def spool_usage(spool: Path) -> tuple[int, int]:
    """(stream files, bytes) under the spool directory."""
    files = size = 0
    with contextlib.suppress(FileNotFoundError):
        for call in os.scandir(spool):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for f in os.scandir(call.path):
                    if f.name.endswith(".rtp"):
                        with contextlib.suppress(FileNotFoundError):
                            size += f.stat().st_size
                            files += 1
    return files, size


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


# ------------------------------------------------------------------------------------- servers
def free_port() -> int:
    for _ in range(200):
        port = random.randint(20000, 30000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def cli_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CALLVAULT_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(CODE[0]),
    }


def snapshot_code(root: Path, source: str) -> Path:
    """Copy the callvault package; servers and the generator run this copy (see CODE).

    ``source`` "head": the committed package (``git archive HEAD``) plus the working tree's
    load generator (callvault/tools/siprec_client.py); "worktree": the package as it is on disk.
    """
    src = root / "src"
    if source == "head":
        src.mkdir()
        archive = subprocess.run(
            ["git", "archive", "HEAD", "callvault"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        shutil.copy2(REPO / "callvault/tools/siprec_client.py", src / "callvault/tools/siprec_client.py")
    else:
        shutil.copytree(REPO / "callvault", src / "callvault", ignore=shutil.ignore_patterns("__pycache__"))
    CODE[0] = src
    sys.path.insert(0, str(src))
    return src


def code_version() -> str:
    """The commit the benchmark runs, and whether the callvault package had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "callvault"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    n = len(dirty.splitlines())
    return f"{head}" + (f" + {n} uncommitted file(s) under callvault/" if n else "")


def _nice() -> list[str]:
    return ["nice", "-n", str(NICE[0])] if NICE[0] else []


class Servers:
    """A recorder (core 0) and a worker (core 1) on their own data directory."""

    def __init__(self, root: Path, template: Path, label: str, calls: int) -> None:
        self.data = root / label
        self.data.mkdir(parents=True)
        for name in ("callvault.sqlite3", "secret_key"):
            shutil.copy2(template / name, self.data / name)
        self.sip_port = free_port()
        low = 10000 + 2 * random.randrange(0, 500)  # below the ephemeral range used by the generator
        self.rtp = (low, low + 4 * calls + 200)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def db(self) -> Path:
        return self.data / "callvault.sqlite3"

    @property
    def spool(self) -> Path:
        return self.data / "spool"

    def start(self, *, worker: bool = True) -> None:
        me = [*_nice(), sys.executable, "-m", "callvault.cli"]
        cmds = {
            "recorder": [
                "taskset",
                "-c",
                str(RECORDER_CPU),
                *me,
                "recorder",
                "--sip-host",
                "127.0.0.1",
                "--sip-port",
                str(self.sip_port),
                "--rtp-ports",
                f"{self.rtp[0]}-{self.rtp[1]}",
            ],
            "worker": ["taskset", "-c", str(OTHER_CPU), *me, "worker"],
        }
        for name, cmd in cmds.items():
            if name == "worker" and not worker:
                continue
            log = (self.data / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                cmd, env=cli_env(self.data), stdout=log, stderr=subprocess.STDOUT, cwd=CODE[0]
            )
        deadline = time.monotonic() + 30
        while not sip_ping(self.sip_port):
            if time.monotonic() > deadline or self.procs["recorder"].poll() is not None:
                raise RuntimeError(f"recorder did not answer OPTIONS:\n{self.log('recorder')[-3000:]}")
            time.sleep(0.1)

    def start_worker(self) -> None:
        log = (self.data / "worker.log").open("ab")
        self.procs["worker"] = subprocess.Popen(
            ["taskset", "-c", str(OTHER_CPU), *_nice(), sys.executable, "-m", "callvault.cli", "worker"],
            env=cli_env(self.data), stdout=log, stderr=subprocess.STDOUT, cwd=CODE[0],
        )  # fmt: skip

    def spool_received(self) -> dict[str, int]:
        """Packets in the spool files of each call (by SIP Call-ID), before finalize removes them."""
        from callvault.spool.reader import read_journal

        out: dict[str, int] = {}
        for d in self.spool.iterdir():
            invite = next((e for e in read_journal(d) if e.get("type") == "invite"), {})
            total = 0
            for f in d.glob("stream-*.rtp"):
                total += (f.stat().st_size - SPOOL_FILE_HEADER) // SPOOL_RECORD
            out[invite.get("sip_call_id", d.name)] = total
        return out

    def wait_spools_closed(self, timeout: float = 15.0) -> int:
        """Wait until every spool's journal says closed (the recorder may keep a call's sockets open
        for a grace period after BYE); return how many are still open."""
        deadline = time.monotonic() + timeout
        while True:
            still_open = 0
            for d in self.spool.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if b'"type":"closed"' not in (d / "journal.jsonl").read_bytes():
                        still_open += 1
            if not still_open or time.monotonic() > deadline:
                return still_open
            time.sleep(0.1)

    def spool_gaps(self, sip_call_id: str) -> list[tuple[int, int]]:
        """(records, sequence gaps) per stream of one call, from its spool files (fixed-size records)."""
        from callvault.spool.reader import read_journal

        for d in self.spool.iterdir():
            invite = next((e for e in read_journal(d) if e.get("type") == "invite"), {})
            if invite.get("sip_call_id") != sip_call_id:
                continue
            out = []
            for f in sorted(d.glob("stream-*.rtp")):
                raw = np.frombuffer(f.read_bytes()[SPOOL_FILE_HEADER:], dtype=np.uint8)
                recs = raw[: len(raw) // SPOOL_RECORD * SPOOL_RECORD].reshape(-1, SPOOL_RECORD)
                seq = recs[:, 12].astype(np.int64) << 8 | recs[:, 13]  # RTP seq: bytes 2-3 of the packet
                gaps = int(np.sum((np.diff(seq) & 0xFFFF) - 1)) if len(seq) > 1 else 0
                out.append((len(recs), gaps))
            return out
        return []

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def log(self, name: str) -> str:
        path = self.data / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def calls_json(self, limit: int) -> list[dict[str, Any]]:
        out = subprocess.run(
            [
                "taskset",
                "-c",
                str(OTHER_CPU),
                sys.executable,
                "-m",
                "callvault.cli",
                "calls",
                "--json",
                "--limit",
                str(limit),
            ],
            env=cli_env(self.data),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            cwd=CODE[0],
        )
        if out.returncode != 0:
            raise RuntimeError(f"callvault calls --json failed: {out.stderr.strip().splitlines()[-1:]}")
        return json.loads(out.stdout)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


class ReadyPoller:
    """Polls the database (read-only) for recordings that became ready, incrementally."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0, check_same_thread=False)
        self.last_id = 0
        self.ready: dict[str, dict[str, float]] = {}  # sip_call_id -> times (epoch seconds)
        self.failed = 0

    def poll(self) -> None:
        now = time.time()
        try:
            rows = self.conn.execute(
                "SELECT r.id, c.sip_call_id, r.verified_at, c.updated_at FROM recordings_recording r "
                "JOIN calls_call c ON c.id = r.call_id WHERE r.id > ? ORDER BY r.id",
                (self.last_id,),
            ).fetchall()
        except sqlite3.OperationalError:  # busy or not there yet
            return
        for rid, sip_call_id, verified, claimed in rows:
            self.last_id = max(self.last_id, rid)
            self.ready[sip_call_id] = {"seen": now, "verified": _epoch(verified), "claimed": _epoch(claimed)}

    def count_failed(self) -> int:
        with contextlib.suppress(sqlite3.OperationalError):
            self.failed = self.conn.execute(
                "SELECT count(*) FROM calls_call WHERE recording_state = 'failed'"
            ).fetchone()[0]
        return self.failed

    def close(self) -> None:
        self.conn.close()


def _epoch(value: str | None) -> float:
    if not value:
        return float("nan")
    dt = datetime.fromisoformat(value)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


# ------------------------------------------------------------------------------------- generator
def _generator(
    q: Any,
    server: tuple[str, int],
    plan: list[tuple[float, float]],
    audio: dict[str, Any],
    slots: int,
    cpu: int,
    nice: int,
) -> None:
    """The load generator process: runs a plan of calls and reports progress and results on ``q``."""
    os.sched_setaffinity(0, {cpu})
    if nice:
        os.nice(nice)
    import uvloop

    from callvault.tools.siprec_client import Leg, LoadCall, SiprecLoad

    calls = [LoadCall(i, start, media) for i, (start, media) in enumerate(plan)]
    load = SiprecLoad(server, audio["caller"], audio["callee"], slots=slots)

    def progress(ld: SiprecLoad) -> None:
        answered = sum(1 for c in calls if c.answered_at is not None)
        q.put(("progress", time.time(), ld.packets_sent, answered))

    report = uvloop.run(
        load.run(
            calls,
            caller=Leg("0312345678", "発信者", audio["caller"][:0]),
            callee=Leg("201", "受付", audio["callee"][:0]),
            progress=progress,
        )
    )
    q.put(("done", time.time(), asdict(report), os.getpid()))


@dataclass
class RunResult:
    """Everything measured in one run of a plan against one recorder."""

    label: str
    calls: int
    concurrent: int
    window_s: float = 0.0
    answered: int = 0
    ready: int = 0
    failed: int = 0
    sip_errors: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    packets_missing: int = 0  # sent - received
    recorder_lost: int = 0
    recorder_late: int = 0
    recorder_dropped: int = 0
    calls_with_loss: int = 0
    loss_examples: list[dict[str, Any]] = field(default_factory=list)
    kernel_drops: int = 0  # per-socket drops on the recorder's RTP sockets
    snmp_rcvbuf_errors: int = 0  # system-wide during the run (other processes count too)
    snmp_in_errors: int = 0
    rec_cpu_pct: float | None = None  # % of one core in the steady-state window
    rec_cpu_ms_per_call_s: float | None = None
    rec_loop_cpu_pct: float | None = None  # the main thread only (event loop); the rest is DB/IO threads
    rec_cpu_us_per_packet: float | None = None
    core0_busy_pct: float | None = None  # everything on core 0 incl. other processes and softirq
    rss_mb: float | None = None
    hwm_mb: float | None = None
    rss_idle_mb: float | None = None
    rx_backlog_ms_max: float | None = None
    rx_backlogged_sockets_max: int = 0
    spool_backlog_s_max: float | None = None
    spool_backlog_s_mean: float | None = None
    gen_cpu_pct: float | None = None
    gen_lag_p50_ms: float | None = None
    gen_lag_p99_ms: float | None = None
    gen_lag_max_ms: float | None = None
    gen_send_errors: int = 0
    worker_cpu_window_pct: float | None = None
    setup_p50_ms: float | None = None
    setup_p95_ms: float | None = None
    latency: list[float] = field(default_factory=list)  # BYE sent -> seen ready, s
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_max: float | None = None
    queue_wait_p50: float | None = None  # BYE -> finalize job claimed the call
    db_received: int = 0
    finalize_cpu_s: float = 0.0  # worker CPU while finalizing this run's calls
    finalize_audio_s: float = 0.0  # seconds of recordings it produced
    finalize_ms_per_audio_s: float | None = None
    finalize_x_realtime: float | None = None  # audio seconds finalized per wall second (whole drain)
    finalize_p50: float | None = None  # claimed -> ready
    finalize_p95: float | None = None
    kb_per_min: float | None = None
    drain_s: float | None = None  # first BYE -> last recording ready
    lossless: bool = False
    kept_up: bool = False
    gen_ok: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lossless and self.kept_up


def run_plan(
    label: str,
    plan: list[tuple[float, float]],
    *,
    root: Path,
    template: Path,
    audio: dict[str, Any],
    slots: int,
    concurrent: int,
    truesize: int,
    worker_during_load: bool,
    finalize: bool = True,
    latency_calls: range | None = None,
    profile: float = 0.0,
    profile_out: Path | None = None,
) -> RunResult:
    """Start fresh servers, run ``plan`` from the generator process, measure, stop."""
    n = len(plan)
    res = RunResult(label=label, calls=n, concurrent=concurrent)
    srv = Servers(root, template, label, n)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    gen: Any = None
    poller: ReadyPoller | None = None
    profiler: subprocess.Popen[bytes] | None = None
    try:
        srv.start(worker=worker_during_load)
        rec = srv.pid("recorder")
        time.sleep(1.0)
        res.rss_idle_mb = proc_mem(rec)[0] / 1024
        snmp0 = udp_snmp()
        poller = ReadyPoller(srv.db)
        gen = ctx.Process(
            target=_generator, args=(q, ("127.0.0.1", srv.sip_port), plan, audio, slots, OTHER_CPU, NICE[0])
        )
        gen.start()
        samples: list[dict[str, Any]] = []  # /proc samples every 0.25 s
        progress: list[tuple[float, int, int]] = []  # (time, packets sent, calls answered)
        udp_max = UdpSample(0, 0, 0, 0)
        udp_series: list[tuple[float, UdpSample]] = []
        spool_series: list[tuple[float, int, int]] = []
        report: dict[str, Any] | None = None
        next_sample = next_udp = time.monotonic()
        all_up_at: float | None = None
        while report is None:
            try:
                while True:
                    msg = q.get(timeout=0.02)
                    if msg[0] == "progress":
                        progress.append((msg[1], msg[2], msg[3]))
                        if all_up_at is None and msg[3] >= concurrent:
                            all_up_at = msg[1]
                    elif msg[0] == "done":
                        report = msg[2]
                        break
            except queue.Empty:
                pass
            if gen.exitcode not in (None, 0) and report is None:
                raise RuntimeError(f"load generator exited with {gen.exitcode}")
            poller.poll()
            now = time.monotonic()
            if now >= next_sample:
                next_sample += 0.25
                s: dict[str, Any] = {
                    "t": time.time(),
                    "rec_cpu": proc_cpu(rec),
                    "rec_main": main_thread_cpu(rec),
                    "core0": cpu_busy(RECORDER_CPU),
                }
                s["rss"], s["hwm"] = proc_mem(rec)
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    s["gen_cpu"] = proc_cpu(gen.pid)
                    if "worker" in srv.procs:
                        s["worker_cpu"] = tree_cpu(srv.pid("worker"))
                samples.append(s)
            if now >= next_udp:
                next_udp += 1.0
                t = time.time()
                u = udp_sockets(*srv.rtp)
                udp_series.append((t, u))
                udp_max.drops = max(udp_max.drops, u.drops)
                spool_series.append((t, *spool_usage(srv.spool)))
            if profile and profiler is None and all_up_at is not None and time.time() > all_up_at + 1.0:
                profiler = subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("py-spy")),
                        "record",
                        "--pid",
                        str(rec),
                        "--duration",
                        str(int(profile)),
                        "--rate",
                        "100",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "-o",
                        str(profile_out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
        gen.join(10)
        assert report is not None
        calls = report["calls"]
        by_id = {c["call_id"]: c for c in calls}
        res.answered = sum(1 for c in calls if c["invite_status"] == 200)
        res.sip_errors = sum(
            1 for c in calls if c["error"] or (c["invite_status"] == 200 and c["bye_status"] != 200)
        )
        for c in calls:
            if c["error"]:
                res.notes.append(f"call {c['index']}: {c['error']}")
                break
        res.packets_sent = sum(sum(c["packets_sent"]) for c in calls)
        res.gen_send_errors = report["send_errors"]
        setups = [c["setup_time"] for c in calls if c["setup_time"] is not None]
        res.setup_p50_ms = _ms(pct(setups, 50))
        res.setup_p95_ms = _ms(pct(setups, 95))

        # steady-state window: every call of the step up, before the first call stops its media
        answered = [c["answered_at"] for c in calls if c["answered_at"] is not None]
        ends = [c["media_end_at"] for c in calls if c["media_end_at"] is not None]
        if latency_calls is None and answered and ends:
            w0, w1 = max(answered) + 1.0, min(ends) - 0.1
        else:  # staggered plan: from the moment `concurrent` calls were up until the last of them ended
            ans_sorted = sorted(answered)
            w0 = ans_sorted[min(concurrent, len(ans_sorted)) - 1] + 1.0 if ans_sorted else 0.0
            w1 = sorted(ends)[max(0, len(ends) - concurrent)] - 0.1 if ends else 0.0
        win = [s for s in samples if w0 <= s["t"] <= w1]
        if len(win) >= 2 and w1 > w0:
            a, b = win[0], win[-1]
            dt = b["t"] - a["t"]
            res.window_s = dt
            cpu = b["rec_cpu"] - a["rec_cpu"]
            res.rec_cpu_pct = 100 * cpu / dt
            res.rec_cpu_ms_per_call_s = 1000 * cpu / (concurrent * dt)
            res.rec_cpu_us_per_packet = 1e6 * cpu / (concurrent * 2 * dt / 0.020)
            res.rec_loop_cpu_pct = 100 * (b["rec_main"] - a["rec_main"]) / dt
            busy = (b["core0"][0] - a["core0"][0]) / max(1, b["core0"][1] - a["core0"][1])
            res.core0_busy_pct = 100 * busy
            if "gen_cpu" in a and "gen_cpu" in b:
                res.gen_cpu_pct = 100 * (b["gen_cpu"] - a["gen_cpu"]) / dt
            if "worker_cpu" in a and "worker_cpu" in b:
                res.worker_cpu_window_pct = 100 * (b["worker_cpu"] - a["worker_cpu"]) / dt
            res.rss_mb = b["rss"] / 1024
            pps = concurrent * 2 / 0.020
            udp_win = [u for t, u in udp_series if w0 <= t <= w1]
            if udp_win:
                res.rx_backlog_ms_max = max(1000 * u.rx_queue / truesize / pps for u in udp_win)
                res.rx_backlogged_sockets_max = max(u.backlogged for u in udp_win)
            # spool backlog: packets sent (interpolated from the generator's progress) minus records on disk
            pt = np.array([p[0] for p in progress])
            pn = np.array([p[1] for p in progress], dtype=float)
            backlog = []
            for t, files, size in spool_series:
                if w0 <= t <= w1 and len(pt) >= 2:
                    sent = float(np.interp(t, pt, pn))
                    on_disk = (size - SPOOL_FILE_HEADER * files) / SPOOL_RECORD
                    backlog.append(max(0.0, sent - on_disk) / pps)
            if backlog:
                res.spool_backlog_s_max = max(backlog)
                res.spool_backlog_s_mean = float(np.mean(backlog))
        else:
            res.notes.append("steady-state window too short to measure")
        lag_window = report["tick_lag"]  # the whole run: the generator must keep up throughout
        res.gen_lag_p50_ms = _ms(pct(lag_window, 50))
        res.gen_lag_p99_ms = _ms(pct(lag_window, 99))
        res.gen_lag_max_ms = _ms(max(lag_window) if lag_window else None)
        res.kernel_drops = udp_max.drops

        # every BYE was answered, so every spool is flushed and closed: count what was recorded
        # (if the worker ran during the load, finalized calls' spools are gone: the DB counts then)
        if not worker_during_load:
            if still_open := srv.wait_spools_closed():
                res.notes.append(f"{still_open} spools still open 15 s after the last BYE")
            spooled = srv.spool_received()
            for c in calls:
                got = spooled.get(c["call_id"], 0)
                res.packets_received += got
                if got < sum(c["packets_sent"]):
                    res.calls_with_loss += 1
                    if len(res.loss_examples) < 5:
                        per_stream = srv.spool_gaps(c["call_id"])
                        res.loss_examples.append({
                            "call": c["index"], "sent": c["packets_sent"],
                            "spooled": [r for r, _ in per_stream], "seq_gaps": [g for _, g in per_stream],
                            "media_end_to_bye_ms": 1000 * (c["bye_sent_at"] - c["media_end_at"])
                            if c["bye_sent_at"] and c["media_end_at"] else None,
                        })  # fmt: skip
            res.packets_missing = res.packets_sent - res.packets_received
            if res.loss_examples:
                ex = res.loss_examples[0]
                res.notes.append(
                    f"{res.calls_with_loss} calls incomplete; e.g. call {ex['call']}: sent {ex['sent']}, "
                    f"in spool {ex['spooled']}, sequence gaps in spool {ex['seq_gaps']}"
                )
        res.hwm_mb = proc_mem(rec)[1] / 1024
        snmp1 = udp_snmp()
        res.snmp_rcvbuf_errors = snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0)
        res.snmp_in_errors = snmp1.get("InErrors", 0) - snmp0.get("InErrors", 0)

        if finalize:
            # BYE -> ready: poll until every answered call is ready (or failed, or time is up)
            if "worker" not in srv.procs:
                srv.start_worker()
                # its CPU and the drain are counted from the end of its start-up (Django, imports)
                until = time.monotonic() + 60
                while "worker started" not in srv.log("worker") and time.monotonic() < until:
                    time.sleep(0.01)
            worker_cpu0 = tree_cpu(srv.pid("worker"))
            if worker_during_load and samples and "worker_cpu" in samples[0]:
                worker_cpu0 = samples[0]["worker_cpu"]  # it finalized calls all along
            drain_from = time.time()
            audio_s = sum(c["media_seconds"] for c in calls if c["answered_at"])
            deadline = time.monotonic() + max(120.0, 0.05 * audio_s)
            while len(poller.ready) + poller.count_failed() < res.answered and time.monotonic() < deadline:
                time.sleep(0.02)
                poller.poll()
            res.finalize_cpu_s = tree_cpu(srv.pid("worker")) - worker_cpu0
            res.ready = len(poller.ready)
            res.failed = poller.failed
            first_bye = min((c["bye_sent_at"] for c in calls if c["bye_sent_at"]), default=drain_from)
            if poller.ready:
                res.drain_s = max(r["seen"] for r in poller.ready.values()) - max(first_bye, drain_from)
            wanted = [c for c in calls if latency_calls is None or c["index"] in latency_calls]
            lat, waits, fins = [], [], []
            for c in wanted:
                r = poller.ready.get(c["call_id"])
                if r is not None and c["bye_sent_at"]:
                    lat.append(r["seen"] - c["bye_sent_at"])
                    waits.append(r["claimed"] - c["bye_sent_at"])
                    fins.append(r["verified"] - r["claimed"])
            if worker_during_load:
                res.latency = lat
                res.latency_p50, res.latency_p95 = pct(lat, 50), pct(lat, 95)
                res.latency_max = max(lat) if lat else None
                res.queue_wait_p50 = pct(waits, 50)
            res.finalize_p50, res.finalize_p95 = pct(fins, 50), pct(fins, 95)

            # the recorder's view of every call, from the database via the CLI
            try:
                rows = srv.calls_json(n + 50)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                res.notes.append(str(exc)[:300])
                rows = []
            kb = []
            for row in rows:
                if row["sip_call_id"] not in by_id:
                    continue
                res.db_received += row["packets"]["received"] or 0
                res.recorder_lost += row["packets"]["lost"] or 0
                res.recorder_late += row["packets"]["late"] or 0
                res.recorder_dropped += row["packets"]["dropped"] or 0
                rec_info = row.get("recording") or {}
                if rec_info.get("bytes") and rec_info.get("duration"):
                    kb.append(rec_info["bytes"] / 1000 / (rec_info["duration"] / 60))
                    res.finalize_audio_s += rec_info["duration"]
            res.kb_per_min = float(np.mean(kb)) if kb else None
            if res.finalize_audio_s:
                res.finalize_ms_per_audio_s = 1000 * res.finalize_cpu_s / res.finalize_audio_s
            if res.finalize_audio_s and res.drain_s and not worker_during_load:
                res.finalize_x_realtime = res.finalize_audio_s / res.drain_s
            if worker_during_load:
                res.packets_received = res.db_received
                res.packets_missing = res.packets_sent - res.db_received
            elif res.db_received != res.packets_received:
                res.notes.append(
                    f"database counts {res.db_received} packets, spool files {res.packets_received}"
                )
        res.lossless = (
            res.answered == n
            and (res.ready == n or not finalize)
            and res.packets_missing == 0
            and res.recorder_lost == 0
            and res.kernel_drops == 0
        )
        res.kept_up = (
            res.rx_backlog_ms_max is not None
            and res.rx_backlog_ms_max <= MAX_RX_BACKLOG_MS
            and res.spool_backlog_s_max is not None
            and res.spool_backlog_s_max <= MAX_SPOOL_BACKLOG_S
        )
        res.gen_ok = res.gen_lag_max_ms is not None and res.gen_lag_max_ms < MAX_GEN_LAG_MS
        if profiler is not None:
            _, err = profiler.communicate(timeout=profile + 30)
            if profiler.returncode != 0:
                res.notes.append(f"py-spy failed: {err.decode(errors='replace')[-300:]}")
        return res
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        if gen is not None and gen.is_alive():
            gen.terminate()
            gen.join(5)
        if poller is not None:
            poller.close()
        srv.stop()


def _ms(v: float | None) -> float | None:
    return None if v is None else 1000 * v


# ------------------------------------------------------------------------------------- plans
def ladder_plan(n: int, rate: float, hold: float) -> list[tuple[float, float]]:
    """Call i starts at i / rate; all N are up for `hold` s; BYEs follow at the same rate."""
    ramp = (n - 1) / rate
    return [(0.2 + i / rate, ramp + hold) for i in range(n)]


def staggered_plan(n: int, seconds: float) -> list[tuple[float, float]]:
    """2N calls of `seconds`, one every seconds / N: N are up at once from t = seconds on."""
    return [(0.2 + i * seconds / n, seconds) for i in range(2 * n)]


# ------------------------------------------------------------------------------------- audio
def load_audio() -> dict[str, np.ndarray]:
    """Speech for the load: the caller in English, the agent in Japanese (different voices)."""
    from tests.audio_fixtures import callee_speech, caller_speech

    return {
        "caller": np.concatenate(caller_speech("en")),
        "callee": np.concatenate(callee_speech("ja")),
    }


def _align(ref: np.ndarray, deg: np.ndarray, max_lag: int) -> int:
    """Samples by which ``deg`` is delayed relative to ``ref`` (0..max_lag), by cross-correlation."""
    n = min(len(ref), len(deg) - max_lag)
    a = ref[:n].astype(np.float64)
    size = 1 << (n + max_lag + n).bit_length()
    spec = np.fft.rfft(deg[: n + max_lag].astype(np.float64), size) * np.conj(np.fft.rfft(a, size))
    xc = np.fft.irfft(spec, size)[: max_lag + 1]
    return int(np.argmax(xc))


@dataclass
class QualityResult:
    call: str
    seconds: float
    bytes: int
    kb_per_min: float
    codec: str
    sample_rate: int
    pesq_caller: float
    pesq_callee: float
    offset_ms: list[float]

    @property
    def ok(self) -> bool:
        return self.kb_per_min <= TARGET_KB_PER_MIN and min(self.pesq_caller, self.pesq_callee) >= TARGET_PESQ


def run_quality(
    root: Path, template: Path, langs: list[str], max_seconds: float | None
) -> list[QualityResult]:
    """Two-party speech calls through the recorder; KB/min and PESQ-NB per channel of the recording."""
    from pesq import pesq

    from callvault.codecs import g711
    from callvault.media.encode import decode_recording
    from callvault.tools.siprec_client import Leg, SiprecClient
    from tests.audio_fixtures import two_party_call

    srv = Servers(root, template, "quality", len(langs))
    out: list[QualityResult] = []
    try:
        srv.start()
        client = SiprecClient(("127.0.0.1", srv.sip_port))
        sent: dict[str, np.ndarray] = {}
        for lang in langs:
            pcm = two_party_call(lang, g711=False).pcm  # the client does the G.711 encoding itself
            if max_seconds:
                pcm = pcm[: int(max_seconds * 8000)]
            sent[lang] = pcm[: len(pcm) // 160 * 160]

        async def place_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    client.call(
                        Leg("0312345678", "発信者", sent[lang][:, 0]), Leg("201", "受付", sent[lang][:, 1])
                    )
                    for lang in langs
                )
            )

        results = asyncio.run(place_all())
        poller = ReadyPoller(srv.db)
        deadline = time.monotonic() + 120
        while len(poller.ready) + poller.count_failed() < len(langs) and time.monotonic() < deadline:
            time.sleep(0.05)
            poller.poll()
        poller.close()
        rows = {r["sip_call_id"]: r for r in srv.calls_json(50)}
        for lang, result in zip(langs, results, strict=True):
            row = rows[result.call_id]
            rec = row["recording"]
            pcm, rate = decode_recording(Path(rec["path"]))
            scores, offsets = [], []
            for ch in (0, 1):
                ref = g711.decode(g711.encode(np.ascontiguousarray(sent[lang][:, ch]), "ulaw"), "ulaw")
                deg = pcm[:, ch]
                lag = _align(ref, deg, int(0.5 * rate))
                n = min(len(ref), len(deg) - lag)
                scores.append(
                    float(pesq(8000, ref[:n].astype(np.float64), deg[lag : lag + n].astype(np.float64), "nb"))
                )
                offsets.append(1000 * lag / rate)
            out.append(
                QualityResult(
                    call=f"{lang} two-party",
                    seconds=rec["duration"],
                    bytes=rec["bytes"],
                    kb_per_min=rec["bytes"] / 1000 / (rec["duration"] / 60),
                    codec=rec["codec"],
                    sample_rate=rec["sample_rate"],
                    pesq_caller=scores[0],
                    pesq_callee=scores[1],
                    offset_ms=offsets,
                )
            )
    finally:
        srv.stop()
    return out


# ------------------------------------------------------------------------------------- output
def _f(v: float | None, fmt: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def print_tables(
    env: dict[str, Any],
    ladder: list[RunResult],
    latency: RunResult | None,
    quality: list[QualityResult],
    largest_ok: int | None,
    profiled: list[RunResult] | None = None,
) -> None:
    print()
    print(
        f"SIPREC capacity: recorder on core {RECORDER_CPU}; generator, worker and this script on core "
        f"{OTHER_CPU}; {env['cpus']} CPUs, Python {env['python']}, {env['kernel']}"
    )
    print(
        f"two-stream G.711 calls, 20 ms packets, setup/BYE at {env['rate']:g}/s, hold {env['duration']:g} s; "
        f"code {env.get('code', '?')}"
    )
    if ladder:
        _table(
            "recorder in the steady-state window (all N calls up)",
            [
                ("calls", 5, lambda r: r.concurrent),
                ("pkt/s", 6, lambda r: r.concurrent * 100),
                ("win s", 5, lambda r: _f(r.window_s)),
                ("CPU %", 6, lambda r: _f(r.rec_cpu_pct)),
                ("loop %", 6, lambda r: _f(r.rec_loop_cpu_pct)),
                ("ms/call-s", 9, lambda r: _f(r.rec_cpu_ms_per_call_s, ".2f")),
                ("µs/pkt", 6, lambda r: _f(r.rec_cpu_us_per_packet)),
                ("core0 %", 7, lambda r: _f(r.core0_busy_pct)),
                ("RSS MB", 6, lambda r: _f(r.rss_mb)),
                ("HWM MB", 6, lambda r: _f(r.hwm_mb)),
                ("rxq ms", 6, lambda r: _f(r.rx_backlog_ms_max)),
                ("spool s", 7, lambda r: _f(r.spool_backlog_s_max, ".2f")),
                ("ok", 3, lambda r: "yes" if r.ok else "NO"),
            ],
            ladder + (profiled or []),
        )
        _table(
            "packets, calls and the load generator",
            [
                ("calls", 5, lambda r: r.concurrent),
                ("sent", 9, lambda r: r.packets_sent),
                ("received", 9, lambda r: r.packets_received),
                ("missing", 7, lambda r: r.packets_missing),
                ("lost", 5, lambda r: r.recorder_lost),
                ("kdrop", 5, lambda r: r.kernel_drops),
                ("snmp rcvbuf", 11, lambda r: r.snmp_rcvbuf_errors),
                ("ready", 9, lambda r: f"{r.ready}/{r.calls}"),
                ("setup p95 ms", 12, lambda r: _f(r.setup_p95_ms)),
                ("gen CPU %", 9, lambda r: _f(r.gen_cpu_pct)),
                (
                    "gen lag p50/p99/max ms",
                    22,
                    lambda r: (
                        "/".join(_f(v) for v in (r.gen_lag_p50_ms, r.gen_lag_p99_ms, r.gen_lag_max_ms))
                        + ("" if r.gen_ok else " !")
                    ),
                ),
                ("KB/min", 6, lambda r: _f(r.kb_per_min)),
            ],
            ladder + (profiled or []),
        )
        _table(
            "finalize of the ladder's calls (worker started after the load phase, on core 1)",
            [
                ("calls", 5, lambda r: r.concurrent),
                ("audio s", 8, lambda r: _f(r.finalize_audio_s, ".0f")),
                ("drain s", 7, lambda r: _f(r.drain_s)),
                ("x realtime", 10, lambda r: _f(r.finalize_x_realtime)),
                ("worker CPU s", 12, lambda r: _f(r.finalize_cpu_s)),
                ("CPU ms/audio-s", 14, lambda r: _f(r.finalize_ms_per_audio_s, ".2f")),
                ("job p50/p95 s", 13, lambda r: f"{_f(r.finalize_p50, '.2f')}/{_f(r.finalize_p95, '.2f')}"),
                ("lost", 5, lambda r: r.recorder_lost),
                ("late", 5, lambda r: r.recorder_late),
            ],
            ladder,
        )
        for line in (
            "CPU % = the recorder process (all threads) in % of one core, loop % = its main thread (event",
            "loop: RTP capture, SIP; the rest is the database-mirror and I/O threads); ms/call-s = its CPU",
            "ms per call-second; µs/pkt = its CPU per RTP packet; core0 % = all of core 0 (recorder, other",
            "processes, softirq); RSS at the end of the window, HWM = peak; rxq ms = most traffic waiting",
            "in the recorder's RTP sockets; spool s = most packets sent but not yet in spool files, in",
            "seconds of traffic; missing = packets sent - packets in the spool files after BYE; lost =",
            "the recorder's sequence-gap count (DB); kdrop = kernel drops on its RTP sockets; snmp rcvbuf",
            "= system-wide UDP RcvbufErrors during the run; gen lag = the generator's timer lateness",
            "('!' if a whole packet interval); KB/min of these recordings (both parties talk all the time).",
            f"ok = nothing missing or lost, all ready, rxq <= {MAX_RX_BACKLOG_MS:g} ms, spool <= "
            f"{MAX_SPOOL_BACKLOG_S:g} s.",
            "Finalize: job = one call, claimed -> ready (2 worker threads); x realtime = audio seconds",
            "finalized per wall second over the whole drain; worker CPU per audio second.",
        ):
            print("  " + line)
        if profiled:
            print(
                "  Last row of the first two tables: the extra run with py-spy attached (not in the verdict)."
            )
        verdict = "none" if largest_ok is None else str(largest_ok)
        print(f"  largest N with zero loss and kept up: {verdict} (target {TARGET_CALLS})")
        costs = [r.finalize_ms_per_audio_s for r in ladder if r.finalize_ms_per_audio_s]
        if costs:
            worst = max(costs)
            print(
                f"  finalize costs up to {worst:.1f} ms of worker CPU per recorded second: one worker core "
                f"keeps up with at most ~{1000 / worst:.0f} concurrent calls"
            )
    if latency is not None:
        r = latency
        secs = env["latency_call_seconds"]
        met = r.latency_p95 is not None and r.latency_p95 <= TARGET_LATENCY_P95
        lines = [
            f"BYE → finalized recording at {r.concurrent} concurrent calls ({r.calls} calls of {secs:g} s, "
            f"a BYE every {secs / r.concurrent * 1000:.0f} ms):",
            f"  p50 {_f(r.latency_p50, '.3f')} s   p95 {_f(r.latency_p95, '.3f')} s   "
            f"max {_f(r.latency_max, '.3f')} s   (n={len(r.latency)}, target p95 <= "
            f"{TARGET_LATENCY_P95:g} s: {'yes' if met else 'NO'})",
            f"  of which BYE -> job claimed p50 {_f(r.queue_wait_p50, '.3f')} s; claimed -> ready "
            f"p50 {_f(r.finalize_p50, '.3f')} s, p95 {_f(r.finalize_p95, '.3f')} s",
            f"  worker: {_f(r.worker_cpu_window_pct)} % of core 1 while {r.concurrent} calls were up, "
            f"{_f(r.finalize_ms_per_audio_s, '.1f')} ms CPU per recorded second",
            f"  same run: recorder CPU {_f(r.rec_cpu_pct)} %, missing packets {r.packets_missing}, "
            f"ready {r.ready}/{r.calls}",
        ]
        print()
        print("\n".join(lines))
    if quality:
        cols: list[tuple[str, int, Any]] = [
            ("recording", 16, lambda q: q.call),
            ("seconds", 7, lambda q: f"{q.seconds:.1f}"),
            ("bytes", 8, lambda q: q.bytes),
            ("KB/min", 7, lambda q: f"{q.kb_per_min:.1f}"),
            ("codec", 6, lambda q: q.codec),
            ("rate", 5, lambda q: q.sample_rate),
            ("PESQ L", 6, lambda q: f"{q.pesq_caller:.2f}"),
            ("PESQ R", 6, lambda q: f"{q.pesq_callee:.2f}"),
            ("ok", 3, lambda q: "yes" if q.ok else "NO"),
        ]
        _table("stereo Opus default, two-party speech through the recorder", cols, quality)
        print(f"  targets <= {TARGET_KB_PER_MIN:g} KB/min (1 KB = 1000 bytes), PESQ-NB >= {TARGET_PESQ} per")
        print("  channel against the G.711 audio sent (L = caller, R = callee)")


def _table(title: str, cols: list[tuple[str, int, Any]], rows: list[Any]) -> None:
    print()
    print(title + ":")
    head = " ".join(f"{name:>{width}}" for name, width, _ in cols)
    print(head)
    print("-" * len(head))
    for r in rows:
        print(" ".join(f"{fn(r)!s:>{width}}" for _, width, fn in cols))


def summarize_profile(path: Path, top: int = 15) -> list[tuple[str, float, float]]:
    """(function, self %, total %) from py-spy's raw (collapsed) output."""
    self_n: dict[str, int] = {}
    total_n: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [re.sub(r"\s*\(.*?:\d+\)$", "", f) or f for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if frames:
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            total_n[f] = total_n.get(f, 0) + n
    if not samples:
        return []
    rows = sorted(self_n.items(), key=lambda kv: -kv[1])[:top]
    return [(f, 100 * n / samples, 100 * total_n.get(f, 0) / samples) for f, n in rows]


# ------------------------------------------------------------------------------------- main
def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: servers and generator are stopped


@contextlib.contextmanager
def work_dir(path: str | None, keep: bool) -> Iterator[Path]:
    if path:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        yield p
        return
    tmp = Path(tempfile.mkdtemp(prefix="callvault-capacity-"))
    try:
        yield tmp
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"(kept {tmp})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ladder", default="100,250,500,750,1000", help="concurrent calls per capacity step")
    p.add_argument("--calls", type=int, help="one capacity step with this many calls (instead of --ladder)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds all N calls are held (default 20)")
    p.add_argument("--rate", type=float, default=50.0, help="call setups (and BYEs) per second (default 50)")
    p.add_argument("--slots", type=int, default=4, help="generator timer phases per 20 ms (default 4)")
    p.add_argument(
        "--ladder-finalize",
        choices=("all", "none"),
        default="all",
        help="finalize every ladder call (worker started after the load; default) or none "
        "(packets are counted from the spool files either way)",
    )
    p.add_argument("--keep-going", action="store_true", help="run every ladder step even after a failure")
    p.add_argument("--latency-calls", type=int, default=100, help="concurrency for BYE latency (0: skip)")
    p.add_argument(
        "--latency-call-seconds", type=float, default=20.0, help="call length in the latency phase"
    )
    p.add_argument("--quality", default="en,ja", help="languages of the Opus size/quality calls ('' to skip)")
    p.add_argument("--quality-seconds", type=float, default=0.0, help="cut quality calls to this length")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="extra run at the largest N, py-spy sampling the recorder",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: N=20 for 5 s, short latency/quality (< 1 min)"
    )
    p.add_argument(
        "--code",
        choices=("head", "worktree"),
        default="head",
        help="benchmark the committed callvault package (default; the load generator is taken "
        "from the working tree) or the working tree as it is",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the recorder, worker and generator at this nice level (e.g. -10 on a shared "
        "machine, needs root), so other jobs disturb the measurement less",
    )
    p.add_argument("--json-out", help="write all figures as JSON to this file")
    p.add_argument("--work-dir", help="data directories go here (default: a temp dir, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs, recordings)")
    args = p.parse_args()
    if args.quick:
        args.ladder, args.duration = "20", 5.0
        args.latency_calls, args.latency_call_seconds = 20, 5.0
        args.quality, args.quality_seconds = "en", 8.0
    ladder_ns = [args.calls] if args.calls else [int(x) for x in args.ladder.split(",") if x.strip()]

    os.sched_setaffinity(0, {OTHER_CPU})
    NICE[0] = args.nice
    for tool in ("taskset",):
        if shutil.which(tool) is None:
            print(f"{tool} not found", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    env = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "rate": args.rate,
        "duration": args.duration,
        "slots": args.slots,
        "nice": args.nice,
        "latency_call_seconds": args.latency_call_seconds,
        "loadavg_start": os.getloadavg(),
    }
    ladder: list[RunResult] = []
    profiled: list[RunResult] = []
    latency: RunResult | None = None
    quality: list[QualityResult] = []
    profile_rows: list[tuple[str, float, float]] = []
    largest_ok: int | None = None
    with work_dir(args.work_dir, args.keep) as root:
        snapshot_code(root, args.code)
        env["code"] = code_version() if args.code == "worktree" else code_version().split(" ")[0] + " (HEAD)"
        template = root / "template"
        template.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "callvault.cli", "manage", "migrate", "--noinput", "-v", "0"],
            env=cli_env(template),
            check=True,
            cwd=CODE[0],
        )
        audio = load_audio()
        truesize = skb_truesize()
        env["skb_truesize"] = truesize
        common: dict[str, Any] = {
            "root": root,
            "template": template,
            "audio": audio,
            "slots": args.slots,
            "truesize": truesize,
        }
        try:
            for n in ladder_ns:
                print(f"[{time.monotonic() - started:6.0f}s] capacity step: {n} calls ...", flush=True)
                r = run_plan(
                    f"ladder-{n}",
                    ladder_plan(n, args.rate, args.duration),
                    concurrent=n,
                    worker_during_load=False,
                    finalize=args.ladder_finalize == "all",
                    **common,
                )
                ladder.append(r)
                print(
                    f"         rec CPU {_f(r.rec_cpu_pct)} %, missing {r.packets_missing}, drops "
                    f"{r.kernel_drops}, ready {r.ready}/{r.calls}, ok={r.ok}  {'; '.join(r.notes)}",
                    flush=True,
                )
                if r.ok:
                    largest_ok = n if largest_ok is None else max(largest_ok, n)
                elif not args.keep_going:
                    break
            if args.latency_calls:
                n = args.latency_calls
                print(f"[{time.monotonic() - started:6.0f}s] BYE latency: {n} concurrent ...", flush=True)
                latency = run_plan(
                    f"latency-{n}",
                    staggered_plan(n, args.latency_call_seconds),
                    concurrent=n,
                    worker_during_load=True,
                    latency_calls=range(n),
                    **common,
                )
            langs = [x for x in args.quality.split(",") if x.strip()]
            if langs:
                print(f"[{time.monotonic() - started:6.0f}s] Opus size/quality: {langs} ...", flush=True)
                quality = run_quality(root, template, langs, args.quality_seconds or None)
            if args.profile:
                n = max(ladder_ns)
                out = root / "profile.txt"
                print(
                    f"[{time.monotonic() - started:6.0f}s] profiling the recorder at {n} calls ...",
                    flush=True,
                )
                pr = run_plan(
                    f"profile-{n}",
                    ladder_plan(n, args.rate, max(args.duration, args.profile + 3)),
                    concurrent=n,
                    worker_during_load=False,
                    finalize=False,
                    profile=args.profile,
                    profile_out=out,
                    **common,
                )
                profiled.append(pr)
                if out.exists():
                    profile_rows = summarize_profile(out)
                    if args.keep or args.work_dir:
                        print(f"(py-spy samples: {out})")
                else:
                    print(f"py-spy produced nothing: {'; '.join(pr.notes)}")
        except KeyboardInterrupt:
            print("interrupted; reporting what was measured", file=sys.stderr)
    elapsed = time.monotonic() - started
    env["loadavg_end"] = os.getloadavg()
    env["elapsed_s"] = elapsed
    print_tables(env, ladder, latency, quality, largest_ok, profiled)
    if profile_rows:
        print()
        print(
            f"py-spy, recorder at {max(ladder_ns)} calls ({args.profile:g} s, 100 Hz, idle samples included):"
        )
        print(f"  {'self %':>6} {'total %':>7}  function")
        for fn, s, t in profile_rows:
            print(f"  {s:6.1f} {t:7.1f}  {fn}")
    print(
        f"\nbenchmark wall time {elapsed:.0f} s; load average {env['loadavg_start'][0]:.2f} -> "
        f"{env['loadavg_end'][0]:.2f} (other processes on this machine disturb the figures)"
    )
    if args.json_out:
        doc = {
            "env": env,
            "targets": {
                "calls": TARGET_CALLS,
                "latency_p95_s": TARGET_LATENCY_P95,
                "kb_per_min": TARGET_KB_PER_MIN,
                "pesq_nb": TARGET_PESQ,
            },
            "largest_ok": largest_ok,
            "ladder": [asdict(r) | {"ok": r.ok} for r in ladder],
            "latency": asdict(latency) | {"ok": latency.ok} if latency else None,
            "quality": [asdict(q) | {"ok": q.ok} for q in quality],
            "profile": [{"function": f, "self_pct": s, "total_pct": t} for f, s, t in profile_rows],
            "profiled_run": [asdict(r) | {"ok": r.ok} for r in profiled],
        }
        Path(args.json_out).write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
