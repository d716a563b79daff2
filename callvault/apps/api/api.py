"""The REST API v1 (django-ninja): authentication, error answers, the OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.renderers import JSONRenderer

from callvault.apps.api.auth import REALM, BearerTokenAuth, SessionCsrfAuth, Unauthenticated, client_ip
from callvault.apps.api.customers import router as customers_router
from callvault.apps.api.docs import OfflineSwagger
from callvault.apps.api.errors import ApiError, error_body
from callvault.apps.api.views import router
from callvault.apps.pbx.api import router as pbx_router
from callvault.apps.uploads.api import router as uploads_router

log = logging.getLogger("callvault.api")

DESCRIPTION = """\
callvault の通話・録音を外部システム (CRM、チケット管理、分析基盤) から扱うための API です。

**認証**: `Authorization: Bearer <APIトークン>` (設定画面で発行)、またはログイン中のブラウザのセッション
(GET 以外は `X-CSRFToken` ヘッダーが必要)。トークンが不正・失効・形式違いなら 401 と
`WWW-Authenticate: Bearer` を返します。

**権限**: 画面と同じです。閲覧できない通話は存在しない通話と同じく 404 になります。

**エラー**: すべて `{"error": "<コード>", "message": "<説明>", "param": "<パラメーター名>|null"}`。
プログラムでは `error` と `param` で判定してください (`message` は表示用、既定は日本語、
`Accept-Language: en` で英語)。

**ページ送り**: 一覧は開始日時の新しい順。応答の `next` を `cursor` に渡すと次のページです
(同じ絞り込み条件で)。

**監査**: 録音の取得、コメントとタグの変更、削除はユーザー・IP アドレス・対象とともに監査ログに
記録されます。

**Webhook**: 録音が完成すると、登録先に `call.completed` を POST します (下の webhooks を参照)。
`X-Callvault-Signature: t=<UNIX時刻>,v1=<HMAC-SHA256>` の検証方法は webhooks の説明にあります。
"""

WEBHOOK_DESCRIPTION = """\
録音が完成した通話 (`call.completed`) を、管理画面で登録した URL に JSON で POST します。

ヘッダー:
- `X-Callvault-Event`: イベント名 (`call.completed`、テスト送信は `ping`)
- `X-Callvault-Delivery`: 配信 ID。再送でも変わりません。受信側はこの ID で重複を除いてください
  (少なくとも 1 回配信)。
- `X-Callvault-Signature`: `t=<UNIX時刻>,v1=<16進の HMAC-SHA256>`

署名の検証: 文字列 `"<t>.<受け取った本文そのまま>"` を Webhook のシークレットで HMAC-SHA256 し、
`v1` と定数時間で比較します。`t` が現在時刻から 5 分以上ずれていたら (リプレイ攻撃) 拒否してください。

