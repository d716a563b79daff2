"""``/api/v1/uploads``: recordings from phone apps and recorder boxes (one request, or tus).

Who may upload:
- a recording device with its own token (``Authorization: Bearer cvd_...``, 管理 → 録音端末);
  its calls belong to its team (and its line's or its own user);
- a user's API token (or browser session) of an organisation admin (any team), or of a team's
  supervisor (only teams they supervise). Agents and auditors get 403.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile as NinjaFile

from callvault.apps.accounts.access import is_admin, role_of, supervised_team_ids
from callvault.apps.api.auth import BearerTokenAuth, SessionCsrfAuth
from callvault.apps.api.errors import ApiError
from callvault.apps.api.schemas import ErrorOut
from callvault.apps.audit.request import client_ip
from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.apps.uploads import services, tus
from callvault.apps.uploads.auth import DeviceTokenAuth, device_of
from callvault.apps.uploads.models import Upload, UploadState

router = Router(auth=[DeviceTokenAuth(), BearerTokenAuth(), SessionCsrfAuth()], tags=["uploads"])

ERRORS: dict[int, Any] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    410: ErrorOut,
    412: ErrorOut,
    413: ErrorOut,
    415: ErrorOut,
    422: ErrorOut,
    423: ErrorOut,
}


class UploadForm(Schema):
    started_at: str | None = Field(
        None,
        max_length=40,
        description="通話の開始日時。ISO 8601 (2026-11-27T14:05:00+09:00)。時差なしは日本時間",
    )
    caller: str | None = Field(
        None, max_length=64, description="発信者の番号 (03-1234-5678、+81312345678、内線 201)"
    )
    callee: str | None = Field(None, max_length=64, description="着信者の番号")
    caller_name: str | None = Field(None, max_length=100)
    callee_name: str | None = Field(None, max_length=100)
    direction: Literal["in", "out", "internal", "unknown"] | None = Field(
        None, description="in = 着信、out = 発信、internal = 内線"
    )
    duration: float | None = Field(None, ge=0, description="通話時間 (秒)。省略時は録音の長さ")
    user: str | None = Field(
        None, max_length=150, description="担当者のユーザー名 (端末のチームのメンバーに限る)"
    )
    team: str | None = Field(
        None, max_length=100, description="チーム名 (管理者・複数チームのスーパーバイザー)"
    )
    layout: Literal["caller_left", "callee_left"] | None = Field(
        None, description="ステレオ録音の左右: caller_left = 左が発信者"
    )
    client_upload_id: str | None = Field(
        None, max_length=100, description="端末側のアップロード ID。同じ ID の再送は同じ通話になります"
    )


class RecordingInfo(Schema):
    format: str = Field(
        description="保存形式 (送られたファイルそのまま): wav, mp3, m4a, aac, amr, opus, ogg, flac"
    )
    codec: str
    channels: int = Field(description="1 = モノラル (話者ごとの消音なし)、2 = ステレオ")
    sample_rate: int
    duration: float = Field(description="デコードした長さ (秒)")
    bytes: int
    sha256: str = Field(description="元のファイルの SHA-256")


class UploadOut(Schema):
    upload_id: UUID | None = Field(description="tus のアップロード ID (一括送信では null)")
    state: UploadState
    offset: int = Field(description="サーバーが受け取ったバイト数")
    length: int
    call_id: UUID | None = Field(description="作成された (または既存の) 通話")
    duplicate: bool = Field(description="同じファイルがすでに通話になっていた (新しい通話は作られない)")
    recording: RecordingInfo | None
    error: ErrorOut | None
    expires_at: datetime | None


def _api_error(exc: services.UploadError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.param)


def _origin(request: HttpRequest, via: str) -> services.Origin:
    device = device_of(request)
    if device is not None:
        return services.Origin(via=via, device=device, ip=client_ip(request))
    user: Any = request.user
    if not (is_admin(user) or (role_of(user) == "member" and supervised_team_ids(user))):
        raise ApiError(
            403,
            "forbidden",
            _("アップロードできるのは、録音端末のトークン、管理者、チームのスーパーバイザーだけです。"),
        )
    return services.Origin(via=via, user=user, ip=client_ip(request))


def _recording_info(call: Call | None) -> dict[str, Any] | None:
    rec = Recording.objects.filter(call=call).first() if call is not None else None
    if rec is None:
        return None
    return {
        "format": rec.format,
        "codec": rec.codec,
        "channels": rec.channels,
        "sample_rate": rec.sample_rate,
        "duration": rec.duration,
        "bytes": rec.bytes,
        "sha256": rec.sha256,
    }


def _upload_out(upload: Upload, *, duplicate: bool = False) -> dict[str, Any]:
    error = (
        {"error": upload.error_code or "failed", "message": upload.error, "param": None}
        if upload.error
        else None
    )
    return {
        "upload_id": upload.pk,
        "state": upload.state,
        "offset": upload.offset,
        "length": upload.length,
        "call_id": upload.call_id,
        "duplicate": duplicate or bool(upload.metadata.get("_duplicate")),
        "recording": _recording_info(upload.call) if upload.call_id else None,
        "error": error,
        "expires_at": upload.expires_at if upload.state == UploadState.RECEIVING else None,
    }


def _with(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for key, value in headers.items():
        response[key] = value
    return response


def _location(request: HttpRequest, upload: Upload) -> str:
    return request.build_absolute_uri(f"{request.path.rstrip('/')}/{upload.pk}")


def _metadata_dict(form: UploadForm) -> dict[str, str]:
    return {k: str(v) for k, v in form.dict().items() if v is not None}


def _precheck(info: services.CallInfo, origin: services.Origin) -> None:
    """Refuse a wrong user/team before any byte is sent (a tus client would otherwise send it all)."""
    probe = Call(started_at=info.started_at, direction=info.direction)
    services.resolve_assignment(probe, info, origin)


UPLOAD_DESCRIPTION = """\
録音ファイル 1 件を通話として登録します。2 通りの送り方があります。

