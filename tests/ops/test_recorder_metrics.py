"""Recorder figures: counted by a real Recorder on loopback during a real SIPREC call."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callvault.apps.ops.exposition import render
from callvault.capture.metrics import (
    SCHEMA,
    RecorderMetrics,
    read_snapshots,
    remove_dead_snapshots,
    serve_metrics,
    snapshot_families,
    write_snapshot,
)
from callvault.capture.siprec_server import Recorder
from callvault.spool.reader import read_stream
from callvault.tools.siprec_client import Leg, SiprecClient
from tests.e2e.conftest import free_port, rtp_block
from tests.ops.conftest import parse, value


class WiredRecorder(Recorder):
    """The recorder with the metrics hook the lead adds to ``Recorder._end``."""

    def _end(self, s: Any, reason: str, *, send_bye: bool) -> None:
        if not s.ended:
            self.metrics.session_ended(s)
        super()._end(s, reason, send_bye=send_bye)


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * freq * t) * 6000).astype(np.int16)


async def _call_with_intruder(tmp_path: Path) -> dict[str, Any]:
    rec = WiredRecorder(
        spool_root=tmp_path / "spool",
        sip_host="127.0.0.1",
        sip_port=free_port(),
        rtp_range=rtp_block(),
    )
    rec.metrics = RecorderMetrics(rec, tmp_path / "run", host="testhost")
    rec._flush = rec.metrics.timed(rec._flush)  # type: ignore[method-assign]
    await rec.start()
    out: dict[str, Any] = {"before": rec.metrics.snapshot()}

    async def intruder() -> None:
        """Once both streams are latched to the client, send 7 packets from another source."""
        while not (
            rec.sessions and all(st.receiver.peer for s in rec.sessions.values() for st in s.streams.values())
        ):
            await asyncio.sleep(0.01)
        port = next(iter(rec.sessions.values())).streams[0].port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for i in range(7):
                sock.sendto(
                    struct.pack("!BBHII", 0x80, 0, i, i * 160, 0xBAD) + b"\xff" * 160, ("127.0.0.1", port)
                )
        await asyncio.sleep(0.6)  # a flush round (0.5 s) passes while the call runs
        out["during"] = rec.metrics.snapshot()
        rec.metrics.tick()
        out["file"] = read_snapshots(tmp_path / "run")

    task = asyncio.create_task(intruder())
    result = await SiprecClient(("127.0.0.1", rec.sip_port)).call(
        Leg("0312345678", "発信者", tone(2.0, 440)), Leg("201", "着信者", tone(2.0, 880))
    )
    await task
    out["result"] = result
    # the recorder may keep receiving for a moment after the BYE; wait until the ports are closed
    for _ in range(100):
        if rec.ports.in_use == 0:
            break
        await asyncio.sleep(0.02)
    out["after"] = rec.metrics.snapshot()
    rec.metrics.tick()
    out["families"] = snapshot_families(read_snapshots(tmp_path / "run"))
    out["path"] = rec.metrics.path
    await rec.stop()
    rec.metrics.close()
    return out


def test_a_real_call_is_counted_packet_for_packet(tmp_path: Path) -> None:
    out = asyncio.run(_call_with_intruder(tmp_path))
    result = out["result"]
    assert result.invite_status == 200 and result.bye_status == 200
    sent = sum(result.packets_sent)
    assert sent == 200
    # ground truth: the packets the recorder wrote to the spool (UDP may drop a few on a loaded box)
    spooled = sum(1 for path in (tmp_path / "spool").glob("*/stream-*.rtp") for _ in read_stream(path))
    assert sent * 0.97 <= spooled <= sent, (spooled, sent)

    before, during, after = out["before"], out["during"], out["after"]
    assert before["rtp_packets_received"] == 0 and before["sessions_active"] == 0
    assert during["sessions_active"] == 1 and 0 < during["rtp_packets_received"] < sent
    assert during["rtp_ports_in_use"] == 2
    assert after["sessions_active"] == 0 and after["sessions_ended"] == 1
    assert after["rtp_packets_received"] == spooled, "every packet of the ended call stays counted"
    assert after["rtp_foreign_packets_dropped"] == 7
    assert after["calls_answered"] == 1 and after["rtp_ports_in_use"] == 0
    assert after["sip"]["received"] >= 3  # INVITE, ACK, BYE
    assert after["sip"]["sent"] >= 2  # 200 to INVITE and to BYE
    flush = after["spool_flush_seconds"]
    assert sum(flush["counts"]) >= 2 and flush["sum"] > 0

    [snap] = out["file"]
    assert snap.fresh and snap.name.startswith("testhost-") and snap.data["rtp_packets_received"] > 0

    text = render(out["families"])
    samples, _ = parse(text)
    name = f"testhost-{os.getpid()}"
    assert value(samples, "callvault_recorder_rtp_packets_received_total", recorder=name) == spooled
    assert value(samples, "callvault_recorder_rtp_foreign_packets_dropped_total", recorder=name) == 7
    assert value(samples, "callvault_recorder_up", recorder=name) == 1
    assert not out["path"].exists(), "a clean stop removes the snapshot"


class _Receiver:
    def __init__(self, received: int, foreign: int) -> None:
        self.received, self.foreign, self.closed = received, foreign, False


class _Stream:
    def __init__(self, receiver: _Receiver) -> None:
        self.receiver = receiver


class _Session:
    def __init__(self, *receivers: _Receiver) -> None:
        self.streams = {i: _Stream(r) for i, r in enumerate(receivers)}


class _Rec:
    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], _Session] = {}


def test_a_session_ended_twice_is_counted_once() -> None:
    rec = _Rec()
    m = RecorderMetrics(rec, None)
    a, b = _Receiver(10, 1), _Receiver(10, 1)
    s = _Session(a, b)
    m.session_ended(s)
    m.session_ended(s)
    a.closed = b.closed = True
    snap = m.snapshot()
    assert (snap["sessions_ended"], snap["rtp_packets_received"], snap["rtp_foreign_packets_dropped"]) == (
        1,
        20,
        2,
    )


def test_packets_received_after_the_end_until_the_receiver_closes_are_counted_once() -> None:
    rec = _Rec()
    m = RecorderMetrics(rec, None)
    r = _Receiver(100, 0)
    s = _Session(r)
    rec.sessions[("call", "tag")] = s
    assert m.snapshot()["rtp_packets_received"] == 100
    m.session_ended(s)  # the session is still listed by the recorder: no double count
    assert m.snapshot()["rtp_packets_received"] == 100
    del rec.sessions[("call", "tag")]
    r.received = 103  # in-flight packets arrive during the grace period
    assert m.snapshot()["rtp_packets_received"] == 103
    r.received, r.closed = 104, True
    assert m.snapshot()["rtp_packets_received"] == 104
    assert m.snapshot()["rtp_packets_received"] == 104, "folded once"


def test_a_failing_flush_is_timed_and_still_raises(tmp_path: Path) -> None:
    m = RecorderMetrics(None, None)

    def flush() -> None:
        time.sleep(0.003)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        m.timed(flush)()
    assert sum(m.flush_counts) == 1 and m.flush_last >= 0.003
    assert m.timed(flush).__name__ == "flush"


def test_snapshot_writes_are_atomic_renames(tmp_path: Path) -> None:
    path = tmp_path / "recorder-h-1.json"
    write_snapshot(path, {"schema": SCHEMA, "written_at": 1.0})
    inode = path.stat().st_ino
    write_snapshot(path, {"schema": SCHEMA, "written_at": 2.0})
    assert path.stat().st_ino != inode, "replaced by rename, never rewritten in place"
    assert json.loads(path.read_text())["written_at"] == 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["recorder-h-1.json"]


def test_a_snapshot_that_cannot_be_written_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    m = RecorderMetrics(type("R", (), {"sessions": {}})(), run, host="h")
    run.rmdir()
    (tmp_path / "run").write_text("not a directory")
    m.tick()
    m.tick()
    assert len([r for r in caplog.records if "cannot write metrics snapshot" in r.getMessage()]) == 1


def test_snapshots_left_by_dead_recorders_of_this_host_are_removed(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the default pid_max of 4194304: no such process
    (tmp_path / f"recorder-pbx-{dead}.json").write_text("{}")
    (tmp_path / f"recorder-pbx-{os.getpid()}.json").write_text("{}")
    (tmp_path / f"recorder-other-{dead}.json").write_text("{}")
    assert remove_dead_snapshots(tmp_path, "pbx") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"recorder-other-{dead}.json",
        f"recorder-pbx-{os.getpid()}.json",
    ]


async def _http(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_the_recorder_serves_its_own_metrics_port(tmp_path: Path) -> None:
    async def run() -> list[tuple[int, bytes]]:
        m = RecorderMetrics(type("R", (), {"sessions": {}, "stats": {"calls": 4}})(), None, host="edge")
        port = free_port()
        open_server = await serve_metrics(m, "127.0.0.1", port)
        token_server_port = free_port()
        token_server = await serve_metrics(
            m, "127.0.0.1", token_server_port, token="tok", trust_loopback=False
        )
        try:
            return [
                await _http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                await _http(port, b"GET /other HTTP/1.1\r\n\r\n"),
                await _http(port, b"POST /metrics HTTP/1.1\r\n\r\n"),
                await _http(port, b"garbage\r\n\r\n"),
                await _http(token_server_port, b"GET /metrics HTTP/1.1\r\n\r\n"),
                await _http(
                    token_server_port, b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n"
                ),
                await _http(token_server_port, b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer tok\r\n\r\n"),
            ]
        finally:
            open_server.close()
            token_server.close()

    answers = asyncio.run(run())
    assert [status for status, _ in answers] == [200, 404, 405, 400, 403, 403, 200]
    samples, _ = parse(answers[0][1].decode())
    assert value(samples, "callvault_recorder_calls_answered_total", recorder=f"edge-{os.getpid()}") == 4
    assert answers[6][1] == answers[0][1]
