"""How a PBX proves an event is its own.

1. **Signature** (recommended; any PBX or bridge that can run a script):
   ``X-Callvault-Key: <integration key>`` and
   ``X-Callvault-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``: exactly
   the scheme of callvault's own outgoing webhooks (:mod:`callvault.apps.webhooks.signing`).
   A ``t`` more than 5 minutes from our clock is refused (``signature_expired``); within those
   5 minutes the same signature is applied once (the signature is stored as the event's replay key,
   so a captured request sent again is a no-op). Comparison is constant-time.
2. **Token** (for PBXs and phones that cannot compute an HMAC: 3CX, Yealink action URLs, Asterisk
   dialplan ``CURL()``): the integration's secret itself, in ``Authorization: Bearer``, in
   ``X-Callvault-Token``, or as ``?token=`` in the URL (Yealink can do nothing else; a URL token
   ends up in proxy logs, so use HTTPS and a separate integration per site). Only integrations set
   to "token" accept it; a token cannot be replayed-detected beyond ``event_id``, which is why the
   signature is the default.

Failures answer 401 with one error code and no hint which part was wrong beyond that code; they
are logged with the client address and counted on the integration (when the key or token names
one), never with the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F
from django.http import HttpRequest
from django.utils.translation import gettext as _

from callvault.apps.api.auth import Unauthenticated
from callvault.apps.audit.request import client_ip
from callvault.apps.pbx.models import AuthMode, Integration, hash_secret
from callvault.apps.webhooks import signing

log = logging.getLogger("callvault.pbx")

KEY_HEADER = "X-Callvault-Key"
SIGNATURE_HEADER = "X-Callvault-Signature"
TOKEN_HEADER = "X-Callvault-Token"  # noqa: S105
TOLERANCE = signing.TOLERANCE


@dataclass(frozen=True)
class Authenticated:
    integration: Integration
    method: str  # "signature", "header_token" or "url_token"
    replay_key: str = ""  # for signatures: the signature itself


REALM = 'Bearer realm="callvault-pbx"'


def _fail(code: str, message: str) -> Unauthenticated:
    return Unauthenticated(code, message, REALM)


def _reject(
    request: HttpRequest, integration: Integration | None, code: str, message: str
) -> Unauthenticated:
    log.warning(
        "x pbx event refused (%s) from %s%s",
        code,
        client_ip(request),
        f" for integration {integration.key}" if integration else "",
    )
    if integration is not None:
        from django.utils import timezone

        Integration.objects.filter(pk=integration.pk).update(
            rejected_count=F("rejected_count") + 1, last_rejected_at=timezone.now(), last_rejected_reason=code
        )
    return _fail(code, message)


def _timestamp(header: str) -> int | None:
    for part in header.split(","):
        key, _sep, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) < 16:
            return int(value)
    return None


def authenticate(request: HttpRequest, body: bytes, now: datetime) -> Authenticated:
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        return _by_signature(request, signature, body, now)
    if request.headers.get(KEY_HEADER) is not None:
        # A credential offered must be a valid one: a key without its signature is refused, never
        # quietly replaced by another credential of the same request.
        raise _reject(
            request, None, "invalid_signature", _("X-Callvault-Key には X-Callvault-Signature が必要です。")
        )
    token, method = _token_of(request)
    if token is None:
        raise _reject(
            request,
            None,
            "not_authenticated",
            _("署名 (X-Callvault-Key と X-Callvault-Signature) かトークンが必要です。"),
        )
    digest = hash_secret(token)
    integration = Integration.objects.select_related("team").filter(secret_hash=digest).first()
    if integration is None or not hmac.compare_digest(integration.secret_hash, digest):
        raise _reject(request, None, "invalid_token", _("トークンが正しくありません。"))
    if not integration.enabled:
        raise _reject(request, integration, "integration_disabled", _("この PBX 連携は停止中です。"))
    if integration.auth_mode != AuthMode.TOKEN:
        raise _reject(
            request,
            integration,
            "signature_required",
            _("この PBX 連携は署名付きのイベントだけを受け付けます (X-Callvault-Signature)。"),
        )
    return Authenticated(integration, method)


def _token_of(request: HttpRequest) -> tuple[str | None, str]:
    header = request.headers.get("Authorization")
    if header is not None:  # offered, even empty: it must be valid (no falling back to another one)
        scheme, _sep, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()[:200], "header_token"
        return "", "header_token"  # present but malformed: refuse rather than fall back
    if request.headers.get(TOKEN_HEADER):
        return str(request.headers[TOKEN_HEADER]).strip()[:200], "header_token"
    token = request.GET.get("token")
    if token:
        return token.strip()[:200], "url_token"
    return None, ""


def _by_signature(request: HttpRequest, header: str, body: bytes, now: datetime) -> Authenticated:
    key = (request.headers.get(KEY_HEADER) or "").strip()
    integration = Integration.objects.select_related("team").filter(key=key[:32]).first() if key else None
    if integration is None:
        raise _reject(request, None, "invalid_signature", _("X-Callvault-Key が正しくありません。"))
    if not integration.enabled:
        raise _reject(request, integration, "integration_disabled", _("この PBX 連携は停止中です。"))
    t = _timestamp(header) if len(header) <= 1000 else None
    if t is None:
        raise _reject(request, integration, "invalid_signature", _("署名の形式が正しくありません。"))
    if abs(now.timestamp() - t) > TOLERANCE:
        raise _reject(
            request,
            integration,
            "signature_expired",
            _("署名の時刻 (t) が現在時刻から 5 分以上ずれています。PBX の時計を合わせてください。"),
        )
    if not signing.verify(integration.secret, header, body, now=now.timestamp(), tolerance=TOLERANCE):
        raise _reject(request, integration, "invalid_signature", _("署名が正しくありません。"))
    replay = "sig:" + hashlib.sha256(f"{t}.".encode() + body).hexdigest()
    return Authenticated(integration, "signature", replay)
