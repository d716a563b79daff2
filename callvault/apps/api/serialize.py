"""Calls as the API (and webhook payloads) show them: plain dicts matching ``schemas``.

``base_url`` makes the links absolute: the request's own origin for API answers, the
configured ``CALLVAULT_BASE_URL`` for webhooks (a worker has no request).
Nothing secret or internal leaves here: no SIP/spool identifiers, media addresses or raw
SIPREC metadata, only what a person with access to the call sees on its page.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.urls import reverse
from django.utils import timezone

from callvault.apps.calls.models import Call, CallTag, Comment
from callvault.phone import display

DEFAULT_BASE_URL = "http://localhost:8000"


def configured_base_url() -> str:
    """The public origin of this installation (``CALLVAULT_BASE_URL``), without a trailing slash."""
    return str(getattr(settings, "CALLVAULT_BASE_URL", "") or DEFAULT_BASE_URL).rstrip("/")


def call_url(base_url: str, call_id: Any) -> str:
    return base_url + reverse("api:call_detail", kwargs={"call_id": call_id})


def recording_url(base_url: str, call_id: Any) -> str:
    return base_url + reverse("api:call_recording", kwargs={"call_id": call_id})


def _time(value: Any) -> Any:
    return timezone.localtime(value) if value is not None else None


def user_ref(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    profile = getattr(user, "profile", None)
    return {
        "id": user.pk,
        "username": user.get_username(),
        "display_name": (profile.display_name if profile else "") or user.get_username(),
    }


def party(number: str, name: str) -> dict[str, str]:
    return {"number": number, "display": display(number) if number else "", "name": name}


def tags_of(call: Call) -> list[dict[str, Any]]:
    links = sorted(call.call_tags.all(), key=lambda ct: ct.tag.name)
    return [{"id": ct.tag.pk, "name": ct.tag.name, "color": ct.tag.color} for ct in links]


def summary_queryset(qs: QuerySet[Call]) -> QuerySet[Call]:
    """What a list needs in a fixed number of queries."""
    return qs.select_related("team", "agent", "agent__profile").prefetch_related(
        Prefetch("call_tags", queryset=CallTag.objects.select_related("tag"))
    )


def detail_queryset(qs: QuerySet[Call]) -> QuerySet[Call]:
    return (
        summary_queryset(qs)
        .select_related("recording")
        .prefetch_related(
            "participants",
            "streams",
            "dtmf_events",
            Prefetch("comments", queryset=Comment.objects.select_related("author", "author__profile")),
        )
    )


def call_summary(call: Call, base_url: str) -> dict[str, Any]:
    return {
        "id": call.pk,
        "url": call_url(base_url, call.pk),
        "source": call.source,
        "direction": call.direction,
        "state": call.state,
        "recording_state": call.recording_state,
        "started_at": _time(call.started_at),
        "answered_at": _time(call.answered_at),
        "ended_at": _time(call.ended_at),
        "duration": call.duration,
        "caller": party(call.caller_number, call.caller_name),
        "callee": party(call.callee_number, call.callee_name),
        "team": {"id": call.team.pk, "name": call.team.name} if call.team else None,
        "agent": user_ref(call.agent),
        "tags": tags_of(call),
    }


def comment_dict(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "author": user_ref(comment.author),
        "offset": comment.offset,
        "text": comment.text,
        "created_at": _time(comment.created_at),
    }


def recording_dict(call: Call, base_url: str) -> dict[str, Any] | None:
    rec = getattr(call, "recording", None) if _has_recording(call) else None
    if rec is None:
        return None
    return {
        "format": rec.format,
        "codec": rec.codec,
        "channels": rec.channels,
        "sample_rate": rec.sample_rate,
        "bytes": rec.bytes,
        "sha256": rec.sha256,
        "duration": rec.duration,
        "channel_map": {str(k): str(v) for k, v in (rec.channel_map or {}).items()},
        "download_url": recording_url(base_url, call.pk),
    }


def _has_recording(call: Call) -> bool:
    from callvault.apps.recordings.models import Recording

    try:
        return call.recording is not None
    except Recording.DoesNotExist:
        return False


def call_detail(call: Call, base_url: str) -> dict[str, Any]:
    data = call_summary(call, base_url)
    data.update(
        {
            "end_reason": call.end_reason,
            "recording_error": call.recording_error,
            "packets": {
                "received": call.packets_received,
                "lost": call.packets_lost,
                "late": call.packets_late,
                "dropped": call.packets_dropped,
                "capture_lost": call.packets_capture_lost,
                "loss_ratio": round(call.loss_ratio, 6),
            },
            "participants": [
                {
                    "role": p.role,
                    "number": p.number,
                    "display": display(p.number) if p.number else "",
                    "name": p.display_name,
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
                    "packets_received": s.packets_received,
                    "packets_lost": s.packets_lost,
                    "packets_late": s.packets_late,
                    "packets_duplicate": s.packets_duplicate,
                    "packets_dropped": s.packets_dropped,
                    "packets_capture_lost": s.packets_capture_lost,
                    "ssrc_changes": s.ssrc_changes,
                    "jitter_ms": s.jitter_ms,
                }
                for s in call.streams.all()
            ],
            "dtmf": [
                {
                    "digit": d.digit,
                    "offset": d.offset,
                    "duration_ms": d.duration_ms,
                    "stream_index": d.stream_index,
                }
                for d in call.dtmf_events.all()
            ],
            "comments": [comment_dict(c) for c in call.comments.all()],
            "recording": recording_dict(call, base_url),
        }
    )
    return data


def call_detail_for_webhook(call_id: Any) -> dict[str, Any]:
    """The API's detail representation of a call, with absolute links from ``CALLVAULT_BASE_URL``.

    Validated and encoded by the same schema and JSON encoder as ``GET /api/v1/calls/{id}``,
    so a receiver sees exactly what the API answers.
    """
    import json

    from ninja.renderers import JSONRenderer

    from callvault.apps.api.schemas import CallDetail

    call = detail_queryset(Call.objects.filter(pk=call_id)).get()
    model = CallDetail.model_validate(call_detail(call, configured_base_url()))
    text = json.dumps(model.model_dump(by_alias=True), cls=JSONRenderer.encoder_class, ensure_ascii=False)
    result: dict[str, Any] = json.loads(text)
    return result
