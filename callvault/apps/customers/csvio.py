"""Customer CSV: import with a line-by-line dry run, all-or-nothing apply, and export.

Import accepts what Japanese office software writes: UTF-8 with or without BOM, Shift_JIS/CP932,
UTF-16 with BOM (Excel "Unicode text"), comma- or tab-separated, headers in Japanese or English
(see ``HEADERS``). Every data line becomes a :class:`RowPlan`: ``create``, ``update`` (a customer
of the target team already has one of the line's numbers), ``unchanged``, or ``reject`` with the
reasons. :func:`apply_import` re-plans inside one transaction and changes nothing unless every
line is acceptable.

Export writes UTF-8 with BOM (Excel) or CP932; cells that a spreadsheet would run as a formula
(starting with = + - @ tab CR, also full-width) get a leading apostrophe, which import removes.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from callvault import phone
from callvault.apps.audit.models import Action, record
from callvault.apps.customers import services
from callvault.apps.customers.models import Customer, CustomerPhone, CustomField, PhoneLabel
from callvault.apps.customers.services import CustomerError, CustomerInput, PhoneInput

MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_IMPORT_ROWS = 50_000
MAX_CELL = 4000

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

# Field -> header spellings (compared after NFKC, lower case, without spaces and marks).
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("名前", "氏名", "お名前", "顧客名", "名称", "name", "fullname", "customername"),
    "kana": (
        "フリガナ",
        "ふりがな",
        "カナ",
        "よみ",
        "読み",
        "よみがな",
        "氏名フリガナ",
        "氏名カナ",
        "名前フリガナ",
        "kana",
        "furigana",
    ),
    "company": ("会社", "会社名", "企業名", "法人名", "勤務先", "company", "companyname", "organization"),
    "department": ("部署", "部署名", "所属", "department", "dept"),
    "phone": ("電話番号", "電話", "tel", "phone", "phonenumber", "telephone", "会社電話", "勤務先電話"),
    "mobile": ("携帯", "携帯電話", "携帯番号", "携帯電話番号", "mobile", "cell", "cellphone"),
    "home": ("自宅", "自宅電話", "自宅電話番号", "home", "homephone"),
    "fax": ("fax", "fax番号", "ファックス", "ファクス"),
    "email": ("メール", "メールアドレス", "email", "e-mail", "mail", "mailaddress", "emailaddress"),
    "postal_code": ("郵便番号", "〒", "zip", "zipcode", "postalcode", "postcode"),
    "address": (
        "住所",
        "所在地",
        "address",
        "住所1",
        "住所2",
        "都道府県",
        "市区町村",
        "番地",
        "建物名",
        "address1",
        "address2",
    ),
    "memo": ("備考", "メモ", "memo", "note", "notes", "comment"),
    "tags": ("タグ", "tags", "tag", "分類"),
    "kind": ("種別", "区分", "kind", "type", "個人法人"),
    # written by the export, ignored on import
    "ignored": ("id", "顧客id", "チーム", "team", "作成日時", "更新日時", "createdat", "updatedat"),
}
# Fields that may come from several columns (joined).
MULTI = {"phone", "mobile", "home", "fax", "address"}
PHONE_FIELDS = {"phone": PhoneLabel.WORK, "mobile": PhoneLabel.MOBILE, "home": PhoneLabel.HOME}
PHONE_FIELDS["fax"] = PhoneLabel.FAX
LABEL_WORDS = {str(label): value for value, label in PhoneLabel.choices} | {
    "携帯電話": PhoneLabel.MOBILE,
    "会社電話": PhoneLabel.WORK,
    "勤務先": PhoneLabel.WORK,
    "mobile": PhoneLabel.MOBILE,
    "work": PhoneLabel.WORK,
    "home": PhoneLabel.HOME,
    "fax": PhoneLabel.FAX,
}
KIND_WORDS = {
    "個人": "person",
    "person": "person",
    "法人": "company",
    "company": "company",
    "会社": "company",
}
_SPLIT_NUMBERS = re.compile(r"\s*[/／,，、;；|｜\n]\s*")
_LABEL_SUFFIX = re.compile(r"^(.*?)[\s]*[(（]([^()（）]{1,10})[)）]\s*$")
_SPLIT_TAGS = re.compile(r"\s*[,，、;；|｜/／]\s*")


class ImportRejected(Exception):
    """The whole file cannot be read (encoding, size, header): one clear message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _key(header: str) -> str:
    text = unicodedata.normalize("NFKC", header or "").lower()
    text = re.sub(r"[\s_・:：*＊]|\(必須\)|必須", "", text)
    return text.replace("(", "").replace(")", "")


