"""The recording completeness check: does every call that should have a recording have a good one?

For each call that ended more than ``CALLVAULT_COMPLETENESS_GRACE`` seconds ago (default 600:
time for the finalize job), the check stores on the call ``completeness`` = ``ok`` or ``flagged``
with the reasons:

- ``missing``: the call was answered and ended but has no recording (also when its processing
  failed or is stuck; ``detail.recording_state`` says which). Missed calls (不在着信) expect none.
- ``file_missing``: the recording row exists but its file is gone from storage.
- ``empty``: zero bytes, zero length, no RTP packet on any stream, or silence on every channel.
- ``short``: shorter than the call by more than 2 s. The call's length is the PBX's (answer to
  hang-up) when a PBX reported it, else the recorder's.
- ``one_sided``: a two-party call where one party's stream received no packets, or whose channel
  in the recording is silent (below -70 dBFS RMS) while the other party's is not.

Files under the recordings directory that no recording row claims are kept as ``OrphanFile``
rows (:func:`scan_storage`). Everything is idempotent: checking again overwrites the result, and
the periodic job re-checks flagged calls (every 15 minutes) and calls changed since their last
check, and a recording that becomes ready is checked again at once, so a fixed recording clears
its flag by itself.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from callvault.apps.calls.models import Call, CallState
from callvault.apps.completeness.models import OrphanFile, Reason
from callvault.apps.recordings.models import Recording
from callvault.storage import get_storage

log = logging.getLogger("callvault.completeness")

SHORT_BY = 2.0  # seconds
SILENT_RMS_DBFS = -70.0
BATCH = 2000
ANALYSE_MAX_SECONDS = 4 * 3600  # longer recordings: packet counts only
RECHECK_FLAGGED = timedelta(minutes=15)  # a flagged call is looked at again at most this often


def grace() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "COMPLETENESS_GRACE", 600)))


@dataclass
class Summary:
    checked: int = 0
    ok: int = 0
    flagged: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    orphans: int = 0
    scanned_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": self.ok,
            "flagged": self.flagged,
            "by_reason": dict(sorted(self.by_reason.items())),
            "orphan_files": self.orphans,
            "scanned_files": self.scanned_files,
        }


def channel_levels(path: Path) -> tuple[list[float], float]:
    """RMS level of each channel in dBFS (``-inf`` for digital silence) and the decoded length.

    Streams through the file frame by frame in the decoder's own sample format (no resampling
    or conversion to int16): memory stays flat for any length, and the cost is the decode.
    """
    import av
    import numpy as np

    with av.open(str(path), "r") as container:
        stream = container.streams.audio[0]
        channels = int(stream.codec_context.channels)
        sums = np.zeros(channels, dtype=np.float64)
        count = 0
        rate = 0
        for frame in container.decode(stream):
            data = frame.to_ndarray()
            if not frame.format.is_planar:  # packed: (1, samples * channels)
                data = data.reshape(-1, channels).T
            if data.dtype.kind in "iu":
                scale = float(2 ** (8 * data.dtype.itemsize - 1))
                data = data.astype(np.float32) / scale
            sums += np.einsum("ij,ij->i", data, data, dtype=np.float64)
            count += data.shape[1]
            rate = frame.sample_rate
    levels = []
    for s in sums:
        rms = math.sqrt(s / count) if count else 0.0
        levels.append(20 * math.log10(rms) if rms > 0 else float("-inf"))
    return levels, (count / rate if rate else 0.0)


def expected_duration(call: Call) -> float | None:
    pbx = (call.metadata or {}).get("pbx") or {}
    if isinstance(pbx.get("duration"), int | float) and pbx["duration"] > 0:
        return float(pbx["duration"])
    return call.duration


def check_call(call: Call) -> list[dict[str, Any]]:
    """The reasons this call's recording is not complete (empty list: it is)."""
    reasons: list[dict[str, Any]] = []
    if call.state == CallState.CANCELLED:
        return reasons  # a missed call: nothing was said, nothing to record
    rec: Recording | None = Recording.objects.filter(call=call).first()
    answered = call.answered_at is not None or call.state in (CallState.COMPLETED, CallState.INTERRUPTED)
    if rec is None:
        if answered:
            reasons.append(
                {
                    "code": Reason.MISSING,
                    "detail": {"recording_state": call.recording_state, "error": call.recording_error[:200]},
                }
            )
        return reasons
    storage = get_storage()
    try:
        exists = storage.exists(rec.storage_key)
    except Exception:
        exists = False
    if not exists:
        reasons.append({"code": Reason.FILE_MISSING, "detail": {"storage_key": rec.storage_key}})
        return reasons
    streams = [s for s in call.streams.all() if not s.unsupported]
    party_streams = [s for s in streams if s.role in ("caller", "callee")] or streams
    packets = [s.packets_received for s in party_streams]
    levels: list[float] = []
    decoded = rec.duration
    path = storage.local_path(rec.storage_key)
    if path is not None and rec.bytes > 0 and rec.duration <= ANALYSE_MAX_SECONDS:
        try:
            levels, decoded = channel_levels(path)
        except Exception as exc:  # not decodable: as bad as empty
            log.warning("x completeness: cannot decode %s: %s", rec.storage_key, exc)
            levels, decoded = [], 0.0
    silent = [lv < SILENT_RMS_DBFS for lv in levels]
    if (
        rec.bytes == 0
        or rec.duration <= 0.05
        or decoded <= 0.05
        or (packets and not any(packets))
        or (silent and all(silent))
    ):
        reasons.append(
            {
                "code": Reason.EMPTY,
                "detail": {"bytes": rec.bytes, "duration": round(decoded, 2), "packets": sum(packets)},
            }
        )
        return reasons
    expected = expected_duration(call)
    if expected is not None and expected - rec.duration > SHORT_BY:
        reasons.append(
            {
                "code": Reason.SHORT,
                "detail": {"call": round(expected, 2), "recording": round(rec.duration, 2)},
            }
        )
    two_party = len(party_streams) >= 2 or rec.channels >= 2
    if two_party:
        quiet_stream = [s.role or str(s.index) for s in party_streams if s.packets_received == 0]
        quiet_channel = []
        if rec.channels >= 2 and len(levels) >= 2 and any(not s for s in silent):
            names = [
                (rec.channel_map or {}).get("left", "left"),
                (rec.channel_map or {}).get("right", "right"),
            ]
            quiet_channel = [names[i] if i < 2 else str(i) for i, s in enumerate(silent) if s]
        if quiet_stream or quiet_channel:
            reasons.append(
                {
                    "code": Reason.ONE_SIDED,
                    "detail": {
                        "silent": sorted(set(quiet_stream + quiet_channel)),
                        "levels_dbfs": [round(lv, 1) if math.isfinite(lv) else None for lv in levels],
                    },
                }
            )
    return reasons


