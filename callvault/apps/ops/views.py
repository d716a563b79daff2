"""/metrics (Prometheus text format) and /readyz (JSON readiness checks)."""

from __future__ import annotations

import logging
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from callvault.apps.ops import access, collect, readiness
from callvault.apps.ops.exposition import CONTENT_TYPE, Family, render
from callvault.apps.ops.jobqueue import redact
from callvault.apps.ops.registry import HTTP_REQUEST_DURATION

log = logging.getLogger("callvault.ops")


def _recorder_families() -> list[Family]:
    from callvault.capture.metrics import read_snapshots, snapshot_families

    return snapshot_families(read_snapshots(readiness.run_dir()))


def _completeness_families() -> list[Family]:
    from callvault.apps.completeness.metrics import families

    return families()


def collect_families() -> list[Family]:
    """Every family of /metrics. A source that fails is reported as down; the others still are."""
    now = timezone.now()
    families: list[Family] = [collect.build_family()]
    up = Family(
        "callvault_metrics_source_up",
        "gauge",
        "1 if /metrics could read this source (database, job_queue, completeness, recorder_snapshots),"
        " else 0.",
    )
    timing = Family("callvault_metrics_source_seconds", "gauge", "Time /metrics took to read each source.")
    sources = (
        (
            "database",
            lambda: [
                *collect.call_families(),
                *collect.waiting_families(now),
                *collect.finalized_families(now),
            ],
        ),
        ("job_queue", collect.queue_families),
        ("completeness", _completeness_families),
        ("recorder_snapshots", _recorder_families),
    )
    for name, fn in sources:
        start = time.perf_counter()
        try:
            families.extend(fn())
            ok = True
        except Exception as exc:
            log.warning("x /metrics cannot read %s: %s", name, redact(f"{type(exc).__name__}: {exc}"))
            ok = False
        up.add(1 if ok else 0, {"source": name})
        timing.add(round(time.perf_counter() - start, 6), {"source": name})
    families.append(HTTP_REQUEST_DURATION.family())
    families.extend([up, timing])
    return families


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not access.may_read(request):
        return access.refusal(request)
    return HttpResponse(render(collect_families()), content_type=CONTENT_TYPE)


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503. Details (timings, errors, free space) only for
    clients that may read /metrics; everyone else sees which checks pass."""
    checks = readiness.run_all()
    ok = all(c.ok for c in checks)
    for c in checks:
        if not c.ok:
            log.warning("x readiness check %s failed: %s", c.name, c.detail)
    detailed = access.may_read(request)
    body = {"status": "ok" if ok else "fail", "checks": {c.name: c.as_dict(detailed) for c in checks}}
    return JsonResponse(body, status=200 if ok else 503, json_dumps_params={"ensure_ascii": False})
