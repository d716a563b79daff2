"""Behaviour on customers shared by the pages, the API, CSV import and the CLI.

Every change is audited (``audit.record``: action ``settings`` with ``change=customer_*`` for
customer data, ``comment`` for notes, ``delete`` for deletions); callers check permissions with
``accounts.access`` first, these functions do not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from callvault import phone
from callvault.apps.audit.models import Action, record
from callvault.apps.customers.models import (
    Customer,
    CustomerNote,
    CustomerPhone,
    CustomerTag,
    CustomField,
    FieldType,
    ListKind,
    NumberListEntry,
    PhoneLabel,
)

MAX_PHONES = 20
MAX_TAGS = 30
EDITABLE_FIELDS = (
    "kind",
    "name",
    "kana",
    "company",
    "department",
    "email",
    "postal_code",
    "address",
    "memo",
)


class CustomerError(ValueError):
    """Bad input for a customer, with a message for people (Japanese)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class PhoneInput:
    number: str
    label: str = str(PhoneLabel.WORK)


def parse_phone(raw: str) -> str:
    """A number people typed -> E.164; CustomerError for anything that is not a real number."""
    text = (raw or "").strip()
    caller = phone.classify(text)
    if caller.kind != phone.NORMAL:
        raise CustomerError(f"電話番号ではありません: {text or '(空欄)'}", "phones")
    if not caller.number.startswith("+"):
        # extensions and short codes are not customer numbers
        raise CustomerError(f"電話番号として正しくありません: {text}", "phones")
    import phonenumbers

    try:
        parsed = phonenumbers.parse(caller.number, None)
    except phonenumbers.NumberParseException:
        raise CustomerError(f"電話番号として正しくありません: {text}", "phones") from None
    if not phonenumbers.is_valid_number(parsed):
        raise CustomerError(f"電話番号として正しくありません: {text}", "phones")
    return caller.number


def clean_phones(items: list[PhoneInput]) -> list[PhoneInput]:
    out: list[PhoneInput] = []
    seen: set[str] = set()
    for item in items:
        if not (item.number or "").strip():
            continue
        number = parse_phone(item.number)
        if number in seen:
            raise CustomerError(f"同じ電話番号が2回あります: {phone.display(number)}", "phones")
        seen.add(number)
        label = item.label if item.label in PhoneLabel.values else str(PhoneLabel.OTHER)
        out.append(PhoneInput(number, label))
    if len(out) > MAX_PHONES:
        raise CustomerError(f"電話番号は{MAX_PHONES}件までです", "phones")
    return out


def clean_custom(values: dict[str, Any], fields: list[CustomField] | None = None) -> dict[str, Any]:
    """Validate custom field values by type; unknown keys are refused. Returns JSON-ready values."""
    defs = {f.key: f for f in (fields if fields is not None else CustomField.objects.all())}
    out: dict[str, Any] = {}
    for key in values:
        if key not in defs:
            raise CustomerError(f"カスタム項目「{key}」はありません", "custom")
    for key, definition in defs.items():
        raw = values.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if definition.required:
                raise CustomerError(f"「{definition.label}」は必須です", f"custom_{key}")
            continue
        out[key] = _custom_value(definition, raw)
    return out


def _custom_value(definition: CustomField, raw: Any) -> Any:
    label = definition.label
    if definition.field_type == FieldType.NUMBER:
        if isinstance(raw, bool):
            raise CustomerError(f"「{label}」は数値で入力してください", f"custom_{definition.key}")
        try:
            number = Decimal(str(raw).strip().replace(",", ""))
        except InvalidOperation:
            raise CustomerError(f"「{label}」は数値で入力してください", f"custom_{definition.key}") from None
        if not number.is_finite():
            raise CustomerError(f"「{label}」は数値で入力してください", f"custom_{definition.key}")
        return int(number) if number == number.to_integral_value() else float(number)
    if definition.field_type == FieldType.DATE:
        text = str(raw).strip().replace("/", "-")
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise CustomerError(
                f"「{label}」は日付 (2026/11/27) で入力してください", f"custom_{definition.key}"
            ) from None
    if definition.field_type == FieldType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", "はい", "有", "あり", "○"):
            return True
        if text in ("0", "false", "no", "off", "いいえ", "無", "なし", "×"):
            return False
        raise CustomerError(f"「{label}」は はい/いいえ で入力してください", f"custom_{definition.key}")
    if definition.field_type == FieldType.CHOICE:
        text = str(raw).strip()
        if text not in (definition.choices or []):
            raise CustomerError(
                f"「{label}」は次から選んでください: {'、'.join(map(str, definition.choices or []))}",
                f"custom_{definition.key}",
            )
        return text
    text = str(raw).strip()
    if len(text) > 1000:
        raise CustomerError(f"「{label}」は1000文字までです", f"custom_{definition.key}")
    return text


