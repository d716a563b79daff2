"""Linking a PBX call with the recording of the same call: one call row results.

When the PBX reports a call (``POST /api/v1/events``) that is also recorded (SIPREC, passive
capture, upload), the two are merged into the **recorded** call: the recorder keeps writing to
its row by id, so that row survives. From the PBX-only row it takes what only the PBX knows (the
agent from the extension, the team, the answer time when it has none, the PBX's call id and event
times under ``metadata["pbx"]``), its comments and tags; the PBX's later events update it, and the
PBX-only row is deleted. ``metadata["pbx_link"]`` records which rule matched.

The rule, tried in this order (a recorded call is linked to at most one PBX call):

1. **Call id**: the event's ``sip_call_id`` (or the PBX's own ``call_id``) equals the recorded call's
   SIP Call-ID (passive capture and uploads keep the original call's), or appears as a value in
   its recording metadata (SIPREC vendor extension data such as a UCID). Within ±10 minutes.
2. **Numbers and time**: the recorded call started within ``CALLVAULT_PBX_LINK_WINDOW`` seconds
   (default 30) of the PBX call's ring/answer/end span, and every number the recording has for
   its parties is one the PBX reported (caller, callee or extension, compared as E.164), or, when
   only one matches, that one is an external (E.164) number and the recording's other number is a
   public number too: an SBC sees the office's DID where the PBX reports the extension. The
   candidate that started closest to the PBX's answer (else ring) time wins; two candidates
   within 1 s of each other are ambiguous and nothing is linked (both calls stay in the list, and
   the completeness check still sees each).

Linking is tried on every PBX event, when a recorded call is created, when its recording is ready,
and by the periodic completeness check, so it happens whichever side arrives first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from callvault.apps.calls.models import Call, CallTag, Comment, Source
from callvault.apps.pbx.models import PbxCall, PbxEvent
from callvault.live import CALL_UPDATED, publish
from callvault.phone import normalize

log = logging.getLogger("callvault.pbx")

ID_WINDOW = timedelta(minutes=10)
AMBIGUOUS = timedelta(seconds=1)


def window() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "PBX_LINK_WINDOW", 30)))


def _strings(value: Any, depth: int = 0) -> Iterable[str]:
    if depth > 5:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, depth + 1)


def _span(pc: PbxCall) -> tuple[datetime, datetime, datetime]:
    """(earliest, latest, reference) times of the PBX call."""
    times = [t for t in (pc.ringing_at, pc.answered_at, pc.ended_at) if t is not None]
    ref = pc.answered_at or pc.ringing_at or times[0]
    return min(times), max(times), ref


def _pbx_numbers(pc: PbxCall) -> set[str]:
    call = pc.call
    numbers = {call.caller_number, call.callee_number, normalize(pc.extension), pc.extension}
    numbers.update(call.participants.values_list("number", flat=True))
    numbers.discard("")
    return numbers


def _recorded_numbers(call: Call) -> set[str]:
    numbers = {call.caller_number, call.callee_number}
    numbers.update(call.participants.values_list("number", flat=True))
    numbers.discard("")
    return numbers


def match_rule(pc: PbxCall, recorded: Call) -> str | None:
    """``"call_id"``, ``"numbers"`` or None: whether (and why) the two are the same call."""
    ids = {i for i in (pc.sip_call_id, pc.pbx_call_id) if i}
    if recorded.sip_call_id in ids or ids & set(_strings(recorded.metadata or {})):
        return "call_id"
    start, end, _ref = _span(pc)
    if not (start - window() <= recorded.started_at <= end + window()):
        return None
    ours, theirs = _pbx_numbers(pc), _recorded_numbers(recorded)
    if not theirs:
        return None
    common = ours & theirs
    if common == theirs:
        return "numbers"
    # One external number in common, the other side a public number (the DID an SBC sees where the
    # PBX reports the extension); an extension that differs from the PBX's is another call.
    if len(common) == 1 and next(iter(common)).startswith("+") and all(n.startswith("+") for n in theirs):
        return "numbers"
    return None


def _best(ref: datetime, scored: list[tuple[Call | PbxCall, str, datetime]]) -> tuple[Any, str] | None:
    by_id = [s for s in scored if s[1] == "call_id"]
    pool = by_id or scored
    if not pool:
        return None
    pool.sort(key=lambda s: abs((s[2] - ref).total_seconds()))
    if (
        len(pool) > 1
        and abs(abs((pool[1][2] - ref).total_seconds()) - abs((pool[0][2] - ref).total_seconds()))
        < AMBIGUOUS.total_seconds()
    ):
        log.warning("pbx link: %d equally close candidates, not linking", len(pool))
        return None
    return pool[0][0], pool[0][1]


def link_pbx_call(pbx_call_pk: int) -> Call | None:
    """Merge this PBX call into its recording if one matches; the merged call, else None."""
    pc = PbxCall.objects.select_related("call").filter(pk=pbx_call_pk).first()
    if pc is None or pc.linked_at is not None or pc.call.source != Source.PBX:
        return None
    start, end, ref = _span(pc)
    candidates = (
        Call.objects.exclude(source=Source.PBX)
        .filter(started_at__gte=start - ID_WINDOW, started_at__lte=end + ID_WINDOW, pbx_links__isnull=True)
        .order_by("started_at")[:200]
    )
    scored = [(c, rule, c.started_at) for c in candidates if (rule := match_rule(pc, c))]
    best = _best(ref, scored)
    if best is None:
        return None
    return merge(pc, best[0], best[1])


def link_recorded_call(call_id: Any, started_at: Any = None) -> Call | None:
    """Find the PBX call of a recorded call and merge them; the merged call, else None.

    ``started_at`` (the recorded call's start, when the caller knows it) lets a recording with
    no PBX call near it in time cost one query: the usual case for SIPREC without PBX events.
    """
    call = None
    if started_at is None:
        call = _recorded_call(call_id)
        if call is None:
            return None
        started_at = call.started_at
    pcs = list(
        PbxCall.objects.select_related("call").filter(
            call__source=Source.PBX,
            linked_at__isnull=True,
            call__started_at__gte=started_at - ID_WINDOW,
            call__started_at__lte=started_at + ID_WINDOW,
        )[:200]
    )
    if not pcs:
        return None
    call = call or _recorded_call(call_id)
    if call is None or PbxCall.objects.filter(call=call).exists():
        return None
    scored = [(pc, rule, _span(pc)[2]) for pc in pcs if (rule := match_rule(pc, call))]
    best = _best(call.started_at, scored)
    if best is None:
        return None
    return merge(best[0], call, best[1])


def _recorded_call(call_id: Any) -> Call | None:
    return Call.objects.filter(pk=call_id).exclude(source=Source.PBX).first()


def merge(pc: PbxCall, recorded: Call, rule: str) -> Call:
    with transaction.atomic():
        pc = PbxCall.objects.select_for_update().select_related("call").get(pk=pc.pk)
        recorded = Call.objects.select_for_update().get(pk=recorded.pk)
        pbx_only = pc.call
        if pbx_only.pk == recorded.pk or pbx_only.source != Source.PBX:
            return recorded
        if recorded.agent_id is None and pbx_only.agent_id is not None:
            recorded.agent_id = pbx_only.agent_id
        if recorded.team_id is None and pbx_only.team_id is not None:
            recorded.team_id = pbx_only.team_id
        if recorded.answered_at is None and pbx_only.answered_at is not None:
            recorded.answered_at = pbx_only.answered_at
        if recorded.direction == "unknown" and pbx_only.direction != "unknown":
            recorded.direction = pbx_only.direction
        for attr in ("caller_name", "callee_name"):
            if not getattr(recorded, attr) and getattr(pbx_only, attr):
                setattr(recorded, attr, getattr(pbx_only, attr))
        meta = dict(recorded.metadata or {})
        meta["pbx"] = (pbx_only.metadata or {}).get("pbx", {})
        meta["pbx_link"] = {"rule": rule, "pbx_only_call": str(pbx_only.pk), "at": timezone.now().isoformat()}
        recorded.metadata = meta
        recorded.save()
        Comment.objects.filter(call=pbx_only).update(call=recorded)
        have = set(CallTag.objects.filter(call=recorded).values_list("tag_id", flat=True))
        CallTag.objects.filter(call=pbx_only).exclude(tag_id__in=have).update(call=recorded)
        PbxEvent.objects.filter(call=pbx_only).update(call=recorded)
        pc.call = recorded
        pc.linked_at = timezone.now()
        pc.save(update_fields=["call", "linked_at"])
        pbx_only.delete()
        log.info(
            "pbx link: call %s (PBX %s) merged into recorded call %s by %s",
            pbx_only.pk,
            pc.pbx_call_id,
            recorded.pk,
            rule,
        )
        transaction.on_commit(lambda: publish(CALL_UPDATED, recorded))
    return recorded


def _safely(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # linking is an improvement; it must never break recording
        log.exception("x pbx link failed for %s", args)


def on_call_saved(sender: Any, instance: Call, created: bool, **kwargs: Any) -> None:
    if not created or instance.source == Source.PBX or kwargs.get("raw"):
        return
    call_id, started_at = instance.pk, instance.started_at
    transaction.on_commit(lambda: _safely(link_recorded_call, call_id, started_at))


def on_recording_ready(sender: Any, call: Call, **kwargs: Any) -> None:
    _safely(link_recorded_call, call.pk)
