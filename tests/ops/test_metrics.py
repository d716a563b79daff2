"""/metrics against the database, the job queue and recorder snapshot files."""

from __future__ import annotations

import math
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone

from callvault.apps.calls.models import Call, CallState, RecordingState
from callvault.apps.ops import collect, readiness
from callvault.apps.recordings.models import Recording
from callvault.capture.metrics import FLUSH_BUCKETS, SCHEMA, write_snapshot
from tests.e2e.conftest import free_port
from tests.ops.conftest import make_call, scrape, value

pytestmark = pytest.mark.django_db

REDIS = "redis://127.0.0.1:6379/14"


def add_recording(call: Call, latency: float, *, age: timedelta = timedelta(0)) -> Recording:
    rec = Recording.objects.create(
        call=call,
        storage_key=f"2026/11/27/{call.pk}.opus",
        format="opus",
        codec="opus",
        channels=2,
        sample_rate=48000,
        bytes=1000,
        sha256="0" * 64,
        duration=60.0,
    )
    created = timezone.now() - age
    Call.objects.filter(pk=call.pk).update(ended_at=created - timedelta(seconds=latency))
    Recording.objects.filter(pk=rec.pk).update(created_at=created)
    return rec


def test_call_and_recording_counts_match_the_database(ops: Any) -> None:
    spread = [
        ("ringing", "recording", 2),
        ("active", "recording", 3),
        ("completed", "ready", 5),
        ("completed", "pending", 4),
        ("completed", "processing", 1),
        ("cancelled", "none", 2),
        ("interrupted", "failed", 1),
    ]
    for state, recording_state, n in spread:
        for i in range(n):
            make_call(state=state, recording_state=recording_state, packets_received=100 + i, packets_lost=i)

    samples, types, _ = scrape()

    for state in CallState.values:
        assert value(samples, "callvault_calls", state=state) == Call.objects.filter(state=state).count()
    for rs in RecordingState.values:
        assert (
            value(samples, "callvault_recordings", recording_state=rs)
            == Call.objects.filter(recording_state=rs).count()
        )
    assert value(samples, "callvault_calls_active") == 5
    assert value(samples, "callvault_finalize_queue_depth") == 5
    assert types["callvault_calls"] == "gauge" and types["callvault_finalize_latency_seconds"] == "summary"
    assert value(samples, "callvault_metrics_source_up", source="database") == 1


def test_a_state_outside_the_usual_spread_is_counted_exactly(ops: Any) -> None:
    """The dominant states are derived from the total: a table with none of them must say 0."""
    make_call(state="failed", recording_state="failed")
    make_call(state="cancelled", recording_state="none")
    samples, _, _ = scrape()
    assert value(samples, "callvault_calls", state="completed") == 0
    assert value(samples, "callvault_recordings", recording_state="ready") == 0
    assert value(samples, "callvault_calls", state="failed") == 1
    assert sum(v for (name, _), v in samples.items() if name == "callvault_calls") == 2


def test_the_states_named_in_the_collector_are_real_choices() -> None:
    assert set(collect.LIVE) | {collect.DOMINANT_STATE} <= set(CallState.values)
    assert set(collect.WAITING) | {collect.DOMINANT_RECORDING} <= set(RecordingState.values)


def test_oldest_waiting_recording_age_comes_from_the_earliest_hang_up(ops: Any) -> None:
    now = timezone.now()
    make_call(recording_state="pending", ended_at=now - timedelta(seconds=300))
    make_call(recording_state="processing", ended_at=now - timedelta(seconds=40))
    make_call(recording_state="ready", ended_at=now - timedelta(days=3))
    samples, _, _ = scrape()
    assert value(samples, "callvault_finalize_oldest_waiting_seconds") == pytest.approx(300, abs=5)


def test_an_empty_installation_reports_zeros_and_no_latency(ops: Any) -> None:
    samples, _, _ = scrape()
    assert value(samples, "callvault_calls", state="active") == 0
    assert value(samples, "callvault_finalize_oldest_waiting_seconds") == 0
    assert math.isnan(value(samples, "callvault_finalize_latency_seconds", quantile="0.5"))
    assert value(samples, "callvault_finalize_latency_seconds_count") == 0


def test_finalize_latency_quantiles_cover_only_the_recent_window(ops: Any) -> None:
    for latency in range(1, 11):  # 1..10 s, just now
        add_recording(make_call(), float(latency))
    add_recording(make_call(), 500.0, age=timedelta(hours=2))  # outside the 15-minute window
    samples, _, _ = scrape()
    assert value(samples, "callvault_finalize_latency_seconds", quantile="0.5") == pytest.approx(5, abs=0.01)
    assert value(samples, "callvault_finalize_latency_seconds", quantile="0.9") == pytest.approx(9, abs=0.01)
    assert value(samples, "callvault_finalize_latency_seconds", quantile="0.99") == pytest.approx(
        10, abs=0.01
    )
    assert value(samples, "callvault_finalize_latency_seconds_count") == 10
    assert value(samples, "callvault_finalize_latency_seconds_sum") == pytest.approx(55, abs=0.05)
    assert value(samples, "callvault_finalize_latency_max_seconds") == pytest.approx(10, abs=0.01)