**1 回で送る** (`multipart/form-data`): `file` に音声ファイル、ほかのフィールドに通話の情報。
応答は 201 (新しい通話) または 200 (同じファイルがすでに通話になっていた: `duplicate: true`)。

**再開できる送り方 (tus 1.0.0)**: `Tus-Resumable: 1.0.0`、`Upload-Length: <バイト数>`、
`Upload-Metadata: started_at <base64>,caller <base64>,...` (キーは下のフォームと同じ) を付けて
本文なしで POST すると 201 と `Location` (アップロードの URL) が返ります。続きは
`HEAD` で受信済みバイト数 (`Upload-Offset`) を確かめ、`PATCH` (`Content-Type:
application/offset+octet-stream`、`Upload-Offset`、任意で `Upload-Checksum: sha1 <base64>`) で
送ります。最後のバイトが届くと検証して通話を作ります (応答ヘッダー `Callvault-Call-Id`)。
同じ `client_upload_id` で作り直すと、進行中のアップロードの URL が返ります。

対応形式: WAV, MP3, M4A/AAC, AMR, Ogg Opus, FLAC。拡張子や Content-Type ではなく、デコードして
判定します (音声でないもの、壊れたもの、長すぎるもの、圧縮爆弾は 422)。元のファイルをそのまま
保存し、SHA-256 を記録します。モノラルはモノラルのまま (話者別の消音なし) です。
"""

_TUS_CREATE_HEADERS = [
    {
        "in": "header",
        "name": "Tus-Resumable",
        "required": False,
        "schema": {"type": "string"},
        "description": "tus で作成するときに 1.0.0 を付けます (ほかの値は 412)",
    },
    {
        "in": "header",
        "name": "Upload-Length",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
        "description": "tus: ファイル全体のバイト数",
    },
    {
        "in": "header",
        "name": "Upload-Metadata",
        "required": False,
        "schema": {"type": "string"},
        "description": "tus: `key base64(value)` をカンマ区切り (キーはフォームのフィールド名と filename)",
    },
]


@router.post(
    "/uploads",
    response={200: UploadOut, 201: UploadOut, **ERRORS},
    url_name="upload_create",
    summary="録音ファイルのアップロード (1 回で、または tus で再開可能に)",
    description=UPLOAD_DESCRIPTION,
    openapi_extra={"parameters": _TUS_CREATE_HEADERS},
)
def upload_create(
    request: HttpRequest,
    form: Form[UploadForm],
    file: File[NinjaFile | None] = None,
) -> Any:
    try:
        # tus creation has no form body; a multipart request is always the one-request upload
        length = request.META.get("CONTENT_LENGTH") or "0"
        form_body = request.content_type.startswith("multipart/") and length != "0"
        if file is None and tus.is_creation(request) and not form_body:
            return _tus_create(request)
        return _one_shot(request, form, file)
    except services.UploadError as exc:
        raise _api_error(exc) from None


def _one_shot(request: HttpRequest, form: UploadForm, file: NinjaFile | None) -> Any:
    origin = _origin(request, "api")
    if file is None:
        raise services.bad(
            "file", _("file (音声ファイル) がありません。multipart/form-data で送ってください。")
        )
    if file.size is not None and file.size > settings.UPLOAD_MAX_BYTES:
        raise services.UploadError(413, "payload_too_large", _("ファイルが大きすぎます。"), "file")
    raw = _metadata_dict(form)
    raw["filename"] = os.path.basename(file.name or "")[:255]
    info = services.parse_info(raw)
    _precheck(info, origin)
    with _private_copy(file) as path:
        result = services.ingest(path, info, origin)
    call = result.call
    body = {
        "upload_id": None,
        "state": UploadState.COMPLETE,
        "offset": file.size or 0,
        "length": file.size or 0,
        "call_id": call.pk,
        "duplicate": not result.created,
        "recording": _recording_info(call),
        "error": None,
        "expires_at": None,
    }
    return Status(201 if result.created else 200, body)


@contextlib.contextmanager
def _private_copy(file: NinjaFile) -> Any:
    """A path to the uploaded bytes that nobody else writes: Django's temp file, or a staging copy."""
    if isinstance(file, TemporaryUploadedFile):
        yield Path(file.temporary_file_path())
        return
    fd, name = tempfile.mkstemp(dir=services.staging_dir(), prefix="api-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in file.chunks():
                out.write(chunk)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _tus_create(request: HttpRequest) -> HttpResponse:
    if "Upload-Defer-Length" in request.headers:
        raise services.UploadError(
            400, "defer_length", _("Upload-Defer-Length には対応していません。"), "Upload-Defer-Length"
        )
    length = tus.parse_length(request.headers.get("Upload-Length"), "Upload-Length")
    metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
    tus.check_version(request)
    origin = _origin(request, "tus")
    tus.check_size(length)
    info = services.parse_info(metadata)
    _precheck(info, origin)
    upload = None
    if info.client_upload_id:
        upload = (
            Upload.objects.filter(
                device=origin.device,
                user=origin.user,
                client_upload_id=info.client_upload_id,
                state__in=[UploadState.RECEIVING, UploadState.COMPLETE],
                length=length,
            )
            .order_by("-created_at")
            .first()
        )
    if upload is None:
        upload = tus.create(
            length=length,
            metadata=metadata,
            client_upload_id=info.client_upload_id,
            device=origin.device,
            user=origin.user,
        )
    response = _json(request, 201, _upload_out(upload))
    return _with(
        response,
        {**tus.base_headers(), "Location": _location(request, upload), "Upload-Offset": str(upload.offset)},
    )


def _json(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
    from callvault.apps.api.api import api

    return api.create_response(request, UploadOut.model_validate(body).model_dump(mode="json"), status=status)


@router.api_operation(
    ["OPTIONS"],
    "/uploads",
    auth=None,
    response={204: None},
    url_name="upload_options",
    summary="tus の対応状況 (Tus-Version, Tus-Extension, Tus-Max-Size)",
    include_in_schema=False,
)
def upload_options(request: HttpRequest) -> HttpResponse:
    return _with(HttpResponse(status=204), tus.discovery_headers())


def _upload_for(request: HttpRequest, upload_id: UUID) -> Upload:
    """The caller's own upload (its device, or its user); 404 for anything else."""
    device = device_of(request)
    qs = Upload.objects.select_related("device", "user")
    if device is not None:
        qs = qs.filter(device=device)
    elif not is_admin(request.user):
        qs = qs.filter(user=request.user, device__isnull=True)
    upload = qs.filter(pk=upload_id).first()
    if upload is None:
        raise ApiError(404, "not_found", _("見つかりません。"))
    if upload.state == UploadState.RECEIVING and upload.expires_at < timezone.now():
        tus.discard(upload, UploadState.EXPIRED, error="期限切れ", code="expired")
    return upload


@router.get(
    "/uploads/{upload_id}",
    response={200: UploadOut, **ERRORS},
    url_name="upload_detail",
    summary="アップロードの状態 (tus)",
    description="受信済みバイト数、完了したら通話 ID、失敗したら理由。",
)
def upload_detail(request: HttpRequest, upload_id: UUID) -> Any:
    return Status(200, _upload_out(_upload_for(request, upload_id)))


@router.api_operation(
    ["HEAD"],
    "/uploads/{upload_id}",
    response={200: None, **ERRORS},
    url_name="upload_head",
    summary="tus: 受信済みバイト数 (Upload-Offset)",
)
def upload_head(request: HttpRequest, upload_id: UUID) -> HttpResponse:
    upload = _upload_for(request, upload_id)
    if upload.state in (UploadState.EXPIRED, UploadState.CANCELLED):
        return _with(HttpResponse(status=404), tus.base_headers())
    headers = {**tus.base_headers(), "Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length)}
    if upload.call_id:
        headers["Callvault-Call-Id"] = str(upload.call_id)
    return _with(HttpResponse(status=200), headers)


@router.patch(
    "/uploads/{upload_id}",
    response={204: None, **ERRORS, 460: ErrorOut},
    url_name="upload_patch",
    summary="tus: 続きのバイトを送る",
    description=(
        "`Upload-Offset` (HEAD で確かめた受信済みバイト数) から本文を追記します。最後のバイトが届くと"
        "ファイルを検証して通話を作り、`Callvault-Call-Id` を返します。検証できなかったときは 422 "
        "(理由は本文と GET で確認できます)。`Upload-Checksum` が合わないチャンクは 460 で破棄されます。"
    ),
    openapi_extra={
        "parameters": [
            {
                "in": "header",
                "name": "Upload-Offset",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            },
            {
                "in": "header",
                "name": "Tus-Resumable",
                "required": False,
                "schema": {"type": "string"},
                "description": "1.0.0 (ほかの値は 412)",
            },
            {
                "in": "header",
                "name": "Upload-Checksum",
                "required": False,
                "schema": {"type": "string"},
                "description": (
                    "sha1 / md5 / sha256 と Base64 のダイジェスト (例: sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=)"
                ),
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
    },
)
def upload_patch(request: HttpRequest, upload_id: UUID) -> HttpResponse:
    try:
        tus.parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
        tus.check_version(request)
        upload = _upload_for(request, upload_id)
        return _patch(request, upload)
    except services.UploadError as exc:
        raise _api_error(exc) from None


def _patch(request: HttpRequest, upload: Upload) -> HttpResponse:
    if upload.state in (UploadState.EXPIRED, UploadState.CANCELLED):
        raise services.UploadError(
            410, "upload_gone", _("このアップロードは期限切れか中止済みです。最初からやり直してください。")
        )
    if upload.state == UploadState.FAILED:
        raise services.UploadError(
            422, upload.error_code or "failed", upload.error or _("失敗しました。"), "file"
        )
    offset = tus.parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
    length = tus.parse_length(request.META.get("CONTENT_LENGTH") or "0", "Content-Length")
    if length and request.content_type != tus.OFFSET_TYPE:
        raise services.UploadError(
            415,
            "unsupported_media_type",
            _("Content-Type は %(type)s にしてください。") % {"type": tus.OFFSET_TYPE},
        )
    checksum = tus.parse_checksum(request.headers.get("Upload-Checksum"))
    if offset != upload.offset:
        raise services.UploadError(
            409,
            "offset_mismatch",
            _("Upload-Offset がサーバーの値 (%(offset)s) と違います。") % {"offset": upload.offset},
            "Upload-Offset",
        )
    if upload.state == UploadState.COMPLETE:
        if length:
            raise services.UploadError(409, "upload_complete", _("このアップロードはすでに完了しています。"))
        return _done(upload)
    if offset + length > upload.length:
        raise services.UploadError(
            413, "payload_too_large", _("Upload-Length を超えて送ろうとしています。"), "Content-Length"
        )
    if length:
        tus.append(upload, request, offset, length, checksum)
    if upload.offset == upload.length:
        _finish(request, upload)
        return _done(upload)
    return _with(HttpResponse(status=204), {**tus.base_headers(), "Upload-Offset": str(upload.offset)})


def _finish(request: HttpRequest, upload: Upload) -> None:
    """All bytes are here: validate and store as a call (or record why not)."""
    origin = services.Origin(via="tus", device=upload.device, user=upload.user, ip=client_ip(request))
    path = tus.staged_path(upload)
    try:
        info = services.parse_info(upload.metadata)
        result = services.ingest(path, info, origin)
    except services.UploadError as exc:
        if exc.status >= 500:
            raise
        tus.discard(upload, UploadState.FAILED, error=exc.message, code=exc.code)
        raise
    metadata = dict(upload.metadata)
    if not result.created:
        metadata["_duplicate"] = True
    Upload.objects.filter(pk=upload.pk).update(
        state=UploadState.COMPLETE, call=result.call, metadata=metadata, error="", error_code=""
    )
    upload.state, upload.call, upload.metadata = UploadState.COMPLETE, result.call, metadata
    path.unlink(missing_ok=True)


def _done(upload: Upload) -> HttpResponse:
    headers = {**tus.base_headers(), "Upload-Offset": str(upload.offset)}
    if upload.call_id:
        headers["Callvault-Call-Id"] = str(upload.call_id)
    return _with(HttpResponse(status=204), headers)


@router.delete(
    "/uploads/{upload_id}",
    response={204: None, **ERRORS},
    url_name="upload_delete",
    summary="tus: アップロードを中止する",
    description="受信済みのデータを削除します。完了したアップロードの通話は削除されません。",
)
def upload_delete(request: HttpRequest, upload_id: UUID) -> HttpResponse:
    try:
        tus.check_version(request)
    except services.UploadError as exc:
        raise _api_error(exc) from None
    upload = _upload_for(request, upload_id)
    if upload.state == UploadState.RECEIVING:
        tus.discard(upload, UploadState.CANCELLED, error="中止されました", code="cancelled")
    return _with(HttpResponse(status=204), tus.base_headers())
