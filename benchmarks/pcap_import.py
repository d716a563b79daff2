"""Passive capture speed: `callvault import` of a 1,000-call pcap, and live `callvault sniff` on one core.

1. Import. A synthetic capture is written with struct (seconds for a GB): ``--calls`` SIP/UDP
   calls (INVITE, 100, 180, 200 with SDP, ACK, BYE, 200), ``--concurrent`` of them in progress
   at any time, each with two G.711 RTP streams (20 ms, 160-byte payloads, Ethernet/IPv4/UDP, as a
   mirror port delivers them).  ``callvault import FILE --json`` runs in a fresh data directory;
   its own summary gives the wall time and the process CPU time of reading, following,
   spooling and entering the calls in the database (the recordings are queued for the workers,
   as in production; finalize speed is measured by ``siprec_capacity.py``).  The same file is
   also run through the capture core alone (no spool, no database) for its CPU cost per packet.
2. Live. A second capture with ``--live-calls`` calls up at the same time (set up over the first
   ``--live-ramp`` seconds) is replayed on ``lo`` by ``tcpreplay`` at its recorded speed while
   ``callvault sniff -i lo`` runs pinned to core 0 (``taskset -c 0``; tcpreplay on core 1).  Loss
   is counted two ways: libpcap's own drop counters (logged by the sniffer when it stops) and the
   RTP packets in the spools compared with the packets sent.  The sniffer's CPU is sampled from
   /proc/PID/stat.

Run: ``.venv/bin/python benchmarks/pcap_import.py`` (about 5 minutes), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from callvault.pcap.build import ethernet, ipv4, udp  # noqa: E402

ETH_IP_UDP = 14 + 20 + 8
PAYLOAD = bytes((i * 37) & 0xFF for i in range(160))  # A-law bytes of no particular sound
REC = struct.Struct("<IIII")
RTP = struct.Struct("!BBHII")


def sip_messages(
    n: int, a: tuple[str, int], b: tuple[str, int], ma: int, mb: int
) -> list[tuple[float, bool, bytes]]:
    """(offset seconds, from caller, payload) of one call's SIP, answered 2 s after the INVITE."""
    call_id = f"bench-{n}@pbx.example.jp"
    frm = f'"Caller {n}" <sip:0312{n:06d}@pbx.example.jp>;tag=f{n}'
    to = f"<sip:{200 + n % 50}@pbx.example.jp>"

    def sdp(ip: str, port: int) -> str:
        return (
            f"v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 8 101\r\n"
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        )

    def msg(start: str, cseq: str, *, tag: bool, body: str = "", via: tuple[str, int] = a) -> bytes:
        head = (
            f"{start}\r\nVia: SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bK{n}{cseq.replace(' ', '')}\r\n"
            f"From: {frm}\r\nTo: {to}{';tag=t' + str(n) if tag else ''}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"
            f"Max-Forwards: 70\r\nContact: <sip:x@{via[0]}:{via[1]}>\r\n"
        )
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()

    return [
        (0.0, True, msg("INVITE sip:201@pbx.example.jp SIP/2.0", "1 INVITE", tag=False, body=sdp(a[0], ma))),
        (0.01, False, msg("SIP/2.0 100 Trying", "1 INVITE", tag=False)),
        (0.2, False, msg("SIP/2.0 180 Ringing", "1 INVITE", tag=True)),
        (2.0, False, msg("SIP/2.0 200 OK", "1 INVITE", tag=True, body=sdp(b[0], mb))),
        (2.01, True, msg("ACK sip:201@pbx.example.jp SIP/2.0", "1 ACK", tag=True)),
    ]


