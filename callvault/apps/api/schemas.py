"""The API's request and response shapes; the OpenAPI document is generated from these.

Times are ISO 8601 in the installation's time zone (``2026-11-27T14:05:00+09:00``); numbers
are stored values (E.164 ``+81312345678`` or an extension ``201``) with ``display``, the
national format people read (``03-1234-5678``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from ninja import Field, Schema

from callvault.apps.accounts.models import TeamRole, UserRole
from callvault.apps.calls.models import CallState, Direction, RecordingState, Source

MAX_COMMENT = 4000
MAX_TAG = 50


class ErrorOut(Schema):
    error: str = Field(
        description="機械向けのコード: invalid_parameter, not_found, not_authenticated, invalid_token, "
        "forbidden, csrf_failed, range_not_satisfiable, payload_too_large, uri_too_long, server_error"
    )
    message: str = Field(description="人が読むための説明 (既定は日本語、Accept-Language: en で英語)")
    param: str | None = Field(description="誤りのあるパラメーター名 (該当する場合)")


class PartyOut(Schema):
    number: str = Field(description="保存値: E.164 (+81312345678)、内線 (201)、anonymous、payphone")
    display: str = Field(description="表示用 (03-1234-5678、非通知、公衆電話)")
    name: str


class TeamRef(Schema):
    id: int
    name: str


class UserRef(Schema):
    id: int
    username: str
    display_name: str


class TagOut(Schema):
    id: int
    name: str
    color: str = Field(description="#rrggbb")


class CallSummary(Schema):
    id: UUID
    url: str = Field(description="この通話の API URL")
    source: Source
    direction: Direction
    state: CallState
    recording_state: RecordingState
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration: float | None = Field(description="通話時間 (秒)")
    caller: PartyOut
    callee: PartyOut
    team: TeamRef | None
    agent: UserRef | None
    tags: list[TagOut]


class CallPage(Schema):
    items: list[CallSummary]
    next: str | None = Field(
        description="次のページのカーソル (cursor パラメーターに渡す)。最後のページでは null"
    )
    limit: int


class ParticipantOut(Schema):
    role: str = Field(description="caller / callee / other")
    number: str
    display: str
    name: str


class StreamOut(Schema):
    index: int
    label: str
    role: str
    codec: str
    unsupported: bool
    packets_received: int
    packets_lost: int
    packets_late: int
    packets_duplicate: int
    packets_dropped: int
    packets_capture_lost: int = Field(0, description="キャプチャで取りこぼしたパケット (損失に含まず)")
    ssrc_changes: int
    jitter_ms: float


class DtmfOut(Schema):
    digit: str
    offset: float = Field(description="録音の先頭からの秒数")
    duration_ms: int
    stream_index: int


class CommentOut(Schema):
    id: int
    author: UserRef | None
    offset: float | None = Field(description="録音の再生位置 (秒)。null は通話全体へのコメント")
    text: str
    created_at: datetime


class RecordingOut(Schema):
    format: str = Field(description="opus / flac / wav")
    codec: str
    channels: int
    sample_rate: int
    bytes: int
    sha256: str
    duration: float
    channel_map: dict[str, str] = Field(description='例: {"left": "caller", "right": "callee"}')
    download_url: str = Field(description="録音ファイルの URL (同じ認証で取得、Range 対応)")


class PacketsOut(Schema):
    received: int
    lost: int
    late: int
    dropped: int
    capture_lost: int = Field(0, description="キャプチャで取りこぼしたパケット (ネットワーク損失ではない)")
    loss_ratio: float


class CallDetail(CallSummary):
    end_reason: str
    recording_error: str
    packets: PacketsOut
    participants: list[ParticipantOut]
    streams: list[StreamOut]
    dtmf: list[DtmfOut]
    comments: list[CommentOut]
    recording: RecordingOut | None


class CommentIn(Schema):
    text: str = Field(min_length=1, max_length=MAX_COMMENT, description="コメント (4000 文字まで)")
    offset: float | None = Field(
        None,
        ge=0,
        le=10_000_000,
        allow_inf_nan=False,
        strict=True,
        description="録音の再生位置 (秒)、録音の長さ以内",
    )


class TagIn(Schema):
    tag: str = Field(min_length=1, max_length=MAX_TAG, description="タグ名。未登録なら作成されます")


class TagList(Schema):
    tags: list[TagOut]


class MembershipOut(Schema):
    id: int
    name: str
    role: TeamRole


class MeOut(Schema):
    id: int
    username: str
    display_name: str
    role: UserRole
    teams: list[MembershipOut]
    can_export: bool
    can_view_audit: bool
    auth: Literal["session", "token"]
