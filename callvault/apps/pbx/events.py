"""What a PBX event says, read from JSON, a form post or a query string (Yealink action URLs).

Field names are lenient (PBXs name things differently); values are checked strictly and a bad
one answers 400 naming the field. See the README section "PBX call events" for the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.translation import gettext as _

from callvault.apps.api.errors import ApiError, bad_parameter

RINGING = "ringing"
ANSWERED = "answered"
ENDED = "ended"
TRANSFER = "transfer"
KINDS = (RINGING, ANSWERED, ENDED, TRANSFER)

_KIND_ALIASES = {
    "ringing": RINGING,
    "ring": RINGING,
    "incoming": RINGING,
    "incoming_call": RINGING,
    "outgoing": RINGING,
    "outgoing_call": RINGING,
    "dialing": RINGING,
    "answered": ANSWERED,
    "answer": ANSWERED,
    "established": ANSWERED,
    "call_established": ANSWERED,
    "connected": ANSWERED,
    "ended": ENDED,
    "end": ENDED,
    "hangup": ENDED,
    "terminated": ENDED,
    "call_terminated": ENDED,
    "completed": ENDED,
    "missed": ENDED,
    "missed_call": ENDED,
    "transfer": TRANSFER,
    "transferred": TRANSFER,
}
_MISSED = {"missed", "missed_call"}
_DIRECTIONS = {
    "in": "in",
    "inbound": "in",
    "incoming": "in",
    "out": "out",
    "outbound": "out",
    "outgoing": "out",
    "internal": "internal",
    "local": "internal",
}
# Hang-up causes that mean nobody answered (Asterisk DIALSTATUS, SIP-ish words, 3CX call types).
_NOT_ANSWERED = {
    "noanswer",
    "no_answer",
    "busy",
    "cancel",
    "cancelled",
    "chanunavail",
    "congestion",
    "missed",
    "notanswered",
    "not_answered",
    "unanswered",
    "rejected",
    "declined",
}
_TRUE = {"1", "true", "True", "yes", "on"}
_FALSE = {"0", "false", "False", "no", "off"}
_TEXT_MAX = {"call_id": 255, "event_id": 128, "sip_call_id": 255, "reason": 64, "agent": 150}
_NUMBER_RE = re.compile(r"[0-9+*#() .\-]{1,40}|anonymous|restricted|private|unavailable|非通知|公衆電話")
_HMS_RE = re.compile(r"(?:(\d{1,3}):)?(\d{1,2}):(\d{2})")
EVENT_NAMES = frozenset(_KIND_ALIASES)
DIRECTION_NAMES = frozenset(_DIRECTIONS)
BOOLEAN_WORDS = _TRUE | _FALSE
MAX_PAST = timedelta(days=30)
MAX_FUTURE = timedelta(minutes=5)


@dataclass
class EventIn:
    kind: str
    call_id: str
    time: datetime
    event_id: str = ""
    caller: str = ""
    callee: str = ""
    caller_name: str = ""
    callee_name: str = ""
    extension: str = ""
    agent: str = ""
    direction: str = ""
    sip_call_id: str = ""
    reason: str = ""
    answered: bool | None = None  # ended: did anyone answer? (None: as the other events say)
    talk_seconds: float | None = None  # ended: seconds from answer to hang-up, if the PBX says
    transfer_to: str = ""
    started_at: datetime | None = None  # ended (call journals): when the call began
    missed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _first(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in data and data[name] not in (None, ""):
            return data[name]
    return None


def _text(data: Mapping[str, Any], param: str, *names: str) -> str:
    value = _first(data, param, *names)
    if value is None:
        return ""
    if not isinstance(value, str):  # numbers too: a JSON number would lose a number's leading 0
        raise bad_parameter(param, _("%(param)s は文字列で指定してください。") % {"param": param})
    text = str(value).strip()
    limit = _TEXT_MAX.get(param, 100)
    if len(text) > limit or any(ord(ch) < 32 for ch in text):
        raise bad_parameter(param, _("%(param)s が長すぎるか、使えない文字を含みます。") % {"param": param})
    return text


def _number(data: Mapping[str, Any], param: str, *names: str) -> str:
    text = _text(data, param, *names)
    # "山田 <0312345678>" and "sip:0312345678@pbx" are what PBXs put in caller-id fields.
    match = re.search(r"<([^>]*)>", text)
    if match:
        text = match.group(1)
    if text.lower().startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1]
    text = text.split("@", 1)[0].split(";", 1)[0]  # Yealink's $remote is "0312345678@10.0.0.1"
    if text and not _NUMBER_RE.fullmatch(text.lower()):
        raise bad_parameter(param, _("%(param)s は電話番号・内線番号で指定してください。") % {"param": param})
    return text


def _bool(data: Mapping[str, Any], param: str) -> bool | None:
    value = data.get(param)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE:
        return True
    if isinstance(value, str) and value in _FALSE:
        return False
    raise bad_parameter(param, _("%(param)s は true か false で指定してください。") % {"param": param})


def parse_time(value: Any, now: datetime) -> datetime:
    """ISO 8601 (naive means the display time zone), UNIX seconds, or ``YYYY-MM-DD HH:MM:SS``."""
    if value is None or value == "":
        return now
    t: datetime
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"\d{9,11}(\.\d+)?", value)
    ):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        t = datetime.fromtimestamp(seconds, tz=UTC)
    elif isinstance(value, str) and len(value) <= 40:
        text = value.strip().replace("Z", "+00:00").replace("/", "-")
        t = datetime.fromisoformat(text)
        if t.tzinfo is None:
            t = t.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    else:
        raise ValueError("not a time")
    if t < now - MAX_PAST or t > now + MAX_FUTURE:
        raise ValueError("out of range")
    return t


def _seconds(data: Mapping[str, Any], param: str, *names: str) -> float | None:
    value = _first(data, param, *names)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _HMS_RE.fullmatch(value)):
        seconds = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}(\.[0-9]+)?", value):
        seconds = float(value)
    else:
        raise bad_parameter(param, _("%(param)s は秒数か hh:mm:ss で指定してください。") % {"param": param})
    if not 0 <= seconds <= 7 * 86400:
        raise bad_parameter(param, _("%(param)s の秒数が範囲外です。") % {"param": param})
    return seconds


def _started(data: Mapping[str, Any], now: datetime) -> datetime | None:
    value = _first(data, "started_at", "start")
    if value is None:
        return None
    try:
        return parse_time(value, now)
    except (ValueError, TypeError, OverflowError):
        raise bad_parameter("started_at", _("started_at の時刻が正しくありません。")) from None


def parse_event(data: Mapping[str, Any], now: datetime) -> EventIn:
    if not isinstance(data, Mapping):
        raise ApiError(400, "invalid_body", _("イベントは JSON オブジェクトで送ってください。"))
    raw_kind = _text(data, "event", "type")
    if not raw_kind:
        raise bad_parameter("event", _("event (ringing、answered、ended、transfer) を指定してください。"))
    kind = _KIND_ALIASES.get(raw_kind)
    if kind is None:
        raise bad_parameter(
            "event", _("event は ringing、answered、ended、transfer のいずれかで指定してください。")
        )
    call_id = _text(data, "call_id", "callid", "uniqueid", "linkedid")
    if not call_id:
        raise bad_parameter("call_id", _("call_id (PBX の通話 ID) を指定してください。"))
    try:
        when = parse_time(_first(data, "time", "timestamp", "datetime"), now)
    except (ValueError, TypeError, OverflowError):
        raise bad_parameter(
            "time",
            _(
                "time は ISO 8601 (2026-11-27T14:05:00+09:00) か UNIX 秒で、"
                "30 日前から現在までの時刻を指定してください。"
            ),
        ) from None
    direction_raw = _text(data, "direction")
    direction = _DIRECTIONS.get(direction_raw, "") if direction_raw else ""
    if direction_raw and not direction:
        raise bad_parameter("direction", _("direction は in、out、internal のいずれかで指定してください。"))
    reason = _text(data, "reason", "cause", "dialstatus", "call_type")
    if not direction and reason.lower() in ("inbound", "outbound"):  # 3CX's [CallType]
        direction = "in" if reason.lower() == "inbound" else "out"
    answered = _bool(data, "answered")
    if answered is None and reason.lower().replace(" ", "") in _NOT_ANSWERED:
        answered = False
    known = {
        "event",
        "type",
        "call_id",
        "callid",
        "uniqueid",
        "linkedid",
        "time",
        "timestamp",
        "datetime",
        "token",
        "direction",
        "started_at",
        "start",
        "reason",
        "cause",
        "dialstatus",
        "call_type",
        "answered",
    }
    return EventIn(
        kind=kind,
        call_id=call_id,
        time=when,
        event_id=_text(data, "event_id", "id"),
        caller=_number(data, "caller", "from", "caller_number", "callerid"),
        callee=_number(data, "callee", "to", "callee_number", "called", "dnid"),
        caller_name=_text(data, "caller_name", "from_name", "calleridname"),
        callee_name=_text(data, "callee_name", "to_name"),
        extension=_number(data, "extension", "ext", "agent_extension"),
        agent=_text(data, "agent", "user", "username"),
        direction=direction,
        sip_call_id=_text(data, "sip_call_id", "sip_callid", "x_call_id"),
        reason=reason,
        answered=answered if kind == ENDED else None,
        talk_seconds=_seconds(data, "talk_seconds", "billsec", "duration") if kind == ENDED else None,
        transfer_to=_number(data, "transfer_to", "target") if kind == TRANSFER else "",
        started_at=_started(data, now) if kind == ENDED else None,
        missed=raw_kind in _MISSED,
        extra={k: v for k, v in data.items() if k not in known and isinstance(v, str | int | float | bool)},
    )
