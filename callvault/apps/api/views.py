"""API v1 endpoints: thin HTTP wrappers over the access helper, ``filters`` and ``services``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from ninja import Path, Query, Router, Status

from callvault.apps.accounts.access import can_export, can_view_audit, role_of, visible_calls
from callvault.apps.api import filters, serialize, services
from callvault.apps.api.auth import token_of
from callvault.apps.api.errors import error_body
from callvault.apps.api.ranges import RangeFileResponse, Unsatisfiable, parse_range
from callvault.apps.api.schemas import (
    CallDetail,
    CallPage,
    CommentIn,
    CommentOut,
    ErrorOut,
    MeOut,
    TagIn,
    TagList,
    TagOut,
)
from callvault.apps.calls.models import Call, Comment, Tag
from callvault.storage import get_storage

router = Router()
MAX_ID = 2**63 - 1

# The error answers every authenticated operation can give.
AUTH_ERRORS: dict[int, Any] = {401: ErrorOut}
READ_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut}

_AUDIO = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
_AUDIO_CONTENT = {
    media: _AUDIO
    for media in ("audio/ogg", "audio/flac", "audio/wav", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr")
}
_RANGE_HEADERS = {
    "Accept-Ranges": {"schema": {"type": "string", "const": "bytes"}},
    "ETag": {"description": "録音の SHA-256 (引用符付き)", "schema": {"type": "string"}},
    "Content-Length": {"schema": {"type": "integer"}},
}


def origin(request: HttpRequest) -> str:
    """This request's scheme and host, for absolute links."""
    return request.build_absolute_uri("/").rstrip("/")


@router.get(
    "/me",
    response={200: MeOut, **AUTH_ERRORS},
    url_name="me",
    summary="ログイン中のユーザー",
    tags=["me"],
)
def me(request: HttpRequest) -> dict[str, Any]:
    user: Any = request.user
    profile = getattr(user, "profile", None)
    teams = [
        {"id": m.team.pk, "name": m.team.name, "role": m.role}
        for m in user.memberships.select_related("team").order_by("team__name")
    ]
    return {
        "id": user.pk,
        "username": user.get_username(),
        "display_name": (profile.display_name if profile else "") or user.get_username(),
        "role": role_of(user),
        "teams": teams,
        "can_export": can_export(user),
        "can_view_audit": can_view_audit(user),
        "auth": "token" if token_of(request) is not None else "session",
    }


@router.get(
    "/calls",
    response={200: CallPage, **READ_ERRORS},
    url_name="call_list",
    summary="通話の一覧 (新しい順、カーソルでページ送り)",
    description=(
        "閲覧できる通話だけを、開始日時の新しい順に返します。`next` が null でなければ、"
        "同じ条件に `cursor=<next>` を付けて次のページを取得します。"
        "不正な値は 400 (`param` に誤りのあるパラメーター名)。"
    ),
    tags=["calls"],
)
def call_list(request: HttpRequest, params: Query[filters.CallListParams]) -> dict[str, Any]:
    base = serialize.summary_queryset(visible_calls(request.user))
    rows, next_cursor = filters.list_calls(base, params)
    site = origin(request)
    return {
        "items": [serialize.call_summary(call, site) for call in rows],
        "next": next_cursor,
        "limit": params.limit,
    }


@router.get(
    "/calls/{call_id}",
    response={200: CallDetail, **READ_ERRORS},
    url_name="call_detail",
    summary="通話の詳細",
    description="参加者、メディアストリームと品質、DTMF、タグ、コメント、録音のメタデータ。",
    tags=["calls"],
)
def call_detail(request: HttpRequest, call_id: UUID) -> dict[str, Any]:
    call = services.call_for(request, call_id)
    full = serialize.detail_queryset(Call.objects.filter(pk=call.pk)).get()
    return serialize.call_detail(full, origin(request))


