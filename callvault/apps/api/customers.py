"""API v1 customers (顧客): CRUD, notes and caller lookup by number.

Same rules as the pages: customers of one's teams (admins: all); supervisors of the owner team
and admins change and delete (others who see the customer get 403); a customer or team out of
reach is 404. Every read and change is audited with ``via=api`` and the token id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema, Status

from callvault import phone
from callvault.apps.accounts import access
from callvault.apps.api.errors import ApiError, bad_parameter, forbidden, not_found
from callvault.apps.api.schemas import ErrorOut, TeamRef
from callvault.apps.api.services import audit, clean_text
from callvault.apps.audit.models import Action
from callvault.apps.customers import lookup, services
from callvault.apps.customers.models import Customer, CustomerNote
from callvault.apps.customers.services import CustomerError, CustomerInput, PhoneInput
from callvault.apps.customers.views import search
from callvault.apps.web.format import user_label

router = Router(tags=["customers"])
MAX_ID = 2**63 - 1
MAX_OFFSET = 1_000_000
READ_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut}

PhoneLabelName = Literal["mobile", "work", "home", "fax", "other"]
CustomValue = str | int | float | bool


class PhoneIn(Schema):
    number: str = Field(max_length=40, description="03-1234-5678、+81312345678 など (E.164 で保存)")
    label: PhoneLabelName = "work"


class PhoneOut(Schema):
    number: str = Field(description="E.164 (+81312345678)")
    display: str = Field(description="表示用 (03-1234-5678)")
    label: PhoneLabelName


class CustomerIn(Schema):
    kind: Literal["person", "company"] = "person"
    name: str = Field(min_length=1, max_length=200)
    kana: str = Field("", max_length=200, description="フリガナ")
    company: str = Field("", max_length=200)
    department: str = Field("", max_length=200)
    email: str = Field("", max_length=254)
    postal_code: str = Field("", max_length=10)
    address: str = Field("", max_length=300)
    memo: str = Field("", max_length=4000)
    phones: list[PhoneIn] = Field(default_factory=list, max_length=services.MAX_PHONES)
    tags: list[str] = Field(default_factory=list, max_length=services.MAX_TAGS)
    custom: dict[str, CustomValue] = Field(
        default_factory=dict, description="管理者が定義したカスタム項目 (キー: 値)"
    )
    team: int | None = Field(None, ge=1, le=MAX_ID, description="担当チームの ID (管理者以外は必須)")


class CustomerPatch(Schema):
    """Only the fields given change; ``phones`` and ``tags`` replace the whole list when given."""

    kind: Literal["person", "company"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    kana: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=200)
    department: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254)
    postal_code: str | None = Field(None, max_length=10)
    address: str | None = Field(None, max_length=300)
    memo: str | None = Field(None, max_length=4000)
    phones: list[PhoneIn] | None = Field(None, max_length=services.MAX_PHONES)
    tags: list[str] | None = Field(None, max_length=services.MAX_TAGS)
    custom: dict[str, CustomValue] | None = None


class CustomerOut(Schema):
    id: int
    url: str = Field(description="顧客カルテ (画面) の URL")
    kind: Literal["person", "company"]
    name: str
    kana: str
    company: str
    department: str
    email: str
    postal_code: str
    address: str
    memo: str
    phones: list[PhoneOut]
    tags: list[str]
    custom: dict[str, CustomValue]
    team: TeamRef | None
    created_at: datetime
    updated_at: datetime


class CustomerPage(Schema):
    items: list[CustomerOut]
    next: int | None = Field(description="次のページの offset。最後のページでは null")
    limit: int


class CustomerListParams(Schema):
    q: str = Field("", max_length=100, description="名前・フリガナ・会社名・メール・電話番号 (部分一致)")
    team: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class NoteIn(Schema):
    text: str = Field(min_length=1, max_length=4000)


class NoteOut(Schema):
    id: int
    text: str
    author: str
    created_at: datetime
    edited_at: datetime | None


class CardCustomer(Schema):
    id: int
    name: str
    company: str
    url: str


class CardCall(Schema):
    id: str
    started_at: str
    agent: str
    url: str


class CardNote(Schema):
    text: str
    author: str
    created_at: str


class CardWarning(Schema):
    kind: Literal["nuisance", "caution"]
    label: str = Field(description="迷惑電話、要注意、または警告タグの名前")
    reason: str


class CallerCardOut(Schema):
    number: str = Field(description="E.164 (通常の番号)、またはそのままの値")
    number_display: str = Field(description="03-1234-5678、非通知、公衆電話、不明")
    kind: Literal["normal", "withheld", "payphone", "unknown"]
    customer: CardCustomer | None
    last_call: CardCall | None = Field(description="この番号 (顧客の全番号) との最新の通話 (閲覧できるもの)")
    last_note: CardNote | None
    warnings: list[CardWarning]
    tags: list[str]


class LookupParams(Schema):
    number: str = Field(
        min_length=1, max_length=100, description="着信番号 (03-1234-5678、+81...、anonymous ...)"
    )


# --- helpers ----------------------------------------------------------------------------------


def customer_dict(c: Customer) -> dict[str, Any]:
    return {
        "id": c.pk,
        "url": lookup.karte_url(c.pk),
        "kind": c.kind,
        "name": c.name,
        "kana": c.kana,
        "company": c.company,
        "department": c.department,
        "email": c.email,
        "postal_code": c.postal_code,
        "address": c.address,
        "memo": c.memo,
        "phones": [
            {"number": p.number, "display": phone.display(p.number), "label": p.label} for p in c.phones.all()
        ],
        "tags": [t.name for t in c.tags.all()],
        "custom": c.custom or {},
        "team": {"id": c.owner_team.pk, "name": c.owner_team.name} if c.owner_team else None,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def _customer(request: HttpRequest, customer_id: int) -> Customer:
    try:
        return access.get_customer_for_user(request.user, customer_id)
    except Http404:
        raise not_found(_("顧客が見つかりません。")) from None


def _editable(request: HttpRequest, customer_id: int) -> Customer:
    customer = _customer(request, customer_id)
    if not access.can_edit_customer(request.user, customer):
        raise forbidden(
            _("この顧客を変更する権限がありません (チームのスーパーバイザーと管理者が変更できます)。")
        )
    return customer


def _api_error(exc: CustomerError) -> ApiError:
    param = exc.field if not exc.field.startswith("custom_") else "custom"
    return bad_parameter(param or "body", exc.message)


def _phones(items: list[PhoneIn]) -> list[PhoneInput]:
    return [PhoneInput(p.number, p.label) for p in items]


def _tags(items: list[str]) -> list[str]:
    return [clean_text(t) for t in items]


def _reload(customer: Customer) -> Customer:
    return (
        Customer.objects.select_related("owner_team").prefetch_related("phones", "tags").get(pk=customer.pk)
    )


# --- routes -----------------------------------------------------------------------------------


@router.get(
    "/customers",
    response={200: CustomerPage, **READ_ERRORS},
    url_name="customer_list",
    summary="顧客の一覧 (フリガナ順、検索)",
)
def customer_list(request: HttpRequest, params: Query[CustomerListParams]) -> dict[str, Any]:
    qs = search(access.visible_customers(request.user), clean_text(params.q))
    if params.team is not None:
        qs = qs.filter(owner_team_id=params.team)
    rows = list(
        qs.select_related("owner_team")
        .prefetch_related("phones", "tags")
        .order_by("kana", "name", "id")[params.offset : params.offset + params.limit + 1]
    )
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    audit(
        request,
        str(Action.VIEW),
        object_type="customer",
        change="customer_list",
        filters={k: v for k, v in (("q", params.q), ("team", params.team)) if v},
        count=len(rows),
    )
    return {
        "items": [customer_dict(c) for c in rows],
        "next": params.offset + params.limit if more else None,
        "limit": params.limit,
    }


@router.post(
    "/customers",
    response={201: CustomerOut, **WRITE_ERRORS},
    url_name="customer_create",
    summary="顧客を登録",
    description="`team` は自分のチーム (管理者は任意のチーム、または null)。電話番号は E.164 で保存します。",
)
def customer_create(request: HttpRequest, body: CustomerIn) -> Status[dict[str, Any]]:
    team_ids = access.customer_team_ids(request.user)
    if team_ids == []:
        raise forbidden(_("顧客を登録する権限がありません。"))
    if body.team is not None and not access.can_create_customer(request.user, body.team):
        raise not_found(_("チームが見つかりません。"))
    if body.team is None and team_ids is not None:
        raise bad_parameter("team", _("担当チームを指定してください。"))
    if body.team is not None and team_ids is None:
        from callvault.apps.accounts.models import Team

        if not Team.objects.filter(pk=body.team).exists():
            raise not_found(_("チームが見つかりません。"))
    data = body.dict(exclude={"phones", "tags", "custom", "team"})
    inp = CustomerInput(
        data={k: clean_text(v) if k != "memo" else v for k, v in data.items()},
        phones=_phones(body.phones),
        tags=_tags(body.tags),
        custom=dict(body.custom),
        owner_team_id=body.team,
    )
    try:
        customer = services.create_customer(inp, user=request.user, via="api", ip=_ip(request))
    except CustomerError as exc:
        raise _api_error(exc) from None
    return Status(201, customer_dict(_reload(customer)))


def _ip(request: HttpRequest) -> str | None:
    from callvault.apps.api.auth import client_ip

    return client_ip(request)


@router.get(
    "/customers/lookup",
    response={200: CallerCardOut, **READ_ERRORS},
    url_name="customer_lookup",
    summary="着信番号から顧客を調べる (着信ポップアップと同じ内容)",
    description=(
        "番号の種類 (通常・非通知・公衆電話・不明)、一致した顧客、最新の通話と担当者、最新のメモ、"
        "迷惑電話・要注意リストと警告タグを返します。閲覧できる顧客と通話だけを使います。"
    ),
)
def customer_lookup(request: HttpRequest, params: Query[LookupParams]) -> dict[str, Any]:
    card = lookup.caller_card(params.number, request.user)
    customer = card["customer"]
    audit(
        request,
        str(Action.VIEW),
        object_type="customer",
        object_id=str(customer["id"]) if customer else "",
        change="caller_lookup",
        number=card["number"][:40],
        found=customer is not None,
    )
    return card


@router.get(
    "/customers/{customer_id}",
    response={200: CustomerOut, **READ_ERRORS},
    url_name="customer_detail",
    summary="顧客の詳細",
)
def customer_detail(request: HttpRequest, customer_id: int = Path(..., ge=1, le=MAX_ID)) -> dict[str, Any]:
    customer = _customer(request, customer_id)
    audit(request, str(Action.VIEW), obj=customer, change="customer_viewed")
    return customer_dict(_reload(customer))


@router.patch(
    "/customers/{customer_id}",
    response={200: CustomerOut, **WRITE_ERRORS},
    url_name="customer_update",
    summary="顧客情報を変更 (指定した項目だけ)",
    description=(
        "`phones` と `tags` は指定すると一覧ごと置き換えます。"
        "チームのスーパーバイザーと管理者が変更できます。"
    ),
)
def customer_update(
    request: HttpRequest, body: CustomerPatch, customer_id: int = Path(..., ge=1, le=MAX_ID)
) -> dict[str, Any]:
    customer = _editable(request, customer_id)
    data = {k: getattr(customer, k) for k in services.EDITABLE_FIELDS}
    given = body.dict(exclude_unset=True)
    for key in services.EDITABLE_FIELDS:
        if key in given and given[key] is not None:
            data[key] = clean_text(given[key]) if key != "memo" else given[key]
    phones = (
        _phones(body.phones)
        if body.phones is not None
        else [PhoneInput(p.number, p.label) for p in customer.phones.all()]
    )
    inp = CustomerInput(
        data=data,
        phones=phones,
        tags=_tags(body.tags) if body.tags is not None else None,
        custom=dict(body.custom) if body.custom is not None else None,
        owner_team_id=customer.owner_team_id,
    )
    try:
        services.update_customer(customer, inp, user=request.user, via="api", ip=_ip(request))
    except CustomerError as exc:
        raise _api_error(exc) from None
    return customer_dict(_reload(customer))


@router.delete(
    "/customers/{customer_id}",
    response={204: None, **WRITE_ERRORS},
    url_name="customer_delete",
    summary="顧客を削除 (電話番号とメモも削除。通話と録音は残ります)",
)
def customer_delete(request: HttpRequest, customer_id: int = Path(..., ge=1, le=MAX_ID)) -> Status[None]:
    customer = _editable(request, customer_id)
    services.delete_customer(customer, user=request.user, via="api", ip=_ip(request))
    return Status(204, None)


@router.get(
    "/customers/{customer_id}/notes",
    response={200: list[NoteOut], **READ_ERRORS},
    url_name="customer_notes",
    summary="顧客の対応メモ (新しい順)",
)
def note_list(request: HttpRequest, customer_id: int = Path(..., ge=1, le=MAX_ID)) -> list[dict[str, Any]]:
    customer = _customer(request, customer_id)
    audit(request, str(Action.VIEW), obj=customer, change="customer_notes_viewed")
    notes = CustomerNote.objects.filter(customer=customer).select_related("author__profile")[:500]
    return [_note(n) for n in notes]


def _note(n: CustomerNote) -> dict[str, Any]:
    return {
        "id": n.pk,
        "text": n.text,
        "author": user_label(n.author),
        "created_at": n.created_at,
        "edited_at": n.edited_at,
    }


@router.post(
    "/customers/{customer_id}/notes",
    response={201: NoteOut, **WRITE_ERRORS},
    url_name="customer_notes_add",
    summary="対応メモを追加",
)
def note_add(
    request: HttpRequest, body: NoteIn, customer_id: int = Path(..., ge=1, le=MAX_ID)
) -> Status[dict[str, Any]]:
    customer = _customer(request, customer_id)
    try:
        note = services.add_note(
            customer, clean_text(body.text), user=request.user, via="api", ip=_ip(request)
        )
    except CustomerError as exc:
        raise _api_error(exc) from None
    note = CustomerNote.objects.select_related("author__profile").get(pk=note.pk)
    return Status(201, _note(note))