def test_finalized_recordings_are_counted_from_the_first_scrape_on_and_never_twice(ops: Any) -> None:
    add_recording(make_call(packets_received=1000, packets_lost=10), 4.0, age=timedelta(minutes=5))
    samples, types, _ = scrape()
    assert types["callvault_recorded_packets_received"] == "counter"
    assert value(samples, "callvault_recordings_finalized_total") == 0, "history is not counted"
    assert value(samples, "callvault_recorded_packets_received_total") == 0
    assert value(samples, "callvault_finalize_latency_seconds_count") == 1, "but it is in the latency window"

    fresh = add_recording(make_call(packets_received=500, packets_lost=5), 2.0)
    for _ in range(2):
        samples, _, _ = scrape()
        assert value(samples, "callvault_recordings_finalized_total") == 1
        assert value(samples, "callvault_recorded_packets_received_total") == 500
        assert value(samples, "callvault_recorded_packets_lost_total") == 5
        assert value(samples, "callvault_finalize_latency_seconds_count") == 2

    # a minute later the row is settled into the running totals: the figures stay the same
    Recording.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(seconds=90))
    samples, _, _ = scrape()
    assert collect.FINALIZED.settled_id == fresh.pk
    assert value(samples, "callvault_recordings_finalized_total") == 1
    assert value(samples, "callvault_recorded_packets_received_total") == 500

    add_recording(make_call(packets_received=70, packets_lost=1), 1.0)
    samples, _, _ = scrape()
    assert value(samples, "callvault_recordings_finalized_total") == 2
    assert value(samples, "callvault_recorded_packets_received_total") == 570
    assert value(samples, "callvault_recorded_packets_lost_total") == 6


def test_metrics_carry_no_call_details(ops: Any) -> None:
    call = make_call(
        caller_number="+819011112222",
        caller_name="秘密 花子",
        callee_number="+81355556666",
        callee_name="受付",
    )
    add_recording(call, 3.0)
    _, _, text = scrape()
    for secret in (
        "+819011112222",
        "9011112222",
        "秘密",
        "+81355556666",
        call.sip_call_id,
        str(call.pk),
        call.pk.hex,
        "storage_key",
        str(call.pk) + ".opus",
    ):
        assert secret not in text


def test_job_queue_length_is_read_from_redis(ops: Any) -> None:
    name = f"opstest{uuid.uuid4().hex[:8]}"
    ops.JOBS_BACKEND = "redis"
    ops.REDIS_URL = REDIS
    ops.HUEY = {**ops.HUEY, "name": name}
    client = redis.Redis.from_url(REDIS)
    key = f"huey.redis.{name}"
    try:
        client.lpush(key, b"job-1", b"job-2", b"job-3")
        samples, _, _ = scrape()
        assert value(samples, "callvault_job_queue_length", backend="redis") == 3
        client.rpop(key)
        samples, _, _ = scrape()
        assert value(samples, "callvault_job_queue_length", backend="redis") == 2
    finally:
        client.delete(key)


def test_job_queue_length_on_the_embedded_sqlite_queue(ops: Any) -> None:
    from huey.contrib.djhuey import HUEY

    from callvault.apps.recordings.tasks import enqueue_finalize

    HUEY.flush()
    try:
        enqueue_finalize(str(uuid.uuid4()))
        enqueue_finalize(str(uuid.uuid4()))
        samples, _, _ = scrape()
        assert value(samples, "callvault_job_queue_length", backend="sqlite") == 2
    finally:
        HUEY.flush()


def test_an_unreachable_queue_is_reported_down_and_everything_else_still_served(ops: Any) -> None:
    ops.JOBS_BACKEND = "redis"
    ops.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    make_call(state="active", recording_state="recording")
    samples, _, _ = scrape()
    assert value(samples, "callvault_metrics_source_up", source="job_queue") == 0
    assert not [k for k in samples if k[0] == "callvault_job_queue_length"]
    assert value(samples, "callvault_metrics_source_up", source="database") == 1
    assert value(samples, "callvault_calls_active") == 1