@router.get(
    "/calls/{call_id}/recording",
    response={200: None, 206: None, **READ_ERRORS, 416: ErrorOut},
    url_name="call_recording",
    summary="録音ファイル (Range 対応)",
    description=(
        "録音ファイルそのもの (Ogg Opus / FLAC / WAV、左 = 発信者、右 = 着信者。アップロードされた録音は"
        "送られた形式のまま: MP3 / M4A / AAC / AMR / Ogg、モノラルのこともあります)。"
        "`Range: bytes=...` で一部だけを取得できます (206、範囲外は 416)。"
        "監査ログには、Range なしのリクエストと 0 バイト目から始まるリクエストだけを「ダウンロード」として"
        "記録します (プレーヤーが Range で少しずつ読んでも 1 回として残ります)。"
    ),
    tags=["calls"],
    openapi_extra={
        "parameters": [
            {
                "in": "header",
                "name": "Range",
                "required": False,
                "schema": {"type": "string"},
                "description": (
                    "例: bytes=0-1023、bytes=1024-、bytes=-500。bytes 以外の単位や複数の範囲は無視して"
                    "ファイル全体を返します (RFC 9110)。"
                ),
            }
        ],
        "responses": {
            200: {"description": "録音ファイル全体", "content": _AUDIO_CONTENT, "headers": _RANGE_HEADERS},
            206: {
                "description": "指定範囲",
                "content": _AUDIO_CONTENT,
                "headers": {
                    **_RANGE_HEADERS,
                    "Content-Range": {"schema": {"type": "string"}, "description": "bytes 0-1023/52000"},
                },
            },
        },
    },
)
def call_recording(request: HttpRequest, call_id: UUID) -> HttpResponse:
    call = services.call_for(request, call_id)
    f = services.recording_file(call)
    etag = f'"{f.recording.sha256}"'
    header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if header and if_range is not None and if_range.strip() != etag:
        header = None  # the client's copy is stale: send the whole current file
    try:
        rng = parse_range(header, f.size)
    except Unsatisfiable:
        response = JsonResponse(
            error_body(
                "range_not_satisfiable",
                _("指定された範囲 (Range) は録音ファイル (%(size)d バイト) の中にありません。")
                % {"size": f.size},
            ),
            status=416,
            json_dumps_params={"ensure_ascii": False},
        )
        response["Content-Range"] = f"bytes */{f.size}"
        return response
    services.audit_download(request, call, rng, f.size)
    fh = get_storage().open(f.recording.storage_key)
    start, length = (0, f.size) if rng is None else (rng.start, rng.length)
    response = RangeFileResponse(fh, start, length, status=200 if rng is None else 206)
    response["Content-Type"] = f.content_type
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'attachment; filename="{f.filename}"'
    if rng is not None:
        response["Content-Range"] = f"bytes {rng.start}-{rng.end}/{f.size}"
    return response


@router.get(
    "/calls/{call_id}/comments",
    response={200: list[CommentOut], **READ_ERRORS},
    url_name="call_comments",
    summary="通話のコメント",
    tags=["comments"],
)
def comment_list(request: HttpRequest, call_id: UUID) -> list[dict[str, Any]]:
    call = services.call_for(request, call_id)
    comments = Comment.objects.filter(call=call).select_related("author", "author__profile")
    return [serialize.comment_dict(c) for c in comments]


@router.post(
    "/calls/{call_id}/comments",
    response={201: CommentOut, **WRITE_ERRORS},
    url_name="call_comments_add",
    summary="コメントを追加",
    description="`offset` (秒) を指定すると録音のその位置に紐づきます。録音の長さ以内で指定してください。",
    tags=["comments"],
)
def comment_add(request: HttpRequest, call_id: UUID, body: CommentIn) -> Status[dict[str, Any]]:
    call = services.call_for(request, call_id)
    comment = services.add_comment(request, call, body.text, body.offset)
    return Status(201, serialize.comment_dict(comment))


@router.delete(
    "/calls/{call_id}/comments/{comment_id}",
    response={204: None, **WRITE_ERRORS},
    url_name="call_comment_delete",
    summary="コメントを削除 (投稿者または管理者)",
    tags=["comments"],
)
def comment_delete(
    request: HttpRequest, call_id: UUID, comment_id: int = Path(..., ge=1, le=MAX_ID)
) -> Status[None]:
    call = services.call_for(request, call_id)
    services.delete_comment(request, call, comment_id)
    return Status(204, None)


@router.get(
    "/tags",
    response={200: list[TagOut], **AUTH_ERRORS},
    url_name="tags",
    summary="タグの一覧",
    tags=["tags"],
)
def tag_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [{"id": t.pk, "name": t.name, "color": t.color} for t in Tag.objects.order_by("name")]


@router.post(
    "/calls/{call_id}/tags",
    response={200: TagList, 201: TagList, **WRITE_ERRORS},
    url_name="call_tags",
    summary="通話にタグを付ける (未登録のタグは作成)",
    description="付けたら 201、すでに付いていれば 200。チームのスーパーバイザーと管理者が変更できます。",
    tags=["tags"],
)
def call_tag_add(request: HttpRequest, call_id: UUID, body: TagIn) -> Status[dict[str, Any]]:
    call = services.call_for(request, call_id)
    added = services.add_tag(request, call, body.tag)
    return Status(201 if added else 200, {"tags": services.tags_of_call(call)})


@router.delete(
    "/calls/{call_id}/tags",
    response={200: TagList, **WRITE_ERRORS},
    url_name="call_tags_remove",
    summary="通話からタグを外す",
    description="付いていないタグを指定しても 200 (現在のタグを返します)。",
    tags=["tags"],
)
def call_tag_remove(request: HttpRequest, call_id: UUID, body: TagIn) -> dict[str, Any]:
    call = services.call_for(request, call_id)
    services.remove_tag(request, call, body.tag)
    return {"tags": services.tags_of_call(call)}