_LOOKUP = {_key(spelling): fieldname for fieldname, spellings in HEADERS.items() for spelling in spellings}


# --- decoding -------------------------------------------------------------------------------------


ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (BOM付き)",
    "cp932": "Shift_JIS (CP932)",
    "utf-16": "UTF-16",
}


@dataclass
class Decoded:
    text: str
    encoding: str  # "utf-8", "utf-8-sig", "cp932", "utf-16"


def decode(data: bytes) -> Decoded:
    """UTF-8 (BOM or not), UTF-16 with BOM, else CP932; otherwise the line where it breaks."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRejected(
            f"ファイルが大きすぎます ({len(data) / 1024 / 1024:.1f} MB)。"
            f"{MAX_IMPORT_BYTES // 1024 // 1024} MB までに分けてください。"
        )
    if data.startswith(codecs.BOM_UTF8):
        return Decoded(_strict(data[3:], "utf-8", offset=3, whole=data), "utf-8-sig")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Decoded(_strict(data, "utf-16", offset=0, whole=data), "utf-16")
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as utf8_error:
        if any(b >= 0x80 for b in data[: utf8_error.start]):
            # Japanese text before the bad byte was valid UTF-8: a damaged UTF-8 file, which read
            # as Shift_JIS would only give garbage.
            line = data[: utf8_error.start].count(b"\n") + 1
            raise ImportRejected(
                f"文字コードを読み取れません: {line}行目に UTF-8 として正しくないバイトがあります。"
                "ファイルが壊れていないか確認し、UTF-8 か Shift_JIS で保存し直してください。"
            ) from None
        try:
            text = data.decode("cp932")
            # Python maps the bytes 0xA0 and 0xFD-0xFF, which CP932 does not use, to private-use
            # characters; treat them as the damage they are.
            bad = next((i for i, ch in enumerate(text) if ch in "\uf8f0\uf8f1\uf8f2\uf8f3"), None)
            if bad is not None:
                line = text[:bad].count("\n") + 1
                raise ImportRejected(
                    f"文字コードを読み取れません: {line}行目に Shift_JIS (CP932) として正しくないバイトが"
                    "あります。ファイルが壊れていないか確認してください。"
                )
            return Decoded(text, "cp932")
        except UnicodeDecodeError as sjis_error:
            # Report where the more plausible reading (the one that got further) breaks.
            where = max(utf8_error.start, sjis_error.start)
            line = data[:where].count(b"\n") + 1
            raise ImportRejected(
                f"文字コードを読み取れません: {line}行目に UTF-8 でも Shift_JIS (CP932) でもない"
                "バイトがあります。ファイルが壊れていないか、UTF-8 か Shift_JIS で保存し直してください。"
            ) from None


def _strict(data: bytes, encoding: str, *, offset: int, whole: bytes) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = whole[: exc.start + offset].count(b"\n") + 1
        name = "UTF-8" if encoding == "utf-8" else "UTF-16"
        raise ImportRejected(
            f"文字コードを読み取れません: {line}行目に {name} として正しくないバイトがあります。"
        ) from None


# --- planning -------------------------------------------------------------------------------------


@dataclass
class Column:
    index: int
    header: str
    field: str  # a HEADERS key, "custom:<key>", or "unknown"


@dataclass
class RowPlan:
    line: int
    action: str  # create | update | unchanged | reject
    name: str = ""
    numbers: list[str] = field(default_factory=list)  # E.164
    reasons: list[str] = field(default_factory=list)  # why rejected
    changes: list[str] = field(default_factory=list)  # which fields an update changes
    customer_id: int | None = None
    inp: CustomerInput | None = None

    @property
    def numbers_display(self) -> str:
        return " / ".join(phone.display(n) for n in self.numbers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "action": self.action,
            "name": self.name,
            "numbers": self.numbers,
            "reasons": self.reasons,
            "changes": self.changes,
            "customer_id": self.customer_id,
        }


@dataclass
class ImportPlan:
    encoding: str
    delimiter: str
    columns: list[Column]
    rows: list[RowPlan]
    warnings: list[str]
    sha256: str
    team_id: int | None

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not any(r.action == "reject" for r in self.rows)

    @property
    def summary(self) -> dict[str, int]:
        return {a: self.count(a) for a in ("create", "update", "unchanged", "reject")}

    @property
    def rejected(self) -> list[RowPlan]:
        return [r for r in self.rows if r.action == "reject"]


CHANGE_LABELS = {
    "kind": "種別",
    "name": "名前",
    "kana": "フリガナ",
    "company": "会社名",
    "department": "部署",
    "email": "メール",
    "postal_code": "郵便番号",
    "address": "住所",
    "memo": "備考",
    "phones": "電話番号",
    "tags": "タグ",
    "custom": "カスタム項目",
}


def _columns(header: list[str], custom: list[CustomField]) -> tuple[list[Column], list[str]]:
    by_label = {_key(f.label): f.key for f in custom} | {_key(f.key): f.key for f in custom}
    columns: list[Column] = []
    warnings: list[str] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(header):
        text = raw.strip().lstrip("\ufeff")
        key = _key(text)
        if key in by_label:
            name = f"custom:{by_label[key]}"
        elif key in _LOOKUP:
            name = _LOOKUP[key]
        elif re.fullmatch(r"(電話番号|電話|tel|phone)\d+", key):
            name = "phone"
        elif not key:
            name = "empty"
        else:
            name = "unknown"
        if name not in MULTI and name not in ("unknown", "ignored", "empty"):
            if name in seen:
                raise ImportRejected(
                    f"見出しの「{seen[name]}」と「{text}」は同じ項目です。どちらか一方にしてください。"
                )
            seen[name] = text
        if name == "unknown":
            warnings.append(f"認識できない列「{text}」は取り込みません")
        columns.append(Column(i, text, name))
    if "name" not in seen:
        found = "、".join(c.header for c in columns if c.header) or "(なし)"
        raise ImportRejected(
            "名前の列がありません。1行目は見出し (名前/氏名/お名前/name、電話番号/TEL、会社名 など)"
            "にしてください。"
            f" 1行目: {found}"
        )
    return columns, warnings


def _cell(value: str) -> str:
    text = value.strip()
    if text[:1] == "'" and text[1:2] in FORMULA_START:
        text = text[1:]  # the apostrophe our export puts before formula-like cells
    return text


def _numbers_of(cell: str, label: str) -> list[PhoneInput]:
    out = []
    for part in _SPLIT_NUMBERS.split(cell):
        part = part.strip()
        if not part:
            continue
        this_label = label
        m = _LABEL_SUFFIX.match(part)
        if m and not any(ch.isdigit() for ch in m.group(2)):
            part, word = m.group(1), m.group(2).strip()
            this_label = str(LABEL_WORDS.get(word.lower()) or LABEL_WORDS.get(word) or label)
        out.append(PhoneInput(part, str(this_label)))
    return out


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    return "\t" if first.count("\t") > first.count(",") else ","


def plan_import(
    data: bytes, *, team_id: int | None, custom_fields: list[CustomField] | None = None
) -> ImportPlan:
    """Read the file and decide, line by line, what importing it would do. Changes nothing."""
    decoded = decode(data)
    text = decoded.text
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ImportRejected(f"{line}行目に NUL 文字があります。CSV ファイルではないようです。")
    delimiter = _sniff_delimiter(text)
    custom = custom_fields if custom_fields is not None else list(CustomField.objects.all())
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected("ファイルが空です。") from None
    except csv.Error as exc:
        raise ImportRejected(f"1行目を CSV として読めません ({exc})。") from None
    columns, warnings = _columns(header, custom)
    defs = {f.key: f for f in custom}
    rows: list[RowPlan] = []
    first_line_of: dict[str, int] = {}
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(RowPlan(start, "reject", reasons=[f"CSV として読めません ({exc})"]))
            break
        last_line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            raise ImportRejected(
                f"行数が多すぎます ({MAX_IMPORT_ROWS:,}行まで)。ファイルを分けて取り込んでください。"
            )
        rows.append(_plan_row(start, cells, columns, defs, team_id, first_line_of))
    if not rows:
        raise ImportRejected("取り込む行がありません (見出しの行だけです)。")
    return ImportPlan(
        encoding=decoded.encoding,
        delimiter=delimiter,
        columns=columns,
        rows=rows,
        warnings=warnings,
        sha256=hashlib.sha256(data).hexdigest(),
        team_id=team_id,
    )


def _plan_row(
    line: int,
    cells: list[str],
    columns: list[Column],
    defs: dict[str, CustomField],
    team_id: int | None,
    first_line_of: dict[str, int],
) -> RowPlan:
    reasons: list[str] = []
    if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
        reasons.append(f"列の数 ({len(cells)}) が見出し ({len(columns)}列) より多くなっています")
    data: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    tags: list[str] = []
    phones: list[PhoneInput] = []
    address: list[str] = []
    for col in columns:
        if col.index >= len(cells):
            continue
        value = _cell(cells[col.index])
        if len(value) > MAX_CELL:
            reasons.append(f"「{col.header}」が長すぎます ({MAX_CELL}文字まで)")
            continue
        if not value:
            continue
        if col.field in PHONE_FIELDS:
            phones.extend(_numbers_of(value, str(PHONE_FIELDS[col.field])))
        elif col.field == "address":
            address.append(value)
        elif col.field == "tags":
            tags.extend(t for t in _SPLIT_TAGS.split(value) if t.strip())
        elif col.field == "kind":
            kind = KIND_WORDS.get(unicodedata.normalize("NFKC", value).lower())
            if kind is None:
                reasons.append(f"種別「{value}」は 個人 か 法人 にしてください")
            else:
                data["kind"] = kind
        elif col.field == "postal_code":
            data["postal_code"] = unicodedata.normalize("NFKC", value).lstrip("〒").strip()
        elif col.field.startswith("custom:"):
            custom[col.field.split(":", 1)[1]] = value
        elif col.field in services.EDITABLE_FIELDS:
            data[col.field] = value
    if address:
        data["address"] = " ".join(address)
    name = str(data.get("name", ""))
    plan = RowPlan(line, "reject", name=name)
    if not name:
        reasons.append("名前がありません")
    numbers: list[str] = []
    cleaned: list[PhoneInput] = []
    for p in phones:
        try:
            number = services.parse_phone(p.number)
        except CustomerError:
            reasons.append(f"電話番号が正しくありません: {p.number}")
            continue
        if number in numbers:
            continue  # the same number twice on one line is harmless
        if number in first_line_of:
            shown = phone.display(number)
            reasons.append(f"電話番号 {shown} が {first_line_of[number]}行目と重複しています (ファイル内)")
        numbers.append(number)
        cleaned.append(PhoneInput(number, p.label))
    plan.numbers = numbers
    for key, value in custom.items():
        try:
            services._custom_value(defs[key], value)
        except CustomerError as exc:
            reasons.append(exc.message)
    try:
        tags = services.clean_tag_names(tags)
    except CustomerError as exc:
        reasons.append(exc.message)
    if not reasons:
        try:
            services._validate_core({"name": name, **data})
        except CustomerError as exc:
            reasons.append(exc.message)
    if len(cleaned) > services.MAX_PHONES:
        reasons.append(f"電話番号は{services.MAX_PHONES}件までです")
    for number in numbers:
        first_line_of.setdefault(number, line)
    if reasons:
        plan.reasons = reasons
        return plan
    existing = _existing(numbers, team_id)
    if len(existing) > 1:
        ids = "、".join(f"ID {c.pk} {c.name}" for c in existing)
        plan.reasons = [f"電話番号が複数の顧客に一致します ({ids})。先に顧客を統合してください"]
        return plan
    if not existing:
        plan.action = "create"
        plan.inp = CustomerInput(
            data={"name": name, **data}, phones=cleaned, tags=tags, custom=custom, owner_team_id=team_id
        )
        return plan
    customer = existing[0]
    plan.customer_id = customer.pk
    inp, changes = _merged_input(customer, data, cleaned, tags, custom, defs)
    plan.inp = inp
    plan.changes = changes
    plan.action = "update" if changes else "unchanged"
    return plan


def _existing(numbers: list[str], team_id: int | None) -> list[Customer]:
    if not numbers:
        return []
    ids = (
        CustomerPhone.objects.filter(number__in=numbers, customer__owner_team_id=team_id)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    return list(Customer.objects.filter(pk__in=list(ids)).order_by("pk"))


def _merged_input(
    customer: Customer,
    data: dict[str, Any],
    phones: list[PhoneInput],
    tags: list[str],
    custom: dict[str, Any],
    defs: dict[str, CustomField],
) -> tuple[CustomerInput, list[str]]:
    """An update keeps what the file leaves empty and adds numbers and tags."""
    merged = {k: getattr(customer, k) for k in services.EDITABLE_FIELDS}
    changes = [CHANGE_LABELS[k] for k, v in data.items() if v and merged.get(k) != v]
    merged.update({k: v for k, v in data.items() if v})
    have = list(customer.phones.all())
    numbers = {p.number for p in have}
    all_phones = [PhoneInput(p.number, p.label) for p in have]
    new = [p for p in phones if p.number not in numbers]
    if new:
        changes.append(CHANGE_LABELS["phones"])
    all_phones.extend(new)
    current_tags = list(customer.tags.values_list("name", flat=True))
    new_tags = [t for t in tags if t not in current_tags]
    if new_tags:
        changes.append(CHANGE_LABELS["tags"])
    merged_custom = dict(customer.custom or {})
    for key, value in custom.items():
        cleaned = services._custom_value(defs[key], value)
        if merged_custom.get(key) != cleaned:
            merged_custom[key] = cleaned
            if CHANGE_LABELS["custom"] not in changes:
                changes.append(CHANGE_LABELS["custom"])
    return (
        CustomerInput(
            data=merged,
            phones=all_phones,
            tags=current_tags + new_tags,
            custom=merged_custom,
            owner_team_id=customer.owner_team_id,
        ),
        changes,
    )


@dataclass
class ImportResult:
    plan: ImportPlan
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def apply_import(
    data: bytes,
    *,
    team_id: int | None,
    user: Any,
    filename: str = "",
    via: str = "web",
    ip: str | None = None,
    username: str = "",
) -> ImportResult:
    """Plan again and apply every line in one transaction; nothing changes unless all lines pass.

    Raises :class:`ImportRejected` for an unreadable file or when any line is rejected (the plan
    is on the exception as ``plan``).
    """
    with transaction.atomic():
        plan = plan_import(data, team_id=team_id)
        if not plan.ok:
            exc = ImportRejectedLines(plan)
            raise exc
        result = ImportResult(plan)
        for row in plan.rows:
            assert row.inp is not None
            if row.action == "create":
                services.create_customer(row.inp, user=user, via=via, ip=ip, audit=False)
                result.created += 1
            elif row.action == "update":
                customer = Customer.objects.select_for_update().get(pk=row.customer_id)
                services.update_customer(customer, row.inp, user=user, via=via, ip=ip, audit=False)
                result.updated += 1
            else:
                result.unchanged += 1
        record(
            str(Action.SETTINGS),
            user=user,
            ip=ip,
            username=username,
            object_type="customer",
            change="customers_imported",
            file=filename[:200],
            sha256=plan.sha256,
            encoding=plan.encoding,
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            via=via,
            team_id=team_id,
        )
    return result


class ImportRejectedLines(ImportRejected):
    def __init__(self, plan: ImportPlan) -> None:
        n = len(plan.rejected)
        super().__init__(f"{n}行に問題があるため、何も取り込みませんでした。")
        self.plan = plan


# --- export ---------------------------------------------------------------------------------------

EXPORT_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "cp932": "cp932",
    "sjis": "cp932",
    "shift_jis": "cp932",
}
EXPORT_CHUNK = 1000


def safe_cell(value: Any) -> str:
    """Neutralise spreadsheet formulas: text starting with = + - @ tab or CR gets an apostrophe."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def export_header(custom: list[CustomField]) -> list[str]:
    return [
        "ID",
        "種別",
        "名前",
        "フリガナ",
        "会社名",
        "部署",
        "電話番号",
        "メールアドレス",
        "郵便番号",
        "住所",
        "備考",
        "タグ",
        *[f.label for f in custom],
        "チーム",
        "作成日時",
        "更新日時",
    ]