def store(call_id: Any, reasons: list[dict[str, Any]], now: datetime) -> None:
    # update(), not save(): the check must not count as a change of the call (updated_at).
    Call.objects.filter(pk=call_id).update(
        completeness="flagged" if reasons else "ok",
        completeness_reasons=[{"code": str(r["code"]), "detail": r["detail"]} for r in reasons],
        completeness_codes=("," + ",".join(str(r["code"]) for r in reasons) + ",") if reasons else "",
        completeness_checked_at=now,
    )


def due_calls(now: datetime, *, everything: bool = False, since: datetime | None = None) -> QuerySet[Call]:
    """Calls the periodic check should look at now."""
    ended = Call.objects.filter(ended_at__isnull=False, ended_at__lt=now - grace())
    if since is not None:
        ended = ended.filter(ended_at__gte=since)
    if everything:
        return ended
    return ended.filter(
        Q(completeness="")
        | Q(completeness="flagged", completeness_checked_at__lt=now - RECHECK_FLAGGED)
        | Q(updated_at__gt=F("completeness_checked_at"))
    )


def run_check(
    *,
    call_ids: Iterable[Any] | None = None,
    everything: bool = False,
    since: datetime | None = None,
    limit: int = BATCH,
    scan: bool = False,
) -> Summary:
    now = timezone.now()
    summary = Summary()
    _link_recent(now)
    if call_ids is not None:
        qs = Call.objects.filter(pk__in=list(call_ids))
    else:
        qs = due_calls(now, everything=everything, since=since).order_by("-ended_at")
    ids = list(qs.values_list("pk", flat=True)[:limit])
    for start in range(0, len(ids), 200):
        for call in Call.objects.filter(pk__in=ids[start : start + 200]).prefetch_related("streams"):
            try:
                reasons = check_call(call)
            except Exception:
                log.exception("x completeness check failed for call %s", call.pk)
                continue
            store(call.pk, reasons, now)
            summary.checked += 1
            if reasons:
                summary.flagged += 1
                for r in reasons:
                    summary.by_reason[str(r["code"])] = summary.by_reason.get(str(r["code"]), 0) + 1
            else:
                summary.ok += 1
    if scan:
        summary.scanned_files, summary.orphans = scan_storage(now)
    else:
        summary.orphans = OrphanFile.objects.count()
    if summary.flagged or summary.orphans:
        log.info("completeness: %s", summary.as_dict())
    return summary


