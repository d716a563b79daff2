"""PBX events and the recording completeness check: CPU cost per event, per checked call, per file.

    .venv/bin/python benchmarks/pbx_completeness.py [--events 2000] [--calls 200] [--seconds 60]

Runs in-process on a fresh SQLite data directory (the embedded default) under a temp dir, and
prints CPU time (time.process_time of this process, so other work on the machine does not count)
and wall time:

* PBX events: ``--events`` signed events through the full Django stack (test client: middleware,
  signature check, parsing, the call row, the event log, live publish), as ringing/answered/ended
  triples of ``--events / 3`` calls.
* completeness: ``--calls`` answered calls with a real stereo Opus recording of ``--seconds``
  seconds each (encoded once, copied), checked by ``run_check`` (decode + energy per channel).
* storage scan: ``scan_storage`` over those files plus as many orphans.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cv-bench-pbx-"))
    os.environ["CALLVAULT_DATA_DIR"] = str(data)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.RECORDINGS_DIR.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    try:
        figures = {**bench_events(args.events), **bench_completeness(args.calls, args.seconds)}
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    return 0


def bench_events(n: int) -> dict[str, float]:
    from django.test import Client
    from django.utils import timezone

    from callvault.apps.pbx.models import Integration
    from callvault.apps.webhooks.signing import sign_header

    integration = Integration.objects.create(name="bench")
    client = Client()
    now = timezone.now()
    bodies = []
    for i in range(n // 3):
        for k, kind in enumerate(("ringing", "answered", "ended")):
            event = {
                "event": kind,
                "call_id": f"b{i}",
                "caller": f"03{i:08d}",
                "extension": "201",
                "time": (now - timedelta(seconds=300 - k * 60)).isoformat(),
            }
            bodies.append(json.dumps(event).encode())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for body in bodies:
        r = client.post(
            "/api/v1/events",
            body,
            content_type="application/json",
            headers={
                "X-Callvault-Key": integration.key,
                "X-Callvault-Signature": sign_header(integration.secret, body),
            },
        )
        assert r.status_code == 200, r.content
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "events": len(bodies),
        "event_cpu_ms": round(cpu / len(bodies) * 1000, 3),
        "events_per_cpu_second": round(len(bodies) / cpu, 1),
        "event_wall_ms": round(wall / len(bodies) * 1000, 3),
    }


def bench_completeness(n: int, seconds: float) -> dict[str, float]:
    import numpy as np
    from django.conf import settings
    from django.utils import timezone

    from callvault.apps.calls.models import Call
    from callvault.apps.completeness.services import run_check, scan_storage
    from callvault.apps.recordings.models import Recording
    from callvault.media.encode import encode_recording

    rate = 8000
    t = np.arange(int(seconds * rate)) / rate
    pcm = np.stack([np.sin(2 * np.pi * 440 * t) * 6000, np.sin(2 * np.pi * 880 * t) * 6000], axis=1).astype(
        np.int16
    )
    sample = Path(tempfile.mkdtemp()) / "sample.opus"
    info = encode_recording(pcm, rate, "opus", sample)
    ended = timezone.now() - timedelta(hours=1)
    ids = []
    for i in range(n):
        call = Call.objects.create(
            state="completed",
            recording_state="ready",
            started_at=ended - timedelta(seconds=seconds),
            answered_at=ended - timedelta(seconds=seconds),
            ended_at=ended,
            duration=seconds,
            caller_number=f"+8131234{i:04d}",
            callee_number="201",
        )
        key = f"2026/11/27/{call.pk}.opus"
        dest = settings.RECORDINGS_DIR / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample, dest)
        (settings.RECORDINGS_DIR / f"2026/11/27/{uuid.uuid4()}.opus").write_bytes(b"x")  # an orphan
        Recording.objects.create(
            call=call,
            storage_key=key,
            format="opus",
            codec=info.codec,
            channels=2,
            sample_rate=info.sample_rate,
            bytes=info.bytes,
            sha256=info.sha256,
            duration=info.duration,
            channel_map={"left": "caller", "right": "callee"},
        )
        ids.append(call.pk)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = run_check(limit=n + 10)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert summary.checked >= n and summary.flagged == 0, summary.as_dict()
    cpu1 = time.process_time()
    seen, orphans = scan_storage()
    scan_cpu = time.process_time() - cpu1
    assert orphans == n, (seen, orphans)
    return {
        "checked_calls": n,
        "recording_seconds": seconds,
        "check_cpu_ms_per_call": round(cpu / n * 1000, 2),
        "check_wall_ms_per_call": round(wall / n * 1000, 2),
        "scan_files": seen,
        "scan_cpu_ms_per_1000_files": round(scan_cpu / seen * 1_000_000, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
