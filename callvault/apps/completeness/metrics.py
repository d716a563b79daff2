"""Completeness figures for /metrics: calls flagged now, by reason, and orphaned files."""

from __future__ import annotations

from callvault.apps.calls.models import Call
from callvault.apps.completeness.models import OrphanFile, Reason
from callvault.apps.ops.exposition import Family


def families() -> list[Family]:
    by_reason = Family(
        "callvault_recordings_flagged",
        "gauge",
        "Calls the recording completeness check flags now, by reason (a call may have several).",
    )
    flagged = Call.objects.filter(completeness="flagged")
    for code in Reason.values:
        by_reason.add(flagged.filter(completeness_codes__contains=f",{code},").count(), {"reason": code})
    return [
        by_reason,
        Family(
            "callvault_recordings_flagged_calls", "gauge", "Calls with at least one completeness problem."
        ).add(flagged.count()),
        Family(
            "callvault_storage_orphan_files",
            "gauge",
            "Files in recording storage without a recording row (found by the nightly scan).",
        ).add(OrphanFile.objects.count()),
    ]