def _link_recent(now: datetime) -> None:
    """Give PBX-reported calls a last chance to find their recording before they are judged."""
    try:
        from callvault.apps.pbx.link import link_pbx_call
        from callvault.apps.pbx.models import PbxCall
    except ImportError:  # pragma: no cover
        return
    recent = PbxCall.objects.filter(
        linked_at__isnull=True,
        call__source="pbx",
        call__ended_at__gte=now - timedelta(days=1),
        call__completeness="",
    ).values_list("pk", flat=True)[:500]
    for pk in recent:
        try:
            link_pbx_call(pk)
        except Exception:
            log.exception("x pbx link failed for %s", pk)


def scan_storage(now: datetime | None = None) -> tuple[int, int]:
    """Compare the recordings directory with the recording rows, one day directory at a time.

    Files without a row become ``OrphanFile`` rows (and stop being ones when they disappear or a
    row appears); rows without a file flag their call ``file_missing``. Returns (files seen,
    orphans now known).
    """
    now = now or timezone.now()
    root = Path(settings.RECORDINGS_DIR)
    seen = 0
    current: set[str] = set()
    if root.is_dir():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            keys = {
                (f"{rel_dir}/{name}" if rel_dir != "." else name): name
                for name in filenames
                if not name.startswith(".")
            }
            if not keys:
                continue
            seen += len(keys)
            known = set(
                Recording.objects.filter(storage_key__in=list(keys)).values_list("storage_key", flat=True)
            )
            for key in keys:
                if key in known:
                    continue
                current.add(key)
                try:
                    size = (Path(dirpath) / keys[key]).stat().st_size
                except OSError:
                    continue
                OrphanFile.objects.update_or_create(
                    storage_key=key,
                    defaults={"bytes": size, "last_seen_at": now},
                    create_defaults={"bytes": size, "last_seen_at": now, "found_at": now},
                )
    if len(current) < 10000:  # files that were orphans and are not any more (deleted, or claimed)
        OrphanFile.objects.exclude(storage_key__in=current).delete()
    # Rows whose file is gone, wherever their call is in the check's schedule.
    storage = get_storage()
    gone: list[Any] = []
    for call_id, key in Recording.objects.values_list("call_id", "storage_key").iterator(chunk_size=2000):
        if not storage.exists(key):
            gone.append(call_id)
    for call in Call.objects.filter(pk__in=gone):
        store(
            call.pk,
            [{"code": Reason.FILE_MISSING, "detail": {"storage_key": call.recording.storage_key}}],
            now,
        )
    return seen, OrphanFile.objects.count()


def flagged_counts() -> dict[str, int]:
    """Calls flagged now, by reason (for /metrics and the page)."""
    counts: dict[str, int] = dict.fromkeys(Reason.values, 0)
    for reasons in Call.objects.filter(completeness="flagged").values_list("completeness_reasons", flat=True):
        for r in reasons or []:
            code = r.get("code") if isinstance(r, dict) else None
            if code in counts:
                counts[code] += 1
    return counts
