"""``POST /api/v1/events`` (and ``GET`` for Yealink action URLs): PBX call events.

Not authenticated like the rest of the API (there is no user): a PBX integration signs each
event or presents its token (:mod:`callvault.apps.pbx.auth`). The body is JSON, or form fields
(Asterisk ``CURL()``); ``GET`` takes the same fields in the query string and only works with a
token (a phone's action URL cannot sign).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Router, Schema

from callvault.apps.api.errors import ApiError
from callvault.apps.api.schemas import ErrorOut
from callvault.apps.pbx import auth, services
from callvault.apps.pbx.events import BOOLEAN_WORDS, DIRECTION_NAMES, EVENT_NAMES, parse_event

router = Router(auth=None, tags=["pbx"])

_NUMBER = {"type": "string", "maxLength": 100}
# What parse_event accepts, stated as exactly as a schema can (aliases included); rules of meaning
# (a time within the last 30 days, a phone number in a number field, no control characters)
# answer 400 naming the field.
EVENT_FIELDS: dict[str, Any] = {
    "event": {
        "type": "string",
        "enum": sorted(EVENT_NAMES),
        "description": "ringing / answered / ended / transfer",
    },
    "call_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "description": "PBX の通話 ID (同じ通話のイベントで同じ値)",
    },
    "event_id": {
        "type": "string",
        "maxLength": 128,
        "description": "イベントの一意な ID (再送の重複除去)",
    },
    "time": {
        "type": ["string", "number"],
        "maxLength": 40,
        "description": "イベントの時刻: ISO 8601 か UNIX 秒 (省略時は受信時刻)",
    },
    "caller": {**_NUMBER, "description": "発信者番号"},
    "callee": {**_NUMBER, "description": "着信者番号"},
    "caller_name": {"type": "string", "maxLength": 100},
    "callee_name": {"type": "string", "maxLength": 100},
    "extension": {**_NUMBER, "description": "応答した (転送先の) 内線番号"},
    "agent": {
        "type": "string",
        "maxLength": 150,
        "description": "担当者のユーザー名 (任意)",
    },
    "direction": {"type": "string", "enum": sorted(DIRECTION_NAMES)},
    "sip_call_id": {
        "type": "string",
        "maxLength": 255,
        "description": "録音と紐付ける SIP Call-ID",
    },
    "reason": {
        "type": "string",
        "maxLength": 64,
        "description": "終了理由 (NOANSWER、BUSY などは不在着信)",
    },
    "answered": {
        "type": ["boolean", "string"],
        "enum": [True, False, *sorted(BOOLEAN_WORDS)],
        "description": "ended: 応答があったか",
    },
    "talk_seconds": {
        "type": ["number", "string"],
        "minimum": 0,
        "maximum": 604800,
        "pattern": "^([0-9]{1,6}(\\.[0-9]+)?|([0-9]{1,3}:)?[0-9]{1,2}:[0-9]{2})$",
        "description": "ended: 通話秒数 (秒数か hh:mm:ss)",
    },
    "started_at": {
        "type": ["string", "number"],
        "maxLength": 40,
        "description": "ended: 通話の開始時刻 (通話記録だけを送る PBX 用)",
    },
    "transfer_to": {**_NUMBER, "description": "transfer: 転送先の内線番号"},
}
_SECURITY: list[dict[str, list[str]]] = [
    {"PbxSignature": [], "PbxKey": []},
    {"PbxToken": []},
    {"PbxBearer": []},
]
_DESCRIPTION = """\
PBX の通話イベント (呼出・応答・終了・転送) を受け取り、通話一覧に反映します (録音がない不在着信も)。
同じ通話の録音 (SIPREC など) があれば 1 件の通話にまとめます。

**認証** (PBX 連携の設定画面で発行): 署名 `X-Callvault-Key` +
`X-Callvault-Signature: t=<UNIX時刻>,v1=<HMAC-SHA256(シークレット, "<t>." + 本文)>`
(5 分以上ずれた時刻は拒否、同じ署名の再送は 1 回だけ反映)、または署名できない機器用のトークン
(`Authorization: Bearer`、`X-Callvault-Token`、URL の `?token=`)。

本文は JSON かフォーム形式。GET はクエリ文字列で同じ項目を受け取ります
(Yealink のアクション URL 用、トークンのみ)。
"""


class EventOut(Schema):
    status: str
    call_id: str
    state: str
    linked: bool


def _openapi(method: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"security": _SECURITY}
    if method == "post":
        schema = {"type": "object", "required": ["event", "call_id"], "properties": EVENT_FIELDS}
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    else:
        extra["parameters"] = [
            {"in": "query", "name": name, "required": name in ("event", "call_id"), "schema": spec}
            for name, spec in EVENT_FIELDS.items()
            if spec.get("type") != "boolean"
        ]
    return extra


def _data(request: HttpRequest) -> dict[str, Any]:
    if request.method == "GET":
        return {k: v for k, v in request.GET.items() if k != "token"}
    content_type = (request.content_type or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        return {k: v for k, v in request.POST.items() if k != "token"}
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_body", _("リクエスト本文を JSON として読み取れません。")) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", _("イベントは JSON オブジェクトで送ってください。"))
    return data


def _receive(request: HttpRequest) -> dict[str, Any]:
    now = timezone.now()
    body = request.body if request.method != "GET" else b""
    who = auth.authenticate(request, body, now)
    if request.method == "GET" and who.method == "signature":
        raise ApiError(405, "method_not_allowed", _("署名付きのイベントは POST で送ってください。"))
    ev = parse_event(_data(request), now)
    try:
        outcome = services.apply_event(
            who.integration, ev, replay_key=who.replay_key, method=who.method, payload=_data(request), now=now
        )
    except LookupError:
        raise ApiError(409, "call_deleted", _("この通話はすでに削除されています。")) from None
    return {
        "status": outcome.status,
        "call_id": str(outcome.call.pk),
        "state": outcome.call.state,
        "linked": outcome.linked,
    }


RESPONSES: dict[int, Any] = {
    200: EventOut,
    400: ErrorOut,
    401: ErrorOut,
    405: ErrorOut,
    409: ErrorOut,
    413: ErrorOut,
    414: ErrorOut,
}


@router.post(
    "/events",
    response=RESPONSES,
    url_name="pbx_events",
    summary="PBX の通話イベント",
    description=_DESCRIPTION,
    openapi_extra=_openapi("post"),
)
def post_event(request: HttpRequest) -> Any:
    return _receive(request)


@router.get(
    "/events",
    response=RESPONSES,
    url_name="pbx_events_get",
    summary="PBX の通話イベント (GET、Yealink 用)",
    description=_DESCRIPTION,
    openapi_extra=_openapi("get"),
)
def get_event(request: HttpRequest) -> Any:
    return _receive(request)
