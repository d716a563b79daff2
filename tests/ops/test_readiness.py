"""/readyz: every check passes on a healthy installation, and each failure is visible."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from callvault.apps.ops import readiness
from callvault.capture.metrics import write_snapshot
from tests.e2e.conftest import free_port
from tests.ops.test_metrics import snapshot

pytestmark = pytest.mark.django_db

CHECKS = {"database", "spool", "disk", "job_queue", "recorder"}


def readyz() -> tuple[int, dict[str, Any]]:
    r = Client().get("/readyz")
    return r.status_code, r.json()


def failing(body: dict[str, Any]) -> set[str]:
    return {name for name, c in body["checks"].items() if not c["ok"]}


def test_a_healthy_installation_is_ready(ops: Any) -> None:
    status, body = readyz()
    assert status == 200 and body["status"] == "ok"
    assert set(body["checks"]) == CHECKS and not failing(body)
    assert body["checks"]["database"]["vendor"] in ("sqlite", "postgresql")
    assert body["checks"]["job_queue"]["backend"] == "sqlite"
    assert body["checks"]["recorder"]["recorders"] == 0
    assert not list(ops.SPOOL_DIR.iterdir()), "the write probe leaves nothing behind"


@pytest.fixture
def read_only_spool(ops: Any) -> Iterator[Path]:
    """The spool directory on a read-only file system (a read-only bind mount; chmod for non-root)."""
    spool = ops.SPOOL_DIR
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", "-o", "ro", str(spool), str(spool)], check=True)
        try:
            yield spool
        finally:
            subprocess.run(["umount", str(spool)], check=True)
    else:
        spool.chmod(0o555)
        try:
            yield spool
        finally:
            spool.chmod(0o755)


def test_a_read_only_spool_makes_the_installation_not_ready(
    read_only_spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = readyz()
    assert status == 503 and body["status"] == "fail"
    assert failing(body) == {"spool"}
    detail = body["checks"]["spool"]["detail"]
    assert str(read_only_spool) in detail
    assert "Read-only file system" in detail or "Permission denied" in detail
    assert any("readiness check spool failed" in r.getMessage() for r in caplog.records)


def test_a_missing_spool_directory_is_not_ready(ops: Any) -> None:
    ops.SPOOL_DIR.rmdir()
    status, body = readyz()
    assert status == 503 and failing(body) == {"spool"}
    assert "not a directory" in body["checks"]["spool"]["detail"]


def test_an_unreachable_redis_is_not_ready_and_its_password_is_not_shown(
    ops: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ops.JOBS_BACKEND = "redis"
    ops.REDIS_URL = f"redis://:pa55w0rd-secret@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    status, body = readyz()
    assert time.monotonic() - started < 5
    assert status == 503 and failing(body) == {"job_queue"}
    detail = body["checks"]["job_queue"]["detail"]
    assert "ConnectionError" in detail and "refused" in detail.lower()
    assert "pa55w0rd" not in detail
    assert not any("pa55w0rd" in r.getMessage() for r in caplog.records)


def test_a_reachable_redis_queue_is_ready(ops: Any) -> None:
    ops.JOBS_BACKEND = "redis"
    ops.REDIS_URL = "redis://127.0.0.1:6379/14"
    status, body = readyz()
    assert status == 200 and body["checks"]["job_queue"]["backend"] == "redis"


def test_low_free_disk_space_is_not_ready(ops: Any) -> None:
    ops.MIN_FREE_DISK_BYTES = 2**62
    status, body = readyz()
    assert status == 503 and failing(body) == {"disk"}
    assert "free disk space below" in body["checks"]["disk"]["detail"]


def test_a_stale_or_unreadable_recorder_snapshot_is_not_ready(ops: Any) -> None:
    run = readiness.run_dir()
    run.mkdir(parents=True)
    write_snapshot(run / "recorder-pbx1-100.json", snapshot("pbx1-100", time.time()))
    status, body = readyz()
    assert status == 200 and body["checks"]["recorder"]["recorders"] == 1

    write_snapshot(run / "recorder-pbx1-100.json", snapshot("pbx1-100", time.time() - 11))
    status, body = readyz()
    assert status == 503 and failing(body) == {"recorder"}
    assert "pbx1-100: snapshot 11 s old" in body["checks"]["recorder"]["detail"]

    write_snapshot(run / "recorder-pbx1-100.json", snapshot("pbx1-100", time.time()))
    (run / "recorder-pbx1-200.json").write_text('{"schema": 99}')
    status, body = readyz()
    assert status == 503 and "pbx1-200: invalid" in body["checks"]["recorder"]["detail"]


def test_failures_are_logged_as_warnings(ops: Any, caplog: pytest.LogCaptureFixture) -> None:
    ops.MIN_FREE_DISK_BYTES = 2**62
    caplog.set_level(logging.WARNING, logger="callvault.ops")
    readyz()
    assert [r.levelname for r in caplog.records if "readiness check disk failed" in r.getMessage()] == [
        "WARNING"
    ]
