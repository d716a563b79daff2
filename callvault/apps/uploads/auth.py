"""Device tokens for the upload API: ``Authorization: Bearer cvd_...``.

Looked up by SHA-256 (only the hash is stored). A revoked or unknown device token answers 401
with a ``Bearer`` challenge; user API tokens (``cv_...``) are left to the next authenticator.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja.security import HttpBearer

from callvault.apps.accounts.models import hash_token
from callvault.apps.api.auth import invalid_token
from callvault.apps.audit.request import client_ip
from callvault.apps.uploads.models import Device

log = logging.getLogger("callvault.uploads")

DEVICE_TOKEN_RE = re.compile(r"cvd_[A-Za-z0-9_-]{20,120}")
LAST_SEEN_EVERY = timedelta(minutes=1)


class DeviceTokenAuth(HttpBearer):
    """``Authorization: Bearer cvd_...``: a recording device (phone app, recorder box)."""

    openapi_description = "録音端末のトークン (cvd_...)。管理画面の「録音端末」で発行します。"

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("Authorization") or ""
        scheme, _sep, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(Device.PREFIX):
            return None  # not a device token: a user's API token or the session may authenticate
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        if not DEVICE_TOKEN_RE.fullmatch(token):
            log.warning("uploads: malformed device token from %s", client_ip(request))
            raise invalid_token(_("端末トークンの形式が正しくありません。"))
        device = (
            Device.objects.select_related("team", "user", "line", "line__team", "line__user")
            .filter(token_hash=hash_token(token))
            .first()
        )
        if device is None or device.revoked_at is not None:
            log.warning("uploads: unknown or revoked device token from %s", client_ip(request))
            raise invalid_token(_("端末トークンが無効です (失効済み、または存在しません)。"))
        now = timezone.now()
        if device.last_seen_at is None or now - device.last_seen_at >= LAST_SEEN_EVERY:
            Device.objects.filter(pk=device.pk).update(last_seen_at=now)
        request.device = device
        request.api_token = None
        return device


def device_of(request: HttpRequest) -> Device | None:
    return getattr(request, "device", None)
