"""Turning PBX events into calls.

Every event of one PBX call (``integration`` + the PBX's ``call_id``) lands on one ``PbxCall``
row and one ``Call``. The row keeps the *facts* the events reported (first ringing time, earliest
answer, first end, "nobody answered") and the call's state is derived from those facts alone, so
the result does not depend on the order events arrive in or on how often each is sent:

- ended, answered at some point → 終了 (completed);
- ended, never answered (or the PBX said busy/no answer/missed) → 不在着信 (cancelled);
- answered, not ended → 通話中 (active); otherwise → 呼出中 (ringing).

An "answered" that arrives after "ended" still counts (the call was answered; its time is
clamped to the end if the PBX stamped it later). A call that only the PBX knows has no recording
(``recording_state`` ``none``) and still appears in the list: missed calls matter. When the same
call is recorded, :mod:`callvault.apps.pbx.link` merges the two into the recorded call.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from callvault.apps.accounts.models import Line
from callvault.apps.calls.models import Call, CallState, Participant, RecordingState, Source
from callvault.apps.pbx.events import ANSWERED, ENDED, RINGING, TRANSFER, EventIn
from callvault.apps.pbx.models import Integration, PbxCall, PbxEvent
from callvault.live import CALL_ANSWERED, CALL_ENDED, CALL_RINGING, CALL_UPDATED, publish
from callvault.phone import normalize

log = logging.getLogger("callvault.pbx")


@dataclass(frozen=True)
class Outcome:
    status: str  # "applied" or "duplicate"
    call: Call
    linked: bool


def dedupe_key(ev: EventIn, replay_key: str) -> str:
    if ev.event_id:
        return "id:" + ev.event_id
    if replay_key:
        return replay_key
    raw = "|".join(
        [
            ev.kind,
            ev.call_id,
            ev.time.isoformat(),
            ev.caller,
            ev.callee,
            ev.extension,
            ev.transfer_to,
            ev.reason,
            str(ev.answered),
        ]
    )
    return "auto:" + hashlib.sha256(raw.encode()).hexdigest()


def derive_state(pc: PbxCall) -> str:
    if pc.ended_at is not None:
        return str(CallState.COMPLETED if pc.answered_at is not None else CallState.CANCELLED)
    if pc.answered_at is not None:
        return str(CallState.ACTIVE)
    return str(CallState.RINGING)


def _fold(pc: PbxCall, ev: EventIn) -> None:
    """Add one event's facts to the row; commutative and idempotent."""
    t = ev.time
    if ev.kind == RINGING or pc.ringing_at is None:
        pc.ringing_at = t if pc.ringing_at is None else min(pc.ringing_at, t)
    if ev.kind == ANSWERED:
        pc.answered_at = t if pc.answered_at is None else min(pc.answered_at, t)
    if ev.kind == ENDED:
        if pc.ended_at is None:
            pc.ended_at = t
            pc.end_reason = (ev.reason or ("missed" if ev.missed else "hangup"))[:64]
        if ev.answered is False or ev.missed:
            pc.not_answered = True
        elif ev.talk_seconds is not None and ev.talk_seconds > 0 and pc.answered_at is None:
            pc.answered_at = pc.ended_at - timedelta(seconds=ev.talk_seconds)
        elif ev.answered is True and pc.answered_at is None:
            pc.answered_at = pc.ended_at
    if ev.started_at is not None:
        pc.ringing_at = ev.started_at if pc.ringing_at is None else min(pc.ringing_at, ev.started_at)
    if pc.answered_at is not None and pc.ended_at is not None and pc.answered_at > pc.ended_at:
        pc.answered_at = pc.ended_at
    if pc.ringing_at is not None and pc.answered_at is not None and pc.ringing_at > pc.answered_at:
        pc.ringing_at = pc.answered_at
    if ev.kind == TRANSFER and ev.transfer_to:
        pc.extension = ev.transfer_to[:32]
    elif ev.extension and not pc.extension:
        pc.extension = ev.extension[:32]
    if ev.sip_call_id and not pc.sip_call_id:
        pc.sip_call_id = ev.sip_call_id[:255]


def _agent_and_team(call: Call, pc: PbxCall, ev: EventIn, integration: Integration) -> None:
    """The agent: the ``agent`` user named in the event, else the extension's line, else the lines
    of the numbers (as for recorded calls), else the integration's default team."""
    if ev.agent:
        user = get_user_model().objects.filter(username=ev.agent, is_active=True).first()
        if user is not None:
            call.agent = user
    extension = pc.extension
    if extension:
        line = Line.objects.filter(number__in={extension, normalize(extension)}).first()
        if line is not None:
            call.team_id = line.team_id
            if line.user_id is not None and (not ev.agent or call.agent_id is None or ev.kind == TRANSFER):
                call.agent_id = line.user_id
            return
    if call.team_id is None:
        from callvault.apps.accounts.services import assign_call

        assign_call(call)
    if call.team_id is None and integration.team_id is not None:
        call.team_id = integration.team_id


def _pbx_metadata(pc: PbxCall, integration: Integration, ev: EventIn) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "integration": integration.pk,
        "integration_name": integration.name,
        "call_id": pc.pbx_call_id,
        "extension": pc.extension,
        "sip_call_id": pc.sip_call_id,
        "ringing_at": iso(pc.ringing_at),
        "answered_at": iso(pc.answered_at),
        "ended_at": iso(pc.ended_at),
        "end_reason": pc.end_reason,
        "duration": (pc.ended_at - pc.answered_at).total_seconds()
        if pc.ended_at and pc.answered_at
        else None,
    }


