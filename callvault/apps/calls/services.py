"""Behaviour on calls shared by the recorder, the jobs, the CLI and the web."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callvault.apps.calls.models import Call
from callvault.phone import KIND_PAYPHONE, KIND_WITHHELD, classify, normalize


def ts(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, tz=UTC) if t is not None else None


def call_as_dict(call: Call) -> dict[str, Any]:
    """The JSON shape of a call for ``callvault calls --json`` and scripts."""
    recording: dict[str, Any] | None = None
    rec = getattr(call, "recording", None) if hasattr(call, "recording") else None
    if rec is not None:
        from django.conf import settings

        recording = {
            "path": str(settings.RECORDINGS_DIR / rec.storage_key),
            "storage_key": rec.storage_key,
            "format": rec.format,
            "codec": rec.codec,
            "channels": rec.channels,
            "sample_rate": rec.sample_rate,
            "bytes": rec.bytes,
            "sha256": rec.sha256,
            "duration": rec.duration,
            "channel_map": rec.channel_map,
        }
    return {
        "id": str(call.id),
        "source": call.source,
        "direction": call.direction,
        "state": call.state,
        "recording_state": call.recording_state,
        "recording_error": call.recording_error,
        "started_at": call.started_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration": call.duration,
        "end_reason": call.end_reason,
        "sip_call_id": call.sip_call_id,
        "siprec_session_id": call.siprec_session_id,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "callee_number": call.callee_number,
        "callee_name": call.callee_name,
        "packets": {
            "received": call.packets_received,
            "lost": call.packets_lost,
            "late": call.packets_late,
            "dropped": call.packets_dropped,
            "capture_lost": call.packets_capture_lost,
        },
        "participants": [
            {
                "role": p.role,
                "number": p.number,
                "number_raw": p.number_raw,
                "display_name": p.display_name,
                "aor": p.aor,
            }
            for p in call.participants.all()
        ],
        "streams": [
            {
                "index": s.index,
                "label": s.label,
                "role": s.role,
                "codec": s.codec,
                "unsupported": s.unsupported,
                "received": s.packets_received,
                "lost": s.packets_lost,
                "late": s.packets_late,
                "duplicate": s.packets_duplicate,
                "dropped": s.packets_dropped,
                "capture_lost": s.packets_capture_lost,
                "ssrc_changes": s.ssrc_changes,
                "jitter_ms": s.jitter_ms,
            }
            for s in call.streams.all()
        ],
        "dtmf": [
            {"digit": d.digit, "offset": d.offset, "duration_ms": d.duration_ms}
            for d in call.dtmf_events.all()
        ],
        "holds": (call.metadata or {}).get("holds", []),
        "recording": recording,
    }


def participant_fields(p: dict[str, Any]) -> dict[str, str]:
    number_raw = p.get("number") or ""
    number = normalize(number_raw)
    aor, name = (p.get("aor") or "").strip(), (p.get("name") or "").strip()
    if not number and (aor or name):
        # No number in the AOR: sip:anonymous@anonymous.invalid, "Coin line/payphone", a display
        # name "Anonymous" ... are stored as the 非通知 / 公衆電話 sentinels, so pages show them so.
        caller = classify(aor, display_name=name) if aor else classify(name)
        if caller.kind in (KIND_WITHHELD, KIND_PAYPHONE):
            number = caller.number
    return {
        "participant_id": (p.get("participant_id") or "")[:255],
        "number": number,
        "number_raw": number_raw[:255],
        "display_name": (p.get("name") or "")[:255],
        "aor": (p.get("aor") or "")[:512],
    }