def snapshot(name: str, written_at: float, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "recorder": name,
        "host": name.rsplit("-", 1)[0],
        "pid": int(name.rsplit("-", 1)[1]),
        "started_at": written_at - 100,
        "written_at": written_at,
        "sessions_active": 2,
        "sessions_ended": 7,
        "calls_answered": 9,
        "calls_rejected": 1,
        "rtp_packets_received": 123456,
        "rtp_foreign_packets_dropped": 17,
        "rtp_ports_in_use": 4,
        "rtp_ports_capacity": 5000,
        "sip": {"received": 40, "sent": 44, "dropped": 3, "bad_requests": 2, "retransmissions": 1},
        "spool_flush_seconds": {
            "buckets": list(FLUSH_BUCKETS),
            "counts": [5, 3] + [0] * (len(FLUSH_BUCKETS) - 2) + [1],
            "sum": 2.5,
            "last": 0.0007,
        },
    }
    data.update(over)
    return data


def test_recorder_snapshots_become_series_labelled_by_recorder(ops: Any) -> None:
    run = readiness.run_dir()
    run.mkdir(parents=True)
    now = time.time()
    write_snapshot(run / "recorder-pbx1-100.json", snapshot("pbx1-100", now))
    write_snapshot(run / "recorder-pbx1-200.json", snapshot("pbx1-200", now - 60, sessions_active=0))
    (run / "recorder-pbx1-300.json").write_text("{torn")
    samples, types, _ = scrape()

    assert value(samples, "callvault_recorder_up", recorder="pbx1-100") == 1
    assert value(samples, "callvault_recorder_up", recorder="pbx1-200") == 0
    assert value(samples, "callvault_recorder_up", recorder="pbx1-300") == 0
    assert value(samples, "callvault_recorder_snapshot_age_seconds", recorder="pbx1-200") >= 59
    assert value(samples, "callvault_recorder_sessions_active", recorder="pbx1-100") == 2
    assert value(samples, "callvault_recorder_rtp_packets_received_total", recorder="pbx1-100") == 123456
    assert value(samples, "callvault_recorder_rtp_foreign_packets_dropped_total", recorder="pbx1-100") == 17
    assert (
        value(samples, "callvault_recorder_sip_messages_total", recorder="pbx1-100", event="received") == 40
    )
    assert value(samples, "callvault_recorder_sip_messages_total", recorder="pbx1-100", event="dropped") == 3
    assert (
        value(samples, "callvault_recorder_sip_messages_total", recorder="pbx1-100", event="bad_requests")
        == 2
    )
    assert value(samples, "callvault_recorder_calls_answered_total", recorder="pbx1-100") == 9
    assert (
        value(samples, "callvault_recorder_spool_flush_seconds_bucket", recorder="pbx1-100", le="0.0005") == 5
    )
    assert (
        value(samples, "callvault_recorder_spool_flush_seconds_bucket", recorder="pbx1-100", le="0.001") == 8
    )
    assert value(samples, "callvault_recorder_spool_flush_seconds_count", recorder="pbx1-100") == 9
    assert types["callvault_recorder_rtp_packets_received"] == "counter"
    assert types["callvault_recorder_spool_flush_seconds"] == "histogram"


def test_request_latency_histogram_is_part_of_the_output(ops: Any) -> None:
    from django.test import Client

    c = Client()
    assert c.get("/readyz").status_code == 200
    samples, _, _ = scrape(c)
    assert (
        value(samples, "callvault_http_request_duration_seconds_count", route="ops:readyz", status="2xx") == 1
    )


def test_the_run_directory_is_only_read(ops: Any) -> None:
    run = readiness.run_dir()
    scrape()
    assert not run.exists()


def test_a_scrape_costs_five_indexed_queries_whatever_the_table_size(ops: Any) -> None:
    """Guards the 100,000-call budget without a timing assertion: on SQLite every query the scrape
    issues must be an index search, except the bare COUNT(*)s of the calls and of the (small)
    orphan-file table (counted from b-tree pages)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(20):
        add_recording(make_call(packets_received=i), 2.0, age=timedelta(minutes=2))
    scrape()  # the first scrape of a process reads the newest recordings once
    add_recording(make_call(), 1.0)
    with CaptureQueriesContext(connection) as ctx:
        samples, _, _ = scrape()
    assert value(samples, "callvault_recordings_finalized_total") == 1
    # calls and recordings, finalize latency, the job queue, flagged calls by reason, orphan files
    assert len(ctx.captured_queries) == 5, [q["sql"] for q in ctx.captured_queries]
    if connection.vendor != "sqlite":
        return
    table_scans: list[str] = []
    with connection.cursor() as cursor:
        for q in ctx.captured_queries:
            cursor.execute("EXPLAIN QUERY PLAN " + q["sql"])
            table_scans += [
                row[3] for row in cursor.fetchall() if row[3].startswith("SCAN ") and "CONSTANT" not in row[3]
            ]
    assert [scan.split(" USING ")[0] for scan in sorted(table_scans)] == [
        "SCAN calls_call",
        "SCAN completeness_orphanfile",
    ], table_scans
    first = ctx.captured_queries[0]["sql"]
    assert first.startswith('SELECT (SELECT COUNT(*) FROM "calls_call"), '), first