def _apply_to_pbx_call(call: Call, pc: PbxCall) -> None:
    """A call only the PBX knows: its times and state are the PBX's."""
    call.state = derive_state(pc)
    call.started_at = pc.started_at or call.started_at
    call.answered_at = pc.answered_at
    call.ended_at = pc.ended_at
    begin = pc.answered_at or pc.started_at
    call.duration = (pc.ended_at - begin).total_seconds() if pc.ended_at and begin else None
    if pc.ended_at is not None:  # the recorder's codes (the call page names them); the PBX's own in metadata
        call.end_reason = "bye" if pc.answered_at else "cancel"


def _new_call(ev: EventIn) -> Call:
    caller = normalize(ev.caller)
    callee = normalize(ev.callee or ev.extension)
    call = Call.objects.create(
        source=Source.PBX,
        direction=ev.direction or "unknown",
        state=CallState.RINGING,
        recording_state=RecordingState.NONE,
        started_at=ev.started_at or ev.time,
        caller_number=caller,
        caller_name=ev.caller_name[:255],
        callee_number=callee,
        callee_name=ev.callee_name[:255],
        sip_call_id=ev.sip_call_id[:255],
    )
    Participant.objects.create(
        call=call, role="caller", number=caller, number_raw=ev.caller[:255], display_name=ev.caller_name[:255]
    )
    Participant.objects.create(
        call=call,
        role="callee",
        number=callee,
        number_raw=(ev.callee or ev.extension)[:255],
        display_name=ev.callee_name[:255],
    )
    return call


def apply_event(
    integration: Integration,
    ev: EventIn,
    *,
    replay_key: str,
    method: str,
    payload: dict[str, Any],
    now: datetime | None = None,
) -> Outcome:
    now = now or timezone.now()
    for attempt in range(3):
        try:
            return _apply_once(
                integration, ev, replay_key=replay_key, method=method, payload=payload, now=now
            )
        except IntegrityError:
            # Two first events of one PBX call at once (phones fire action URLs in parallel): the
            # other request created the PbxCall row first. Start over: now the row is there to lock.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _apply_once(
    integration: Integration,
    ev: EventIn,
    *,
    replay_key: str,
    method: str,
    payload: dict[str, Any],
    now: datetime,
) -> Outcome:
    key = dedupe_key(ev, replay_key)
    with transaction.atomic():
        try:
            with transaction.atomic():
                logged = PbxEvent.objects.create(
                    integration=integration,
                    dedupe_key=key,
                    kind=ev.kind,
                    pbx_call_id=ev.call_id,
                    event_time=ev.time,
                    received_at=now,
                    auth=method,
                    payload=payload,
                )
        except IntegrityError:
            pc = (
                PbxCall.objects.select_related("call")
                .filter(integration=integration, pbx_call_id=ev.call_id)
                .first()
            )
            if pc is None:  # the duplicate of an event whose call was deleted since
                raise LookupError(ev.call_id) from None
            return Outcome("duplicate", pc.call, pc.linked_at is not None)
        pc = (
            PbxCall.objects.select_for_update()
            .select_related("call")
            .filter(integration=integration, pbx_call_id=ev.call_id)
            .first()
        )
        if pc is None:
            call = _new_call(ev)
            pc = PbxCall(integration=integration, pbx_call_id=ev.call_id, call=call)
            created = True
        else:
            call = pc.call
            created = False
        before = call.state if not created else ""
        _fold(pc, ev)
        pc.save()
        if call.source == Source.PBX:
            _apply_to_pbx_call(call, pc)
            if ev.direction and call.direction == "unknown":
                call.direction = ev.direction
            for attr, value in (
                ("caller_number", normalize(ev.caller)),
                ("callee_number", normalize(ev.callee)),
                ("caller_name", ev.caller_name),
                ("callee_name", ev.callee_name),
            ):
                if value and not getattr(call, attr):
                    setattr(call, attr, value[:255])
        else:  # merged with a recording: the recorder owns state and times; add what only the PBX knows
            if call.answered_at is None and pc.answered_at is not None:
                call.answered_at = pc.answered_at
        _agent_and_team(call, pc, ev, integration)
        meta = dict(call.metadata or {})
        meta["pbx"] = _pbx_metadata(pc, integration, ev)
        if ev.kind == TRANSFER and ev.transfer_to:
            meta["pbx"]["transfers"] = [
                *((call.metadata or {}).get("pbx", {}).get("transfers", [])),
                {"to": ev.transfer_to, "at": ev.time.isoformat()},
            ]
        elif (call.metadata or {}).get("pbx", {}).get("transfers"):
            meta["pbx"]["transfers"] = call.metadata["pbx"]["transfers"]
        call.metadata = meta
        call.save()
        logged.call = call
        logged.save(update_fields=["call"])
        Integration.objects.filter(pk=integration.pk).update(last_event_at=now)
        after = call.state
        kind = _live_kind(created, before, after)
        transaction.on_commit(lambda: publish(kind, call))
    linked = pc.linked_at is not None
    if not linked:
        from callvault.apps.pbx.link import link_pbx_call

        merged = link_pbx_call(pc.pk)
        if merged is not None:
            call, linked = merged, True
    return Outcome("applied", call, linked)


def _live_kind(created: bool, before: str, after: str) -> str:
    if after in (CallState.COMPLETED, CallState.CANCELLED) and before not in (
        CallState.COMPLETED,
        CallState.CANCELLED,
    ):
        return CALL_ENDED
    if after == CallState.ACTIVE and before != CallState.ACTIVE:
        return CALL_ANSWERED
    if created and after == CallState.RINGING:
        return CALL_RINGING
    return CALL_UPDATED