def clean_tag_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        text = " ".join(str(name).split())
        if not text:
            continue
        if len(text) > 50:
            raise CustomerError(f"タグは50文字までです: {text[:20]}…", "tags")
        if text not in out:
            out.append(text)
    if len(out) > MAX_TAGS:
        raise CustomerError(f"タグは{MAX_TAGS}個までです", "tags")
    return out


def _tags(names: list[str]) -> list[CustomerTag]:
    tags = []
    for name in names:
        tag, _created = CustomerTag.objects.get_or_create(name=name)
        tags.append(tag)
    return tags


def _set_phones(customer: Customer, phones: list[PhoneInput]) -> None:
    existing = {p.number: p for p in customer.phones.all()}
    wanted = {p.number for p in phones}
    customer.phones.exclude(number__in=wanted).delete()
    for order, p in enumerate(phones):
        obj = existing.get(p.number)
        if obj is None:
            CustomerPhone.objects.create(customer=customer, number=p.number, label=p.label, order=order)
        elif obj.label != p.label or obj.order != order:
            obj.label, obj.order = p.label, order
            obj.save(update_fields=["label", "order"])


def _validate_core(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, str] = {}
    for key in EDITABLE_FIELDS:
        value = data.get(key)
        text = "" if value is None else str(value)
        out[key] = text if key == "memo" else text.strip()
    out["kind"] = out["kind"] or "person"
    if out["kind"] not in ("person", "company"):
        raise CustomerError("種別は person (個人) か company (法人) です", "kind")
    if not out["name"]:
        raise CustomerError("名前を入力してください", "name")
    limits = {"name": 200, "kana": 200, "company": 200, "department": 200, "email": 254}
    limits.update({"postal_code": 10, "address": 300, "memo": 4000})
    for key, limit in limits.items():
        if len(out[key]) > limit:
            raise CustomerError(f"{_LABELS[key]}は{limit}文字までです", key)
    if out["email"]:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        try:
            validate_email(out["email"])
        except ValidationError:
            raise CustomerError(f"メールアドレスが正しくありません: {out['email']}", "email") from None
    return out


_LABELS = {
    "name": "名前",
    "kana": "フリガナ",
    "company": "会社名",
    "department": "部署",
    "email": "メールアドレス",
    "postal_code": "郵便番号",
    "address": "住所",
    "memo": "備考",
}


@dataclass
class CustomerInput:
    """Everything a form, the API or a CSV row gives for one customer."""

    data: dict[str, Any]
    phones: list[PhoneInput] = field(default_factory=list)
    tags: list[str] | None = None  # None: leave tags unchanged
    custom: dict[str, Any] | None = None  # None: leave unchanged
    owner_team_id: int | None = None


@transaction.atomic
def create_customer(
    inp: CustomerInput, *, user: Any, via: str = "web", ip: str | None = None, audit: bool = True
) -> Customer:
    core = _validate_core(inp.data)
    phones = clean_phones(inp.phones)
    custom = clean_custom(inp.custom or {})
    tags = clean_tag_names(inp.tags or [])
    actor = user if getattr(user, "is_authenticated", False) else None
    customer = Customer(
        **core, custom=custom, owner_team_id=inp.owner_team_id, created_by=actor, updated_by=actor
    )
    customer.refresh_search_text([p.number for p in phones])
    customer.save()
    _set_phones(customer, phones)
    if tags:
        customer.tags.set(_tags(tags))
    if audit:
        record(
            str(Action.SETTINGS),
            user=user,
            ip=ip,
            obj=customer,
            change="customer_created",
            name=customer.name,
            via=via,
            team_id=customer.owner_team_id,
        )
    return customer


