"""The call journal (spool/<key>/journal.jsonl) as the source of truth for a call.

The recorder writes every call event to the journal before it touches the
database, so that a call can always be rebuilt from its spool: after a crash,
a database outage, or a lost job. These functions turn journal events into
database rows, idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from callvault.apps.calls.models import Call, CallState, Participant, RecordingState, Role, Stream
from callvault.apps.calls.services import participant_fields, ts
from callvault.live import CALL_ANSWERED, CALL_ENDED, CALL_RINGING, CALL_UPDATED, publish


@dataclass
class JournalState:
    """Everything the journal says about one call, folded in order."""

    call_id: str = ""
    invite: dict[str, Any] = field(default_factory=dict)
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    streams: dict[int, dict[str, Any]] = field(default_factory=dict)
    answered_t: float | None = None
    ended_t: float | None = None
    end_reason: str = ""
    closed: bool = False
    last_t: float | None = None
    holds: list[list[float | None]] = field(default_factory=list)  # [start, end] wall times
    capture_drops: int = 0  # packets the passive capture reported dropping while the call was alive

    @classmethod
    def fold(cls, events: list[dict[str, Any]]) -> JournalState:
        st = cls()
        for ev in events:
            kind = ev.get("type")
            t = ev.get("t")
            if isinstance(t, int | float):
                st.last_t = max(st.last_t or t, t)
            if kind == "invite":
                st.invite = ev
                st.call_id = ev["call_id"]
                st._merge(ev)
            elif kind == "update":
                st._merge(ev)
                st._hold(bool(ev.get("hold")), ev.get("t"))
            elif kind == "answered":
                st.answered_t = ev["t"]
            elif kind == "ended":
                st.ended_t = ev["t"]
                st.end_reason = ev.get("reason", "")
            elif kind == "closed":
                st.closed = True
            elif kind == "capture":
                st.capture_drops = int(ev.get("capture_drops") or 0)
        return st

    def _hold(self, on_hold: bool, t: float | None) -> None:
        if t is None:
            return
        open_hold = bool(self.holds) and self.holds[-1][1] is None
        if on_hold and not open_hold:
            self.holds.append([t, None])
        elif not on_hold and open_hold:
            self.holds[-1][1] = t

    def _merge(self, ev: dict[str, Any]) -> None:
        for p in ev.get("participants", []):
            key = p.get("participant_id") or f"{p.get('role')}:{p.get('aor')}"
            self.participants[key] = p
        for s in ev.get("streams", []):
            prev = self.streams.get(s["index"], {})
            merged = {**prev, **s}
            if prev.get("payload_types") and s.get("payload_types"):
                merged["payload_types"] = {**prev["payload_types"], **s["payload_types"]}
            self.streams[s["index"]] = merged


def _party(state: JournalState, role: str) -> dict[str, Any] | None:
    for p in state.participants.values():
        if p.get("role") == role:
            return p
    return None


@transaction.atomic
def upsert_call(state: JournalState, *, spool_key: str) -> Call:
    """Create or update the Call and its participants and streams from the journal."""
    inv = state.invite
    caller = _party(state, "caller") or {}
    callee = _party(state, "callee") or {}
    defaults: dict[str, Any] = {
        "source": inv.get("source", "siprec"),
        "direction": inv.get("direction", "unknown"),
        "started_at": ts(inv["t"]),
        "sip_call_id": (inv.get("sip_call_id") or "")[:255],
        "siprec_session_id": (inv.get("session_id") or "")[:255],
        "spool_key": spool_key,
        "caller_number": participant_fields(caller)["number"] if caller else "",
        "caller_name": (caller.get("name") or "")[:255],
        "callee_number": participant_fields(callee)["number"] if callee else "",
        "callee_name": (callee.get("name") or "")[:255],
        "metadata": inv.get("extensions") or {},
    }
    if state.answered_t is not None:
        defaults["answered_at"] = ts(state.answered_t)
        defaults["state"] = CallState.ACTIVE
    call, created = Call.objects.get_or_create(id=state.call_id, defaults=defaults)
    was_state = None if created else call.state
    if not created:
        for k in ("caller_number", "caller_name", "callee_number", "callee_name"):
            if defaults[k] and not getattr(call, k):
                setattr(call, k, defaults[k])
        if state.answered_t is not None and call.answered_at is None:
            call.answered_at = ts(state.answered_t)
            if call.state == CallState.RINGING:
                call.state = CallState.ACTIVE
        call.save()

    # a new call has no participants or streams yet: no need to ask the database
    existing = (
        {} if created else {p.participant_id or f"{p.role}:{p.aor}": p for p in call.participants.all()}
    )
    by_pid: dict[str, Participant] = {}
    new_parts: list[Participant] = []
    for key, p in state.participants.items():
        fields = participant_fields(p)
        role = p.get("role") if p.get("role") in Role.values else Role.OTHER
        obj = existing.get(fields["participant_id"] or f"{role}:{fields['aor']}")
        if obj is None:
            obj = Participant(call=call, role=role, **fields)
            new_parts.append(obj)
        by_pid[key] = obj
    if new_parts:
        Participant.objects.bulk_create(new_parts)  # sets their keys (RETURNING) for the streams below
    have = {} if created else {s.index: s for s in call.streams.all()}
    new_streams: list[Stream] = []
    for index, s in state.streams.items():
        part = by_pid.get(s.get("participant_id") or "")
        values = {
            "label": (s.get("label") or "")[:64],
            "stream_id": (s.get("stream_id") or "")[:255],
            "role": s.get("role") or "unknown",
            "participant": part,
            "codec": (s.get("codec") or "")[:32],
            "local_port": s.get("local_port"),
            "unsupported": bool(s.get("unsupported")),
        }
        if index in have:
            Stream.objects.filter(pk=have[index].pk).update(**values)
        else:
            new_streams.append(Stream(call=call, index=index, **values))
    if new_streams:
        Stream.objects.bulk_create(new_streams)
    if call.team_id is None:
        from callvault.apps.accounts.services import assign_call

        numbers: dict[str, set[str]] = {"caller": set(), "callee": set()}
        for part in by_pid.values():
            numbers["caller" if part.role == "caller" else "callee"].add(part.number)
        if assign_call(call, participants=numbers):
            call.save(update_fields=["team", "agent"])
    if created:
        transaction.on_commit(lambda: publish(CALL_ANSWERED if call.answered_at else CALL_RINGING, call))
    elif was_state != call.state and call.state == CallState.ACTIVE:
        transaction.on_commit(lambda: publish(CALL_ANSWERED, call))
    else:
        transaction.on_commit(lambda: publish(CALL_UPDATED, call))
    return call


def early_call(record: dict[str, Any]) -> Call:
    """An unsaved Call from an INVITE's journal record, with the team and agent its lines give.

    For live screens only (the screen-pop of a ringing call): the database row is written
    later by :func:`upsert_call`, from the journal, with the same id.
    """
    from callvault.apps.accounts.services import line_for

    state = JournalState.fold([record])
    caller = participant_fields(_party(state, "caller") or {})
    callee = participant_fields(_party(state, "callee") or {})
    call = Call(
        id=state.call_id,
        source=record.get("source", "siprec"),
        direction=record.get("direction", "unknown"),
        started_at=ts(record["t"]),
        caller_number=caller["number"],
        caller_name=caller["display_name"],
        callee_number=callee["number"],
        callee_name=callee["display_name"],
        state=CallState.RINGING if record.get("type") == "invite" else CallState.FAILED,
    )
    numbers = {"caller": {caller["number"]}, "callee": {callee["number"]}}
    line = line_for(call.direction, numbers["caller"], numbers["callee"])
    if line is not None:
        call.team, call.agent = line.team, line.user
    return call


def publish_early(record: dict[str, Any]) -> None:
    """``call.ringing`` for an INVITE record (``call.ended`` if the call could not be set up)."""
    call = early_call(record)
    publish(CALL_RINGING if record.get("type") == "invite" else CALL_ENDED, call)


def end_call(call: Call, state: JournalState, *, interrupted: bool = False) -> None:
    """Record the end of a call and hand its recording to the finalize job."""
    end_t = state.ended_t if state.ended_t is not None else state.last_t
    call.ended_at = ts(end_t)
    begin = call.answered_at or call.started_at
    if call.ended_at and begin:
        call.duration = max(0.0, (call.ended_at - begin).total_seconds())
    if interrupted:
        call.state = CallState.INTERRUPTED
        call.end_reason = "crash"
    elif state.answered_t is None:
        call.state = CallState.CANCELLED
        call.end_reason = state.end_reason or "cancel"
    else:
        call.state = CallState.COMPLETED
        call.end_reason = state.end_reason or "bye"
    if call.recording_state in (RecordingState.RECORDING, RecordingState.NONE):
        call.recording_state = RecordingState.PENDING
    call.save()
    transaction.on_commit(lambda: publish(CALL_ENDED, call))
