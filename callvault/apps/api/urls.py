"""REST API v1 routes (mounted at ``/api/v1/``, namespace ``api``).

Every route is wrapped by :func:`bounded`: a query string over 4 KiB answers 414 and a body
over 64 KiB answers 413 before anything parses them (a comment is at most 4000 characters).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext as _

from callvault.apps.api.api import api
from callvault.apps.api.docs import docs_asset
from callvault.apps.api.errors import error_body

MAX_QUERY_STRING = 4096
MAX_BODY = 64 * 1024

app_name = "api"


def _too_big(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status, json_dumps_params={"ensure_ascii": False})


# Routes that take audio (callvault/apps/uploads): bodies up to CALLVAULT_UPLOAD_MAX_MB (+ form overhead).
# (Django resolves a path to its first pattern; every method of the path shares that view.)
LARGE_BODY_ROUTES = {"upload_create", "upload_options", "upload_detail", "upload_head", "upload_patch"}


def _upload_limit() -> int:
    from django.conf import settings

    return int(settings.UPLOAD_MAX_BYTES) + 1024 * 1024


def bounded(view: Callable[..., HttpResponse], *, large: bool = False) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if len(request.META.get("QUERY_STRING", "")) > MAX_QUERY_STRING:
            return _too_big(414, "uri_too_long", _("クエリ文字列が長すぎます (4096 バイトまで)。"))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if large and length > _upload_limit():
            return _too_big(
                413, "payload_too_large", _("ファイルが大きすぎます (アップロードの上限を超えています)。")
            )
        if not large and length > MAX_BODY:
            return _too_big(413, "payload_too_large", _("リクエスト本文が大きすぎます (64 KiB まで)。"))
        return view(request, *args, **kwargs)

    return wrapper


def _wrap(pattern: Any) -> Any:
    if isinstance(pattern, URLPattern):
        pattern.callback = bounded(pattern.callback, large=pattern.name in LARGE_BODY_ROUTES)
    return pattern


_ninja_patterns, _app, _namespace = api.urls
urlpatterns: list[Any] = [
    path("docs/assets/<str:name>", docs_asset, name="docs_asset"),
    *[_wrap(p) for p in _ninja_patterns],
]