2xx 以外の応答、タイムアウト (10 秒)、接続エラーは再送します: 10 秒、1 分、5 分、30 分、2 時間、
6 時間後。それでも失敗したら「失敗」として管理画面に残り、手動で再送できます。
"""


_SIGNATURE_HEADERS = [
    {
        "in": "header",
        "name": "X-Callvault-Event",
        "required": True,
        "schema": {"type": "string", "enum": ["call.completed", "ping"]},
    },
    {
        "in": "header",
        "name": "X-Callvault-Delivery",
        "required": True,
        "description": "配信 ID (再送でも同じ)",
        "schema": {"type": "string", "format": "uuid"},
    },
    {
        "in": "header",
        "name": "X-Callvault-Signature",
        "required": True,
        "description": "t=<UNIX時刻>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>",
        "schema": {"type": "string", "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$"},
    },
]

WEBHOOK_SCHEMAS: dict[str, Any] = {
    "WebhookCallCompleted": {
        "title": "WebhookCallCompleted",
        "type": "object",
        "required": ["id", "event", "created_at", "data"],
        "properties": {
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "配信 ID (X-Callvault-Delivery と同じ)",
            },
            "event": {"type": "string", "const": "call.completed"},
            "created_at": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "required": ["call"],
                "properties": {"call": {"$ref": "#/components/schemas/CallDetail"}},
            },
        },
    },
    "WebhookPing": {
        "title": "WebhookPing",
        "type": "object",
        "required": ["id", "event", "created_at", "data"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "event": {"type": "string", "const": "ping"},
            "created_at": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "required": ["webhook"],
                "properties": {
                    "webhook": {
                        "type": "object",
                        "required": ["id", "url"],
                        "properties": {"id": {"type": "integer"}, "url": {"type": "string"}},
                    }
                },
            },
        },
    },
}


def _webhook(summary: str, schema: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": WEBHOOK_DESCRIPTION,
            "parameters": _SIGNATURE_HEADERS,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
            },
            "responses": {
                "2XX": {"description": "受け取りました (2xx 以外は再送されます)"},
            },
        }
    }


PBX_SECURITY_SCHEMES: dict[str, Any] = {
    "PbxKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Callvault-Key",
        "description": "PBX 連携のキー (署名と一緒に送る)",
    },
    "PbxSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Callvault-Signature",
        "description": "t=<UNIX時刻>,v1=<hex HMAC-SHA256(シークレット, t + '.' + 本文)>",
    },
    "PbxToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Callvault-Token",
        "description": "トークン方式の PBX 連携のシークレット (URL の ?token= でも可)",
    },
    "PbxBearer": {"type": "http", "scheme": "bearer", "description": "トークン方式の PBX 連携のシークレット"},
}


class Renderer(JSONRenderer):
    json_dumps_params = {"ensure_ascii": False}


class CallvaultAPI(NinjaAPI):
    """Adds the outgoing webhooks (OpenAPI 3.1 ``webhooks``) to the generated document."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema["components"].setdefault("schemas", {}).update(WEBHOOK_SCHEMAS)
        schema["components"].setdefault("securitySchemes", {}).update(PBX_SECURITY_SCHEMES)
        schema["webhooks"] = {
            "call.completed": _webhook("録音の完成した通話", "WebhookCallCompleted"),
            "ping": _webhook("テスト送信 (管理画面の「テスト送信」)", "WebhookPing"),
        }
        return schema


api = CallvaultAPI(
    title="callvault API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    auth=[BearerTokenAuth(), SessionCsrfAuth()],
    renderer=Renderer(),
    docs=OfflineSwagger(),
    docs_url="/docs",
)
api.add_router("", router)
api.add_router("", customers_router)
api.add_router("", pbx_router)
api.add_router("", uploads_router)  # /uploads: phone apps and recorder boxes (callvault/apps/uploads)


def _respond(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
    return api.create_response(request, body, status=status)


@api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    response = _respond(request, exc.status, exc.body())
    if isinstance(exc, Unauthenticated):
        response["WWW-Authenticate"] = exc.challenge
    return response


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _respond(
        request,
        401,
        error_body(
            "not_authenticated",
            _("認証が必要です。Authorization: Bearer <APIトークン> を付けるか、ログインしてください。"),
        ),
    )
    response["WWW-Authenticate"] = REALM
    return response


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = list(exc.errors or [])
    if any((e.get("loc") or [""])[0] == "path" for e in errors):
        # A malformed id in the URL is simply something that does not exist.
        return _respond(request, 404, error_body("not_found", _("見つかりません。")))
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", []) if isinstance(part, str)]
    param = loc[-1] if loc and loc[-1] not in ("query", "body") else None
    detail = str(first.get("msg", ""))[:200]
    message = (
        _("%(param)s の値が正しくありません。") % {"param": param} if param else _("入力が正しくありません。")
    )
    return _respond(request, 400, error_body("invalid_parameter", f"{message} ({detail})", param))


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _respond(request, 404, error_body("not_found", _("見つかりません。")))


@api.exception_handler(PermissionDenied)
def on_permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _respond(request, 403, error_body("forbidden", _("この操作の権限がありません。")))


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400:
        return _respond(
            request, 400, error_body("invalid_body", _("リクエスト本文を JSON として読み取れません。"))
        )
    return _respond(request, exc.status_code, error_body("error", str(exc)))


@api.exception_handler(SuspiciousOperation)
def on_suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    if isinstance(exc, RequestDataTooBig):
        return _respond(request, 413, error_body("payload_too_large", _("リクエスト本文が大きすぎます。")))
    log.warning("api: rejected request from %s: %s", client_ip(request), type(exc).__name__)
    return _respond(request, 400, error_body("bad_request", _("リクエストが正しくありません。")))


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("x api: unexpected error on %s %s", request.method, request.path)
    return _respond(
        request,
        500,
        error_body("server_error", _("サーバー内部でエラーが発生しました。管理者に連絡してください。")),
    )