def _phones_cell(customer: Customer) -> str:
    labels = dict(PhoneLabel.choices)
    return " / ".join(
        f"{phone.display(p.number)} ({labels.get(p.label, p.label)})" for p in customer.phones.all()
    )


def export_line(customer: Customer, custom: list[CustomField]) -> list[str]:
    from callvault.apps.web.format import local_datetime

    values: dict[str, Any] = customer.custom or {}
    return [
        str(customer.pk),
        "法人" if customer.kind == "company" else "個人",
        customer.name,
        customer.kana,
        customer.company,
        customer.department,
        _phones_cell(customer),
        customer.email,
        customer.postal_code,
        customer.address,
        customer.memo,
        "、".join(t.name for t in customer.tags.all()),
        *[_custom_text(values.get(f.key)) for f in custom],
        customer.owner_team.name if customer.owner_team else "",
        local_datetime(customer.created_at),
        local_datetime(customer.updated_at),
    ]


def _custom_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    return str(value)


def export_rows(qs: QuerySet[Customer], encoding: str = "utf-8") -> Iterator[bytes]:
    """The CSV file in pieces (keyset by id, so a million customers stream in constant memory)."""
    custom = list(CustomField.objects.all())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")

    def flush(lines: list[list[str]]) -> bytes:
        buf.seek(0)
        buf.truncate()
        for line in lines:
            writer.writerow([safe_cell(v) for v in line])
        return buf.getvalue().encode(encoding, errors="replace")

    head = flush([export_header(custom)])
    yield (codecs.BOM_UTF8 + head) if encoding == "utf-8" else head
    last = 0
    base = qs.select_related("owner_team").prefetch_related("phones", "tags").order_by("pk")
    while True:
        chunk = list(base.filter(pk__gt=last)[:EXPORT_CHUNK])
        if not chunk:
            return
        last = chunk[-1].pk
        yield flush([export_line(c, custom) for c in chunk])


def export_filename(encoding: str) -> str:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return f"customers-{stamp}{'-sjis' if encoding == 'cp932' else ''}.csv"
