"""How API requests authenticate: a bearer token, or the web session with CSRF.

- ``Authorization: Bearer cv_...``: the token is looked up by its SHA-256 (only the hash is
  stored); revoked tokens and tokens of deactivated users are refused. A request that carries an
  ``Authorization`` header at all must carry a valid bearer token, even if it also has a session:
  a forged, unknown, revoked or malformed credential answers 401 with ``WWW-Authenticate: Bearer``.
- Otherwise the Django session (the logged-in browser); unsafe methods need the CSRF token
  (``X-CSRFToken`` header), exactly as the web UI's forms.

Tokens are never logged, audited or echoed; failures are logged with the client address only.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from callvault.apps.accounts.models import ApiToken, hash_token
from callvault.apps.api.errors import ApiError
from callvault.apps.audit.request import client_ip

log = logging.getLogger("callvault.api")

# cv_ + token_urlsafe(32) is 46 characters; allow some room for future formats, no more.
TOKEN_RE = re.compile(r"cv_[A-Za-z0-9_-]{20,120}")
LAST_USED_EVERY = timedelta(minutes=1)
REALM = 'Bearer realm="callvault"'


class Unauthenticated(ApiError):
    """401 with the ``WWW-Authenticate`` challenge of RFC 6750."""

    def __init__(self, code: str, message: str, challenge: str = REALM) -> None:
        super().__init__(401, code, message)
        self.challenge = challenge


def invalid_token(message: str) -> Unauthenticated:
    return Unauthenticated(
        "invalid_token", message, f'{REALM}, error="invalid_token", error_description="invalid token"'
    )


class BearerTokenAuth(HttpBearer):
    """``Authorization: Bearer <token>`` with callvault API tokens."""

    openapi_description = "設定画面で発行した API トークン (cv_...)。`Authorization: Bearer <token>`"

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("Authorization")
        if header is None:
            return None  # no credential offered here: the session may authenticate
        scheme, _sep, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            log.warning("api: malformed Authorization header from %s", client_ip(request))
            raise invalid_token(_("Authorization ヘッダーは「Bearer <トークン>」の形式で指定してください。"))
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        if not TOKEN_RE.fullmatch(token):
            log.warning("api: malformed bearer token from %s", client_ip(request))
            raise invalid_token(_("APIトークンの形式が正しくありません。"))
        api_token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(token)).first()
        if api_token is None or api_token.revoked_at is not None or not api_token.user.is_active:
            log.warning("api: unknown, revoked or disabled bearer token from %s", client_ip(request))
            raise invalid_token(_("APIトークンが無効です(失効済み、または存在しません)。"))
        now = timezone.now()
        if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_EVERY:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        request.user = api_token.user
        request.api_token = api_token
        return api_token.user


class SessionCsrfAuth(APIKeyCookie):
    """The web session; unsafe methods must pass Django's CSRF check."""

    openapi_description = (
        "ログイン中のブラウザのセッション。GET 以外は `X-CSRFToken` ヘッダーに CSRF トークンが必要です。"
    )

    def __init__(self) -> None:
        from django.conf import settings

        self.param_name = settings.SESSION_COOKIE_NAME
        super().__init__(csrf=True)

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE") and check_csrf(request) is not None:
            raise ApiError(
                403,
                "csrf_failed",
                _("CSRFトークンが確認できません。ページを再読み込みしてからやり直してください。"),
            )
        request.api_token = None
        return user

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:  # pragma: no cover - unused
        return None


def token_of(request: HttpRequest) -> ApiToken | None:
    return getattr(request, "api_token", None)