@transaction.atomic
def update_customer(
    customer: Customer, inp: CustomerInput, *, user: Any, via: str = "web", ip: str | None = None
) -> list[str]:
    """Apply the input; returns the names of the changed fields (audited when any)."""
    core = _validate_core(inp.data)
    phones = clean_phones(inp.phones)
    changed = [k for k, v in core.items() if getattr(customer, k) != v]
    for k in changed:
        setattr(customer, k, core[k])
    if inp.custom is not None:
        custom = clean_custom(inp.custom)
        if custom != customer.custom:
            customer.custom = custom
            changed.append("custom")
    if inp.owner_team_id != customer.owner_team_id:
        customer.owner_team_id = inp.owner_team_id
        changed.append("owner_team")
    before = [(p.number, p.label) for p in customer.phones.all()]
    if before != [(p.number, p.label) for p in phones]:
        _set_phones(customer, phones)
        changed.append("phones")
    if inp.tags is not None:
        names = clean_tag_names(inp.tags)
        if sorted(names) != sorted(customer.tags.values_list("name", flat=True)):
            customer.tags.set(_tags(names))
            changed.append("tags")
    if changed:
        customer.updated_by = user if getattr(user, "is_authenticated", False) else None
        customer.refresh_search_text([p.number for p in phones])
        customer.save()
        record(
            str(Action.SETTINGS),
            user=user,
            ip=ip,
            obj=customer,
            change="customer_updated",
            fields=changed,
            via=via,
            team_id=customer.owner_team_id,
        )
    return changed


@transaction.atomic
def delete_customer(customer: Customer, *, user: Any, via: str = "web", ip: str | None = None) -> None:
    record(
        str(Action.DELETE),
        user=user,
        ip=ip,
        obj=customer,
        change="customer_deleted",
        name=customer.name,
        numbers=list(customer.phones.values_list("number", flat=True)),
        via=via,
        team_id=customer.owner_team_id,
    )
    customer.delete()


def add_note(
    customer: Customer, text: str, *, user: Any, via: str = "web", ip: str | None = None
) -> CustomerNote:
    body = (text or "").strip()
    if not body:
        raise CustomerError("メモを入力してください", "text")
    if len(body) > 4000:
        raise CustomerError("メモは4000文字までです", "text")
    with transaction.atomic():
        note = CustomerNote.objects.create(
            customer=customer, author=user if getattr(user, "is_authenticated", False) else None, text=body
        )
        record(
            str(Action.COMMENT),
            user=user,
            ip=ip,
            obj=customer,
            change="customer_note_added",
            note=note.pk,
            via=via,
            team_id=customer.owner_team_id,
        )
    return note


def edit_note(note: CustomerNote, text: str, *, user: Any, via: str = "web", ip: str | None = None) -> None:
    body = (text or "").strip()
    if not body:
        raise CustomerError("メモを入力してください", "text")
    if len(body) > 4000:
        raise CustomerError("メモは4000文字までです", "text")
    if body == note.text:
        return
    with transaction.atomic():
        record(
            str(Action.COMMENT),
            user=user,
            ip=ip,
            obj=note.customer,
            change="customer_note_edited",
            note=note.pk,
            **{"from": note.text[:1000], "to": body[:1000]},
            via=via,
            team_id=note.customer.owner_team_id,
        )
        note.text = body
        note.edited_at = timezone.now()
        note.save(update_fields=["text", "edited_at"])


