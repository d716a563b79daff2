"""Assigning calls to teams and agents from the phone lines they involve."""

from __future__ import annotations

from callvault.apps.accounts.models import Line
from callvault.apps.calls.models import Call


def assign_call(call: Call) -> bool:
    """Give a call its team and agent from the configured lines; True if something changed.

    The company's own side decides: the callee's line for inbound calls, the caller's for
    outbound ones, either for internal or unknown direction. A line with a user wins over a
    team-only line (the extension of the agent who took the call).
    """
    caller = {call.caller_number, *call.participants.filter(role="caller").values_list("number", flat=True)}
    callee = {call.callee_number, *call.participants.exclude(role="caller").values_list("number", flat=True)}
    if call.direction == "in":
        candidates = [callee]
    elif call.direction == "out":
        candidates = [caller]
    else:
        candidates = [callee, caller]
    for numbers in candidates:
        numbers.discard("")
        lines = list(Line.objects.filter(number__in=numbers).select_related("team"))
        if not lines:
            continue
        line = next((ln for ln in lines if ln.user_id), lines[0])
        changed = call.team_id != line.team_id or (line.user_id is not None and call.agent_id != line.user_id)
        call.team_id = line.team_id
        if line.user_id is not None:
            call.agent_id = line.user_id
        return changed
    return False
