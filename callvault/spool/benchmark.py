"""Measure the spool hot path: ``python -m callvault.spool.benchmark``.

Prints ns per ``StreamSpool.append`` (alone, and including its share of the
flush that writes it), the same for the buffering alternatives that were
considered, and how long ``SpoolFlusher.flush_all`` takes for 2,000 streams each
holding 0.5 s of 20 ms packets (the recorder's timer interval).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from callvault.spool.writer import CallSpool, SpoolFlusher

PACKET = bytes(172)  # 12-byte RTP header + 160 bytes of G.711 (20 ms)
BATCH = 25  # packets per stream per 0.5 s flush
_H = struct.Struct("<dH")


class _Candidate:
    """Alternative buffering strategies, kept to justify the one StreamSpool uses."""

    def append(self, arrival: float, packet: bytes) -> None:
        raise NotImplementedError

    def take(self) -> bytes:
        raise NotImplementedError


class _BytearrayTwoConcat(_Candidate):
    def __init__(self) -> None:
        self.buf = bytearray()

    def append(self, arrival: float, packet: bytes) -> None:
        buf = self.buf
        buf += _H.pack(arrival, len(packet))
        buf += packet

    def take(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


class _PackIntoPrealloc(_Candidate):
    def __init__(self) -> None:
        self.buf = bytearray(1 << 16)
        self.off = 0

    def append(self, arrival: float, packet: bytes) -> None:
        off = self.off
        n = len(packet)
        _H.pack_into(self.buf, off, arrival, n)
        end = off + 10 + n
        self.buf[off + 10 : end] = packet
        self.off = end

    def take(self) -> bytes:
        data = bytes(self.buf[: self.off])
        self.off = 0
        return data


class _TupleListDeferredPack(_Candidate):
    def __init__(self) -> None:
        self.recs: list[tuple[float, bytes]] = []

    def append(self, arrival: float, packet: bytes) -> None:
        self.recs.append((arrival, packet))

    def take(self) -> bytes:
        pack = _H.pack
        data = b"".join([pack(t, len(p)) + p for t, p in self.recs])
        self.recs.clear()
        return data


def _time_appends(
    append: Callable[[float, bytes], object], take: Callable[[], object]
) -> tuple[float, float]:
    """Return (ns per append, ns per append including its share of the flush).

    Every candidate's flush ends with one os.write of its batch to a real file.
    """
    rounds = 4000
    best_append = best_total = float("inf")
    for _ in range(5):
        t_append = t_take = 0
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for _ in range(BATCH):
                append(1.0, PACKET)
            t1 = time.perf_counter_ns()
            take()
            t2 = time.perf_counter_ns()
            t_append += t1 - t0
            t_take += t2 - t1
        n = rounds * BATCH
        best_append = min(best_append, t_append / n)
        best_total = min(best_total, (t_append + t_take) / n)
    return best_append, best_total


def bench_append(root: Path) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    with CallSpool(root, "bench-append") as call:
        stream = call.open_stream(0)
        results["StreamSpool (list of pack()+packet, join+os.write)"] = _time_appends(
            stream.append, stream.flush
        )
    fd = os.open(root / "candidates.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for name, cls in (
            ("bytearray += pack(); += packet", _BytearrayTwoConcat),
            ("pack_into preallocated bytearray", _PackIntoPrealloc),
            ("list of (t, packet), pack at flush", _TupleListDeferredPack),
        ):
            candidate = cls()

            def flush(take: Callable[[], bytes] = candidate.take) -> None:
                os.write(fd, take())

            results[name] = _time_appends(candidate.append, flush)
    finally:
        os.close(fd)
    return results


def bench_flush_all(root: Path, streams: int = 2000, repeats: int = 10) -> tuple[float, float]:
    """Median and max ms of flush_all with ``streams`` streams of 25 packets each."""
    flusher = SpoolFlusher()
    calls = [CallSpool(root, f"bench-call-{i}", flusher=flusher) for i in range(streams // 2)]
    spools = [call.open_stream(n) for call in calls for n in (0, 1)]
    timings: list[float] = []
    try:
        for r in range(repeats):
            for spool in spools:
                for k in range(BATCH):
                    spool.append(r * 0.5 + k * 0.02, PACKET)
            t0 = time.perf_counter_ns()
            flusher.flush_all()
            timings.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        for call in calls:
            call.close()
    return statistics.median(timings), max(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="spool directory to write to (default: a temp dir)")
    parser.add_argument("--streams", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name, (append_ns, total_ns) in bench_append(Path(tmp)).items():
            print(f"{name:55s} append {append_ns:6.1f} ns   incl. flush share {total_ns:6.1f} ns")
        median_ms, max_ms = bench_flush_all(Path(tmp), args.streams)
        print(
            f"flush_all, {args.streams} streams x {BATCH} packets: "
            f"median {median_ms:.1f} ms, max {max_ms:.1f} ms"
        )


if __name__ == "__main__":
    main()
