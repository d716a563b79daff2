"""Measure GET /metrics against a real `callvault web` process with many calls in the database.

    .venv/bin/python -m tests.ops.measure_metrics --backend sqlite --calls 100000
    .venv/bin/python -m tests.ops.measure_metrics --backend postgres --calls 100000 [--index]

SQLite: a file database in WAL mode, as the embedded default runs it. PostgreSQL: a
database of its own (created, then dropped) on 127.0.0.1 as postgres. Rows are
bulk-created with a realistic spread of states and one recording per finished call;
then the web process is asked for /metrics N times over HTTP and p50/p95/max are
printed, with the database share that /metrics reports for itself.
``--index`` adds the covering index suggested to the lead and measures again.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS call_state_counts_idx ON calls_call "
    "(state, recording_state, packets_received, packets_lost)"
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(n: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from callvault.apps.calls.models import Call
    from callvault.apps.recordings.models import Recording

    now = datetime.now(UTC)
    spread = [("completed", "ready")] * 960 + [("completed", "pending")] * 10
    spread += [("completed", "processing")] * 2 + [("cancelled", "none")] * 20
    spread += [("interrupted", "failed")] * 3
    spread += [("active", "recording")] * 4 + [("ringing", "recording")] * 1
    batch = 5000
    t0 = time.monotonic()
    for start in range(0, n, batch):
        calls = []
        for i in range(start, min(n, start + batch)):
            state, rs = spread[i % len(spread)]
            started = now - timedelta(seconds=(n - i) * 30)
            calls.append(
                Call(
                    state=state,
                    recording_state=rs,
                    started_at=started,
                    answered_at=started,
                    ended_at=started + timedelta(seconds=120) if state not in ("active", "ringing") else None,
                    duration=120.0,
                    caller_number=f"+8131234{i % 10000:04d}",
                    caller_name="山田 太郎",
                    callee_number=str(200 + i % 50),
                    sip_call_id=uuid.uuid4().hex + "@sbc.example.jp",
                    spool_key=uuid.uuid4().hex,
                    packets_received=12000,
                    packets_lost=i % 7,
                    metadata={"session_id": uuid.uuid4().hex, "extensions": {"x-acme": {"ucid": str(i)}}},
                )
            )
        Call.objects.bulk_create(calls)
        recs = [
            Recording(
                call=c,
                storage_key=f"{c.started_at:%Y/%m/%d}/{c.pk}.opus",
                format="opus",
                codec="opus",
                channels=2,
                sample_rate=48000,
                bytes=250_000,
                sha256="0" * 64,
                duration=120.0,
            )
            for c in calls
            if c.recording_state == "ready"
        ]
        Recording.objects.bulk_create(recs)
    # recordings were just created: spread their creation over the last hour, 3-20 s after hang-up
    recent = list(Recording.objects.order_by("-pk").values_list("pk", "call_id")[:1000])
    for k, (pk, call_id) in enumerate(recent):
        created = now - timedelta(seconds=k * 3)
        Call.objects.filter(pk=call_id).update(ended_at=created - timedelta(seconds=3 + k % 17))
        Recording.objects.filter(pk=pk).update(created_at=created)
    Recording.objects.filter(pk__lt=recent[-1][0]).update(created_at=now - timedelta(days=2))
    print(f"created {n} calls and their recordings in {time.monotonic() - t0:.1f} s", flush=True)


def analyze(env: dict[str, str], index: bool) -> None:
    code = (
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        + (f"    c.execute({INDEX_SQL!r})\n" if index else "    pass\n")
        + "    c.execute('VACUUM ANALYZE' if connection.vendor == 'postgresql' else 'ANALYZE')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)


def measure(env: dict[str, str], requests: int, label: str) -> None:
    port = free_port()
    log = open(Path(env["CALLVAULT_DATA_DIR"]) / "web.log", "ab")
    web = subprocess.Popen(
        [sys.executable, "-m", "callvault.cli", "web", "--http-port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise
                time.sleep(0.1)
        for _ in range(5):  # warm caches and connections
            urllib.request.urlopen(url, timeout=5).read()
        wall: list[float] = []
        db: list[float] = []
        for _ in range(requests):
            t = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=10).read().decode()
            wall.append((time.perf_counter() - t) * 1000)
            m = re.search(r'callvault_metrics_source_seconds\{source="database"\} (\S+)', body)
            db.append(float(m.group(1)) * 1000 if m else float("nan"))
        calls = re.search(r'callvault_calls\{state="completed"\} (\S+)', body)
        wall.sort()
        db.sort()
        q = statistics.quantiles(wall, n=20)
        print(
            f"{label}: GET /metrics over HTTP, {requests} requests: p50 {statistics.median(wall):.1f} ms, "
            f"p95 {q[18]:.1f} ms, max {wall[-1]:.1f} ms; database part p50 {statistics.median(db):.1f} ms, "
            f"p95 {statistics.quantiles(db, n=20)[18]:.1f} ms; completed calls reported "
            f"{calls.group(1) if calls else '?'}",
            flush=True,
        )
    finally:
        web.terminate()
        web.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--index", action="store_true", help="also measure with the suggested covering index")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="callvault-measure-"))
    env = {
        **os.environ,
        "CALLVAULT_DATA_DIR": str(data),
        "CALLVAULT_SECRET_KEY": "measure-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_SETTINGS_MODULE": "tests.ops.settings_wired",
        "CALLVAULT_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    db_name = ""
    if args.backend == "postgres":
        import psycopg

        db_name = f"callvault_measure_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{db_name}"
    try:
        os.environ.update(env)
        populate(args.calls)
        analyze(env, index=False)
        measure(env, args.requests, f"{args.backend}, {args.calls} calls")
        if args.index:
            analyze(env, index=True)
            measure(env, args.requests, f"{args.backend}, {args.calls} calls, with call_state_counts_idx")
    finally:
        if db_name:
            import psycopg
            from django.db import connections

            connections.close_all()
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
