"""Readiness checks for /readyz: each says ok or what is wrong, none may hang for long."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from callvault.apps.ops import jobqueue

DEFAULT_MIN_FREE_BYTES = 1024**3


class CheckFailed(Exception):
    pass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    ms: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, detailed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok}
        if detailed:
            out["ms"] = round(self.ms, 2)
            if self.detail:
                out["detail"] = self.detail
            out.update(self.data)
        return out


def run_check(name: str, fn: Callable[[], dict[str, Any] | None]) -> Check:
    start = time.perf_counter()
    try:
        data = fn() or {}
    except Exception as exc:
        detail = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
        return Check(name, False, jobqueue.redact(detail)[:500], (time.perf_counter() - start) * 1000)
    return Check(name, True, "", (time.perf_counter() - start) * 1000, data)


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_writable(path: Path) -> dict[str, Any]:
    """Create, write and remove a small file in ``path``: the real test of writability."""
    if not path.is_dir():
        raise CheckFailed(f"{path} is not a directory")
    try:
        fd, name = tempfile.mkstemp(dir=path, prefix=".readyz-")
    except OSError as exc:
        raise CheckFailed(f"cannot create a file in {path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, b"ok\n")
    finally:
        os.close(fd)
        os.unlink(name)
    return {}


def min_free_bytes() -> int:
    return int(getattr(settings, "MIN_FREE_DISK_BYTES", DEFAULT_MIN_FREE_BYTES))


def _existing(path: Path) -> Path:
    """The path, or its nearest existing ancestor: the file system it is (or would be) on."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk() -> dict[str, Any]:
    """Free space on the file systems of the spool and the recordings."""
    threshold = min_free_bytes()
    free: dict[str, int] = {}
    low: list[str] = []
    for label, path in (("spool", settings.SPOOL_DIR), ("recordings", settings.RECORDINGS_DIR)):
        usage = shutil.disk_usage(_existing(Path(path)))
        free[label] = usage.free
        if usage.free < threshold:
            low.append(f"{label} ({path}): {usage.free // 2**20} MiB free")
    if low:
        raise CheckFailed(f"free disk space below {threshold // 2**20} MiB: " + "; ".join(low))
    return {"free_bytes": free, "min_free_bytes": threshold}


def check_job_queue() -> dict[str, Any]:
    jobqueue.ping()
    return {"backend": jobqueue.backend()}


def run_dir() -> Path:
    return Path(settings.DATA_DIR) / "run"


def check_recorder() -> dict[str, Any]:
    """Every recorder snapshot of this data directory must be fresh; none at all is fine."""
    from callvault.capture.metrics import STALE_AFTER, read_snapshots

    snapshots = read_snapshots(run_dir())
    bad = [
        f"{s.name}: {s.error}" if s.data is None else f"{s.name}: snapshot {s.age:.0f} s old"
        for s in snapshots
        if not s.fresh
    ]
    if bad:
        raise CheckFailed(f"recorder not reporting (limit {STALE_AFTER:.0f} s): " + "; ".join(bad))
    return {"recorders": len(snapshots)}


def run_all() -> list[Check]:
    return [
        run_check("database", check_database),
        run_check("spool", lambda: check_writable(Path(settings.SPOOL_DIR))),
        run_check("disk", check_disk),
        run_check("job_queue", check_job_queue),
        run_check("recorder", check_recorder),
    ]
