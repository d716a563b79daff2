"""Completeness figures for /metrics: calls flagged now, by reason, and orphaned files."""

from __future__ import annotations

from django.db.models import Count, Q

from callvault.apps.calls.models import Call
from callvault.apps.completeness.models import OrphanFile, Reason
from callvault.apps.ops.exposition import Family


def families() -> list[Family]:
    by_reason = Family(
        "callvault_recordings_flagged",
        "gauge",
        "Calls the recording completeness check flags now, by reason (a call may have several).",
    )
    # one query over the flagged calls only (the completeness index), whatever the table size
    counts = Call.objects.filter(completeness="flagged").aggregate(
        total=Count("pk"),
        **{code: Count("pk", filter=Q(completeness_codes__contains=f",{code},")) for code in Reason.values},
    )
    for code in Reason.values:
        by_reason.add(counts[code], {"reason": code})
    return [
        by_reason,
        Family(
            "callvault_recordings_flagged_calls", "gauge", "Calls with at least one completeness problem."
        ).add(counts["total"]),
        Family(
            "callvault_storage_orphan_files",
            "gauge",
            "Files in recording storage without a recording row (found by the nightly scan).",
        ).add(OrphanFile.objects.count()),
    ]