@transaction.atomic
def merge_customers(
    survivor: Customer, others: list[Customer], *, user: Any, via: str = "web", ip: str | None = None
) -> Customer:
    """Move phones, notes and tags of ``others`` to ``survivor``, fill its empty fields, delete them."""
    others = [c for c in others if c.pk != survivor.pk]
    if not others:
        raise CustomerError("統合する顧客を選んでください", "others")
    have = set(survivor.phones.values_list("number", flat=True))
    order = len(have)
    for other in others:
        for p in other.phones.all():
            if p.number not in have:
                CustomerPhone.objects.create(customer=survivor, number=p.number, label=p.label, order=order)
                have.add(p.number)
                order += 1
        CustomerNote.objects.filter(customer=other).update(customer=survivor)
        survivor.tags.add(*other.tags.all())
        for key in EDITABLE_FIELDS:
            if key not in ("kind", "memo") and not getattr(survivor, key) and getattr(other, key):
                setattr(survivor, key, getattr(other, key))
        if other.memo:
            survivor.memo = (survivor.memo + "\n" + other.memo).strip()[:4000]
        for key, value in (other.custom or {}).items():
            survivor.custom.setdefault(key, value)
    survivor.updated_by = user if getattr(user, "is_authenticated", False) else None
    survivor.refresh_search_text(sorted(have))
    survivor.save()
    record(
        str(Action.SETTINGS),
        user=user,
        ip=ip,
        obj=survivor,
        change="customers_merged",
        merged=[{"id": o.pk, "name": o.name} for o in others],
        via=via,
        team_id=survivor.owner_team_id,
    )
    for other in others:
        other.delete()
    return survivor


# --- Nuisance / caution lists ---------------------------------------------------------------


def parse_pattern(raw: str) -> tuple[str, bool]:
    """``03-1234-5678`` -> (``+81312345678``, False); ``0120*`` / ``0120-`` -> (``+81120``, True);
    ``非通知`` -> (``anonymous``, False); ``公衆電話`` -> (``payphone``, False)."""
    text = (raw or "").strip()
    is_prefix = text.endswith(("*", "＊", "…", "-"))
    text = text.rstrip("*＊…-").strip()
    if not text:
        raise CustomerError("番号を入力してください", "pattern")
    caller = phone.classify(text)
    if caller.kind in (phone.KIND_WITHHELD, phone.KIND_PAYPHONE) and not is_prefix:
        return caller.number, False
    digits = text_digits(text)
    if not digits:
        raise CustomerError(f"番号として読めません: {raw}", "pattern")
    if not is_prefix:
        return parse_phone(text), False
    if text.lstrip().startswith(("+", "＋")):
        return "+" + digits, True
    if digits.startswith("00"):  # international access code 010 / 00xx are not prefixes we store
        raise CustomerError(f"国際番号は +国番号 で入力してください: {raw}", "pattern")
    if digits.startswith("0"):
        return "+81" + digits[1:], True
    return digits, True


def text_digits(text: str) -> str:
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


def add_list_entry(
    raw: str,
    kind: str,
    reason: str,
    *,
    team_id: int | None,
    user: Any,
    via: str = "web",
    ip: str | None = None,
) -> NumberListEntry:
    if kind not in ListKind.values:
        raise CustomerError("種類は nuisance (迷惑電話) か caution (要注意) です", "kind")
    pattern, is_prefix = parse_pattern(raw)
    if len((reason or "").strip()) > 300:
        raise CustomerError("理由は300文字までです", "reason")
    if NumberListEntry.objects.filter(
        pattern=pattern, is_prefix=is_prefix, kind=kind, team_id=team_id
    ).exists():
        raise CustomerError("同じ番号がすでに登録されています", "pattern")
    with transaction.atomic():
        entry = NumberListEntry.objects.create(
            pattern=pattern,
            is_prefix=is_prefix,
            kind=kind,
            reason=(reason or "").strip(),
            team_id=team_id,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        record(
            str(Action.SETTINGS),
            user=user,
            ip=ip,
            obj=entry,
            change="number_list_added",
            number=pattern + ("*" if is_prefix else ""),
            kind=kind,
            reason=entry.reason,
            via=via,
            team_id=team_id,
        )
    return entry


def remove_list_entry(entry: NumberListEntry, *, user: Any, via: str = "web", ip: str | None = None) -> None:
    with transaction.atomic():
        record(
            str(Action.SETTINGS),
            user=user,
            ip=ip,
            obj=entry,
            change="number_list_removed",
            number=entry.pattern + ("*" if entry.is_prefix else ""),
            kind=entry.kind,
            via=via,
            team_id=entry.team_id,
        )
        entry.delete()
