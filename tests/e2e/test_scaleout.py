"""Scale-out for real: recorder, worker and web as separate processes on PostgreSQL and Redis.

Each test gets a PostgreSQL database of its own (created on 127.0.0.1 as postgres,
dropped afterwards) and a huey queue name of its own in a Redis database; the
processes share one data directory for the spool and the recordings, as on one
host or a shared file system.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from callvault.tools.siprec_client import CallResult, Leg, SiprecClient
from tests.e2e.conftest import REPO, free_port, rtp_block, sip_ping

pytestmark = pytest.mark.e2e

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_DB = 11
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


@dataclass
class Cluster:
    """callvault split into its parts, each a process of its own, sharing PostgreSQL and Redis."""

    data_dir: Path
    db_name: str
    queue: str
    sip_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    recorder_metrics_port: int = field(default_factory=free_port)
    rtp_range: tuple[int, int] = field(default_factory=rtp_block)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.db_name}"

    @property
    def queue_key(self) -> str:
        return f"huey.redis.{self.queue}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "CALLVAULT_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "CALLVAULT_QUEUE_NAME": self.queue,
            **extra,
        }

    def cli(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "callvault.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        assert proc.returncode == 0, f"callvault {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def start(self, name: str, *extra_args: str, **extra_env: str) -> None:
        args = [sys.executable, "-m", "callvault.cli", name, *extra_args]
        if name == "recorder":
            args += ["--sip-host", "127.0.0.1", "--sip-port", str(self.sip_port)]
            args += ["--rtp-ports", f"{self.rtp_range[0]}-{self.rtp_range[1]}"]
        elif name == "web":
            args += ["--http-host", "127.0.0.1", "--http-port", str(self.http_port)]
        starts = self.log(name).count("worker started")
        log = (self.data_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            args, env=self.env(**extra_env), stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
        if name == "recorder":
            self.wait(lambda: sip_ping(self.sip_port), 30, "the recorder answering OPTIONS")
        elif name == "web":
            self.wait(lambda: self.http("/healthz")[0] == 200, 30, "the web process answering /healthz")
        elif name == "worker":
            self.wait(lambda: self.log(name).count("worker started") > starts, 30, "the worker starting")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}"
            result = predicate()
            if result:
                return result
            time.sleep(every)
        logs = "\n".join(f"--- {n} log ---\n{self.log(n)[-3000:]}" for n in ("recorder", "worker", "web"))
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")

    def http(self, path: str, port: int | None = None) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.http_port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def calls(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("calls", "--json", "--limit", "1000"))  # type: ignore[no-any-return]

    def wait_ready(self, n: int, timeout: float = 60) -> list[dict[str, Any]]:
        def ready() -> list[dict[str, Any]] | None:
            calls = self.calls()
            return calls if len([c for c in calls if c["recording_state"] == "ready"]) == n else None

        return self.wait(ready, timeout, f"{n} recording(s) ready", every=0.5)  # type: ignore[no-any-return]

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    token = secrets.token_hex(5)
    c = Cluster(data_dir=tmp_path / "data", db_name=f"callvault_e2e_{token}", queue=f"e2e{token}")
    c.data_dir.mkdir()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(c.db_name)))
    r = redis.Redis.from_url(REDIS_URL)
    try:
        c.cli("manage", "migrate", "--noinput", "-v", "0")
        yield c
    finally:
        for name in list(c.procs):
            c.stop(name)
        keys = list(r.scan_iter(match=f"huey.*{c.queue}*"))
        if keys:
            r.delete(*keys)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(c.db_name)))


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * freq * t) * 6000).astype(np.int16)


def place_calls(c: Cluster, n: int, seconds: float) -> list[CallResult]:
    async def run() -> list[CallResult]:
        client = SiprecClient(("127.0.0.1", c.sip_port))
        return list(
            await asyncio.gather(
                *(
                    client.call(
                        Leg(f"031234567{i}", f"発信者 {i}", tone(seconds, 440 + 100 * i)),
                        Leg(f"20{i}", f"着信者 {i}", tone(seconds, 880 + 100 * i)),
                    )
                    for i in range(n)
                )
            )
        )

    results = asyncio.run(run())
    for r in results:
        assert r.invite_status == 200 and r.bye_status == 200, r
    return results


def assert_recordings_stored(calls: list[dict[str, Any]], seconds: float) -> None:
    for call in calls:
        assert call["state"] == "completed" and call["recording_state"] == "ready", call
        rec = call["recording"]
        path = Path(rec["path"])
        assert path.is_file(), path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
        assert path.stat().st_size == rec["bytes"]
        assert abs(rec["duration"] - seconds) < 0.3, rec


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_split_processes_record_calls_through_postgres_and_redis(cluster: Cluster) -> None:
    c = cluster
    c.start("recorder", "--metrics-port", str(c.recorder_metrics_port))
    c.start("worker")
    c.start("web")
    assert "worker started (redis queue" in c.log("worker")

    results = place_calls(c, 2, seconds=3.0)
    calls = c.wait_ready(2)
    assert_recordings_stored(calls, 3.0)
    assert sorted(c["caller_number"] for c in calls) == ["+81312345670", "+81312345671"]
    # the calls are in PostgreSQL, not in an embedded SQLite file
    assert c.sql("SELECT count(*) FROM calls_call WHERE recording_state = 'ready'") == [(2,)]
    assert not (c.data_dir / "callvault.sqlite3").exists()
    assert not (c.data_dir / "jobs.sqlite3").exists()

    status, body = c.http("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    # the recorder's snapshot reaches the web process through the shared data directory
    c.wait(lambda: list((c.data_dir / "run").glob("recorder-*.json")), 10, "a recorder snapshot")
    status, body = c.http("/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["status"] == "ok", ready
    assert ready["checks"]["database"]["vendor"] == "postgresql"
    assert ready["checks"]["job_queue"]["backend"] == "redis"
    assert ready["checks"]["recorder"]["recorders"] == 1

    # UDP on a loaded machine may drop a few packets even on loopback: what the recorder counted,
    # what finalize found in the spool and what /metrics says must agree with each other
    sent = sum(sum(r.packets_sent) for r in results)
    received = sum(s["received"] for call in calls for s in call["streams"])
    assert sent * 0.97 <= received <= sent, (received, sent)

    def recorder_caught_up() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        status, body = c.http("/metrics")
        assert status == 200
        samples = metric_samples(body.decode())
        up = [k for k in samples if k[0] == "callvault_recorder_rtp_packets_received_total"]
        return samples if up and samples[up[0]] == received else None

    samples = c.wait(recorder_caught_up, 10, "the recorder snapshot counting every packet")
    assert sample(samples, "callvault_calls", state="completed") == 2
    assert sample(samples, "callvault_calls_active") == 0
    assert sample(samples, "callvault_recordings", recording_state="ready") == 2
    assert sample(samples, "callvault_finalize_queue_depth") == 0
    assert sample(samples, "callvault_job_queue_length", backend="redis") == 0
    assert sample(samples, "callvault_recordings_finalized_total") == 2
    assert sample(samples, "callvault_recorded_packets_received_total") == received
    assert sample(samples, "callvault_finalize_latency_seconds_count") == 2
    assert 0 < sample(samples, "callvault_finalize_latency_seconds", quantile="0.99") < 30
    [recorder] = [dict(k[1])["recorder"] for k in samples if k[0] == "callvault_recorder_up"]
    assert recorder.endswith(f"-{c.procs['recorder'].pid}")
    assert sample(samples, "callvault_recorder_up", recorder=recorder) == 1
    assert sample(samples, "callvault_recorder_sessions_active", recorder=recorder) == 0
    assert sample(samples, "callvault_recorder_calls_answered_total", recorder=recorder) == 2
    assert sample(samples, "callvault_recorder_rtp_foreign_packets_dropped_total", recorder=recorder) == 0
    assert sample(samples, "callvault_recorder_sip_messages_total", recorder=recorder, event="received") >= 6
    assert sample(samples, "callvault_recorder_spool_flush_seconds_count", recorder=recorder) >= 4
    assert (
        sample(samples, "callvault_http_request_duration_seconds_count", route="ops:readyz", status="2xx")
        == 1
    )
    assert (
        sample(samples, "callvault_http_request_duration_seconds_count", route="web:healthz", status="2xx")
        >= 2
    )
    for source in ("database", "job_queue", "recorder_snapshots"):
        assert sample(samples, "callvault_metrics_source_up", source=source) == 1

    # the recorder also answers /metrics itself (for recorders on hosts of their own)
    status, body = c.http("/metrics", port=c.recorder_metrics_port)
    assert status == 200
    own = metric_samples(body.decode())
    assert sample(own, "callvault_recorder_rtp_packets_received_total", recorder=recorder) == received
    assert sample(own, "callvault_recorder_calls_answered_total", recorder=recorder) == 2

    # a cleanly stopped recorder removes its snapshot; the installation stays ready without it
    c.stop("recorder")
    assert not list((c.data_dir / "run").glob("recorder-*.json"))
    status, body = c.http("/readyz")
    assert status == 200 and json.loads(body)["checks"]["recorder"]["recorders"] == 0


def test_a_worker_killed_mid_queue_is_restarted_and_every_call_is_finalized(cluster: Cluster) -> None:
    c = cluster
    c.start("recorder")
    c.start("worker")
    c.stop("worker", signal.SIGKILL)
    r = redis.Redis.from_url(REDIS_URL)

    seconds = 6.0
    place_calls(c, 3, seconds=seconds)

    # the recorder queued one finalize job per call in Redis; nobody has taken them (the killed
    # worker may have left a periodic or start-up task there too: count the finalize jobs)
    def finalize_jobs() -> int:
        return sum(b"finalize_call_task" in m for m in r.lrange(c.queue_key, 0, -1))

    c.wait(lambda: finalize_jobs() == 3, 20, "3 finalize jobs in the Redis queue")
    assert c.sql("SELECT recording_state, count(*) FROM calls_call GROUP BY 1") == [("pending", 3)]

    # a worker with one thread takes the first job; it is killed while finalizing
    c.start("worker", CALLVAULT_JOB_WORKERS="1")
    c.wait(
        lambda: c.sql("SELECT 1 FROM calls_call WHERE recording_state <> 'pending'"),
        30,
        "the worker claiming a call",
        every=0.002,
    )
    c.stop("worker", signal.SIGKILL)
    at_kill = dict(c.sql("SELECT id::text, recording_state FROM calls_call"))
    assert sum(1 for s in at_kill.values() if s != "ready") >= 2, at_kill

    # the jobs in Redis are lost too (a Redis restart without persistence): only the sweep remains
    r.delete(c.queue_key)
    # a claim stays "processing" for finalize.STALE_CLAIM (10 min) before the sweep may take it
    # over; let those ten minutes pass in the database
    stuck = c.sql(
        "UPDATE calls_call SET updated_at = updated_at - interval '11 minutes' "
        "WHERE recording_state = 'processing' RETURNING id::text"
    )

    c.start("worker")
    # the restarted worker's sweep (it runs before "worker started") queued the waiting calls again
    waiting = sum(1 for s in at_kill.values() if s != "ready")
    assert f"sweep: queued {waiting} call(s)" in c.log("worker").split("worker started")[-2]
    calls = c.wait_ready(3, timeout=90)
    assert_recordings_stored(calls, seconds)
    attempts = dict(c.sql("SELECT id::text, finalize_attempts FROM calls_call"))
    for (call_id,) in stuck:
        assert attempts[call_id] == 2, (call_id, attempts)
    assert c.sql("SELECT count(*) FROM recordings_recording") == [(3,)]
    assert not [p for p in (c.data_dir / "spool").iterdir() if p.is_dir()], "every spool was removed"