def bye_messages(n: int, a: tuple[str, int]) -> list[tuple[float, bool, bytes]]:
    frm = f'"Caller {n}" <sip:0312{n:06d}@pbx.example.jp>;tag=f{n}'
    to = f"<sip:{200 + n % 50}@pbx.example.jp>;tag=t{n}"

    def msg(start: str) -> bytes:
        return (
            f"{start}\r\nVia: SIP/2.0/UDP {a[0]}:{a[1]};branch=z9hG4bKbye{n}\r\nFrom: {frm}\r\nTo: {to}\r\n"
            f"Call-ID: bench-{n}@pbx.example.jp\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    return [(0.0, True, msg("BYE sip:201@pbx.example.jp SIP/2.0")), (0.01, False, msg("SIP/2.0 200 OK"))]


def write_capture(
    path: Path, *, calls: int, starts: list[float], talk: float, t0: float = 1795000000.0
) -> dict[str, int]:
    """A classic pcap of ``calls`` calls starting at ``starts`` (seconds), each talking ``talk`` seconds."""
    events: list[tuple[float, bytes]] = []
    rtp_packets = 0
    streams: list[tuple[float, float, bytes, int]] = []  # start, end, frame head, ssrc
    for n in range(calls):
        a = (f"10.{1 + n // 60000}.{(n // 250) % 240}.{1 + n % 250}", 5060)
        b = (f"10.200.{(n // 250) % 240}.{1 + n % 250}", 5060)
        ma, mb = 20000 + 2 * (n % 5000), 30000 + 2 * (n % 5000)
        start = t0 + starts[n]
        for off, from_a, payload in sip_messages(n, a, b, ma, mb):
            src, dst = (a, b) if from_a else (b, a)
            events.append((start + off, ethernet(ipv4(src[0], dst[0], 17, udp(src[1], dst[1], payload)))))
        answer = start + 2.02
        end = answer + talk
        for off, from_a, payload in bye_messages(n, a):
            src, dst = (a, b) if from_a else (b, a)
            events.append(
                (end + 0.05 + off, ethernet(ipv4(src[0], dst[0], 17, udp(src[1], dst[1], payload))))
            )
        for src, sp, dst, dp, ssrc in ((a[0], ma, b[0], mb, 2 * n + 1), (b[0], mb, a[0], ma, 2 * n + 2)):
            frame = ethernet(ipv4(src, dst, 17, udp(sp, dp, b"\0" * (12 + 160))))
            streams.append((answer, end, frame[:ETH_IP_UDP], ssrc))
    events.sort(key=lambda e: e[0])
    total = 0
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        # RTP is written tick by tick (every 20 ms), merged with the SIP events in time order
        ev = 0
        first = min(s[0] for s in streams)
        last = max(s[1] for s in streams)
        ticks = int((last - first) / 0.02) + 1
        order = sorted(range(len(streams)), key=lambda i: streams[i][0])
        active: list[int] = []
        nxt = 0
        chunk: list[bytes] = []
        size = len(PAYLOAD) + 12 + ETH_IP_UDP
        for k in range(ticks):
            now = first + k * 0.02
            while ev < len(events) and events[ev][0] <= now:
                ts, frame = events[ev]
                chunk.append(REC.pack(int(ts), int((ts % 1) * 1e6), len(frame), len(frame)) + frame)
                ev += 1
            while nxt < len(order) and streams[order[nxt]][0] <= now:
                active.append(order[nxt])
                nxt += 1
            sec, usec = int(now), int((now % 1) * 1e6)
            keep = []
            for j, i in enumerate(active):
                s_start, s_end, head, ssrc = streams[i]
                if now > s_end:
                    continue
                keep.append(i)
                seq = int((now - s_start) / 0.02)
                u = usec + (j % 1000)  # spread within the tick like real senders
                chunk.append(
                    REC.pack(sec + u // 1000000, u % 1000000, size, size)
                    + head
                    + RTP.pack(0x80, 8, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
                    + PAYLOAD
                )
                rtp_packets += 1
            active = keep
            if len(chunk) > 20000:
                data = b"".join(chunk)
                total += len(data)
                fh.write(data)
                chunk = []
        while ev < len(events):
            ts, frame = events[ev]
            chunk.append(REC.pack(int(ts), int((ts % 1) * 1e6), len(frame), len(frame)) + frame)
            ev += 1
        fh.write(b"".join(chunk))
    return {"rtp_packets": rtp_packets, "bytes": path.stat().st_size}


def cli(data: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLVAULT_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "callvault.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        **kw,
    )  # type: ignore[call-overload]


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_only(path: Path) -> dict[str, float]:
    """CPU seconds of reading + following the capture alone (no spool, no database)."""
    from callvault.pcap.follower import PassiveCapture
    from callvault.pcap.reader import PcapReader

    core = PassiveCapture()
    reader = PcapReader()
    cpu = time.process_time()
    with path.open("rb") as fh:
        while chunk := fh.read(4 << 20):
            reader.feed(chunk)
            core.process(reader.records())
            for ch in core.channels():
                ch.take_records()
            while core.next_event() is not None:
                pass
    core.finish()
    cpu = time.process_time() - cpu
    return {
        "cpu_seconds": cpu,
        "packets": reader.packets,
        "calls": core.stats["calls"],
        "mb_per_cpu_s": reader.bytes_read / 1e6 / cpu,
        "us_per_packet": cpu / reader.packets * 1e6,
    }


def live_path_cost(path: Path, limit: int = 1_000_000) -> dict[str, float]:
    """CPU per packet of the sniffer's own loop, without libpcap: the same batch shape as
    ``next_batch`` (one bytes object + packed (sec, usec, offset, caplen) records) fed through the
    same generator into the capture core, then drained to spool-shaped batches."""
    from callvault.pcap.follower import PassiveCapture
    from callvault.pcap.reader import PcapReader

    reader = PcapReader()
    with path.open("rb") as fh:
        reader.feed(fh.read(300 << 20))
    batches: list[tuple[bytes, bytes]] = []
    data: list[bytes] = []
    meta: list[bytes] = []
    offset = 0
    meta_s = struct.Struct("=IIII")
    for n, (ts, _lt, frame) in enumerate(reader.records()):
        if n >= limit:
            break
        meta.append(meta_s.pack(int(ts), int((ts % 1) * 1e6), offset, len(frame)))
        data.append(frame)
        offset += len(frame)
        if len(meta) == 4096:
            batches.append((b"".join(data), b"".join(meta)))
            data, meta, offset = [], [], 0
    core = PassiveCapture()
    packets = sum(len(m) // 16 for _, m in batches)
    cpu = time.process_time()
    for blob, packed in batches:
        core.process(
            (sec + usec * 1e-6, 1, blob[off : off + caplen])
            for sec, usec, off, caplen in meta_s.iter_unpack(packed)
        )
        for ch in core.channels():
            ch.take_records()
        while core.next_event() is not None:
            pass
    cpu = time.process_time() - cpu
    us = cpu / packets * 1e6
    return {
        "packets": packets,
        "us_per_packet": us,
        "packets_per_core_second": 1e6 / us,
        "calls_per_core": 1e6 / us / 100,
    }


def bench_import(tmp: Path, calls: int, concurrent: int, talk: float) -> dict[str, object]:
    path = tmp / "import.pcap"
    # calls arrive evenly so that ``concurrent`` are in progress: each lasts talk + ~2 s of ringing
    gap = (talk + 2.1) / concurrent
    t = time.monotonic()
    info = write_capture(path, calls=calls, starts=[i * gap for i in range(calls)], talk=talk)
    made = time.monotonic() - t
    print(
        f"capture: {calls} calls, {info['rtp_packets']:,} RTP packets, {info['bytes'] / 1e6:,.0f} MB "
        f"(written in {made:.1f} s)",
        flush=True,
    )
    core = core_only(path)
    live_cost = live_path_cost(path)
    print(
        f"sniffer loop alone: {live_cost['us_per_packet']:.2f} µs CPU per packet = "
        f"{live_cost['packets_per_core_second']:,.0f} packets/s = "
        f"{live_cost['calls_per_core']:,.0f} two-way calls per core",
        flush=True,
    )
    print(
        f"capture core alone: {core['mb_per_cpu_s']:.0f} MB per CPU second, "
        f"{core['us_per_packet']:.2f} µs CPU per packet",
        flush=True,
    )
    data = tmp / "import-data"
    assert cli(data, "manage", "migrate", "--noinput", "-v", "0").returncode == 0
    proc = cli(data, "import", str(path), "--json", timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    secs, cpu = summary["seconds"], summary["cpu_seconds"] + summary["ingest_cpu_seconds"]
    out = {
        "calls": calls,
        "concurrent": concurrent,
        "mb": round(info["bytes"] / 1e6, 1),
        "packets": summary["packets"],
        "wall_seconds": secs,
        "cpu_seconds": cpu,
        "reader_cpu_seconds": summary["cpu_seconds"],
        "ingest_cpu_seconds": summary["ingest_cpu_seconds"],
        "reader_mb_per_cpu_s": round(info["bytes"] / 1e6 / summary["cpu_seconds"], 1),
        "mb_per_s_wall": round(info["bytes"] / 1e6 / secs, 1),
        "mb_per_cpu_s": round(info["bytes"] / 1e6 / cpu, 1),
        "calls_per_s_wall": round(summary["calls_created"] / secs, 1),
        "calls_created": summary["calls_created"],
        "realtime_factor": round((calls * (talk + 2.1) / concurrent) / secs, 1),
        "core_only": {k: round(v, 3) for k, v in core.items()},
        "sniffer_loop_only": {k: round(v, 3) for k, v in live_cost.items()},
    }
    print(
        f"import: {out['mb_per_s_wall']} MB/s wall, {out['mb_per_cpu_s']} MB per CPU second, "
        f"{out['calls_per_s_wall']} calls/s, {out['realtime_factor']}x real time "
        f"({summary['calls_created']} calls; reading process {out['reader_mb_per_cpu_s']} MB per CPU second)",
        flush=True,
    )
    path.unlink()
    return out


def bench_live(
    tmp: Path, calls: int, talk: float, ramp: float, speed: str = "", cpus: str = "0"
) -> dict[str, object]:
    """``speed``: "" = recorded timing, "--pps=N" = N packets/s, "--topspeed" = as fast as tcpreplay can."""
    if shutil.which("tcpreplay") is None:
        raise SystemExit("tcpreplay is needed for the live benchmark (apt-get install tcpreplay)")
    path = tmp / "live.pcap"
    info = write_capture(path, calls=calls, starts=[i * ramp / calls for i in range(calls)], talk=talk)
    data = tmp / "live-data"
    assert cli(data, "manage", "migrate", "--noinput", "-v", "0").returncode == 0
    log_path = tmp / "sniff.log"
    env = {**os.environ, "CALLVAULT_DATA_DIR": str(data)}
    with log_path.open("wb") as log:
        sniff = subprocess.Popen(
            [
                "taskset",
                "-c",
                cpus,
                sys.executable,
                "-m",
                "callvault.cli",
                "sniff",
                "-i",
                "lo",
                "-f",
                "net 10.0.0.0/8",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 30
            while b"capturing on lo" not in log_path.read_bytes():
                if sniff.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(log_path.read_text())
                time.sleep(0.1)
            cpu0, t0 = proc_cpu(sniff.pid), time.monotonic()
            replay = subprocess.run(
                ["taskset", "-c", "1", "tcpreplay", "-q", *([speed] if speed else []), "-i", "lo", str(path)],
                capture_output=True,
                text=True,
            )
            cpu1, t1 = proc_cpu(sniff.pid), time.monotonic()
            time.sleep(2)
        finally:
            sniff.send_signal(signal.SIGTERM)
            sniff.wait(60)
    text = log_path.read_text()
    m = re.search(
        r"capture statistics: (\d+) packets received, (\d+) dropped by the kernel, "
        r"(\d+) dropped by the interface",
        text,
    )
    received, dropped, ifdropped = (int(x) for x in m.groups()) if m else (-1, -1, -1)
    spooled = 0
    ncalls = 0
    for journal in (data / "spool").glob("*/journal.jsonl"):
        for line in journal.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "capture":
                spooled += sum(rec["packets"])
                ncalls += 1
    out = {
        "calls": calls,
        "replay": speed or "recorded timing",
        "sniffer_cpus": cpus,
        "rtp_packets_sent": info["rtp_packets"],
        "rtp_packets_recorded": spooled,
        "calls_recorded": ncalls,
        "pcap_received": received,
        "pcap_dropped": dropped + ifdropped,
        "replay_seconds": round(t1 - t0, 1),
        "packets_per_s": round(info["rtp_packets"] / (t1 - t0)),
        "sniffer_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 3),
        "tcpreplay": replay.stdout.strip().splitlines()[-3:] if replay.stdout else replay.stderr[-500:],
    }
    print(
        f"live: {calls} concurrent calls, {out['packets_per_s']:,} packets/s for {out['replay_seconds']} s: "
        f"libpcap dropped {out['pcap_dropped']}, recorded {spooled:,} of {info['rtp_packets']:,} RTP packets "
        f"in {ncalls} calls, sniffer at {out['sniffer_cpu_share'] * 100:.0f} % of a core",
        flush=True,
    )
    path.unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--concurrent", type=int, default=100)
    ap.add_argument("--talk", type=float, default=60.0, help="seconds of audio per call (import)")
    ap.add_argument("--live-calls", type=int, default=500)
    ap.add_argument("--live-talk", type=float, default=20.0)
    ap.add_argument("--live-ramp", type=float, default=5.0)
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--sniff-cpus", default="0", help="taskset CPU list for the sniffer (default 0)")
    ap.add_argument(
        "--live-speed",
        default="",
        help='tcpreplay speed option: "" = recorded timing (default), "--pps=50000", "--topspeed"',
    )
    ap.add_argument("--quick", action="store_true", help="100 calls, 50 live calls, short")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.calls, args.concurrent, args.talk = 100, 20, 10.0
        args.live_calls, args.live_talk, args.live_ramp = 50, 5.0, 1.0
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="callvault-pcap-bench-") as td:
        tmp = Path(td)
        if not args.skip_import:
            figures["import"] = bench_import(tmp, args.calls, args.concurrent, args.talk)
        if not args.skip_live:
            figures["live"] = bench_live(
                tmp, args.live_calls, args.live_talk, args.live_ramp, args.live_speed, args.sniff_cpus
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
