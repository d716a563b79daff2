"""Customer CSV import (dry run, all-or-nothing apply) and export (encodings, formula injection)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from callvault.apps.audit.models import AuditEntry
from callvault.apps.customers import csvio
from callvault.apps.customers.models import Customer, CustomerPhone, CustomerTag, CustomField
from tests.customers.conftest import Cast, new_customer

JAPANESE_ROWS = [
    ["氏名", "フリガナ", "会社名", "部署", "TEL", "携帯電話", "メールアドレス", "郵便番号", "住所",
     "備考", "タグ"],
    ["髙橋 美咲", "タカハシ ミサキ", "株式会社ヤマト運輸倉庫", "総務部", "03-1111-2222", "",
     "misaki@example.jp", "〒100-0001", "東京都千代田区千代田1-1", "月末に請求書",
     "VIP、クレーム注意"],
    ["井上 直樹", "いのうえ なおき", "", "", "", "090-3333-4444", "", "", "大阪府大阪市北区", "", ""],
    ["渡邊 恵子", "ワタナベ ケイコ", "渡邊工務店", "", "(06) 6123-4567", "080-5555-6666", "", "", "", "", ""],
]  # fmt: skip


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8", *, bom: bool = False, sep: str = ",") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", delimiter=sep).writerows(rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def test_it_imports_a_cp932_file_with_japanese_names(cast: Cast) -> None:
    data = csv_bytes(JAPANESE_ROWS, "cp932")
    assert data.decode("cp932")  # really Shift_JIS: not valid UTF-8
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    plan = csvio.plan_import(data, team_id=cast.team_a.pk)
    assert plan.encoding == "cp932"
    assert [(r.line, r.action, r.name) for r in plan.rows] == [
        (2, "create", "髙橋 美咲"),
        (3, "create", "井上 直樹"),
        (4, "create", "渡邊 恵子"),
    ]
    assert Customer.objects.count() == 0  # the dry run changes nothing

    result = csvio.apply_import(data, team_id=cast.team_a.pk, user=cast.supervisor, filename="顧客.csv")
    assert (result.created, result.updated) == (3, 0)
    takahashi = Customer.objects.get(name="髙橋 美咲")
    assert takahashi.kana == "タカハシ ミサキ"
    assert takahashi.company == "株式会社ヤマト運輸倉庫"
    assert takahashi.postal_code == "100-0001"
    assert takahashi.owner_team_id == cast.team_a.pk
    assert sorted(takahashi.tags.values_list("name", flat=True)) == ["VIP", "クレーム注意"]
    assert list(takahashi.phones.values_list("number", "label")) == [("+81311112222", "work")]
    watanabe = Customer.objects.get(name="渡邊 恵子")
    assert list(watanabe.phones.values_list("number", "label")) == [
        ("+81661234567", "work"),
        ("+818055556666", "mobile"),
    ]
    entry = AuditEntry.objects.filter(detail__change="customers_imported").get()
    assert entry.detail["created"] == 3
    assert entry.detail["encoding"] == "cp932"
    assert entry.username == "supervisor"


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", True), ("utf-8", False), ("utf-16", False)])
def test_it_reads_utf8_with_or_without_bom_and_utf16(cast: Cast, encoding: str, bom: bool) -> None:
    data = csv_bytes(JAPANESE_ROWS, encoding, bom=bom, sep="\t" if encoding == "utf-16" else ",")
    plan = csvio.plan_import(data, team_id=cast.team_a.pk)
    assert plan.ok
    assert [r.name for r in plan.rows] == ["髙橋 美咲", "井上 直樹", "渡邊 恵子"]


def test_it_recognises_english_headers(cast: Cast) -> None:
    rows = [
        ["Name", "Company", "Phone", "E-mail", "Mobile", "Notes"],
        ["Ken Sato", "Sato Trading", "03-2222-3333", "ken@example.com", "090-1234-0000", "hi"],
    ]
    plan = csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)
    assert [c.field for c in plan.columns] == ["name", "company", "phone", "email", "mobile", "memo"]
    assert plan.rows[0].numbers == ["+81322223333", "+819012340000"]


def test_it_reports_broken_encoding_with_the_line(cast: Cast) -> None:
    good = csv_bytes(JAPANESE_ROWS[:3], "cp932")
    broken = good + "渡邊 恵子,ワタナベ".encode("cp932") + b"\x81\x20\xff\xfe,03-1234-5678\r\n"
    with pytest.raises(csvio.ImportRejected) as info:
        csvio.plan_import(broken, team_id=cast.team_a.pk)
    assert "4行目" in info.value.message
    assert "文字コード" in info.value.message
    bom_broken = b"\xef\xbb\xbf" + csv_bytes(JAPANESE_ROWS[:2]) + b"\xff\xfe broken\r\n"
    with pytest.raises(csvio.ImportRejected, match="3行目"):
        csvio.plan_import(bom_broken, team_id=cast.team_a.pk)


def test_it_refuses_a_file_without_a_name_column(cast: Cast) -> None:
    rows = [["会社名", "電話番号"], ["山田商事", "03-1234-5678"]]
    with pytest.raises(csvio.ImportRejected, match="名前の列がありません") as info:
        csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)
    assert "会社名、電話番号" in info.value.message


def test_it_refuses_two_columns_for_the_same_field(cast: Cast) -> None:
    rows = [["名前", "氏名", "電話番号"], ["山田", "山田", "03-1234-5678"]]
    with pytest.raises(csvio.ImportRejected, match="「名前」と「氏名」は同じ項目"):
        csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)


def test_it_warns_about_unknown_columns_and_imports_the_rest(cast: Cast) -> None:
    rows = [["名前", "電話番号", "好きな食べ物"], ["山田", "03-1234-5678", "寿司"]]
    plan = csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)
    assert plan.warnings == ["認識できない列「好きな食べ物」は取り込みません"]
    assert plan.ok


def test_it_rejects_bad_lines_with_reasons_and_imports_nothing(cast: Cast) -> None:
    rows = [
        ["名前", "電話番号", "メール"],
        ["山田 太郎", "03-1234-5678", ""],
        ["", "03-9999-0000", ""],  # missing name
        ["鈴木 一郎", "12-34", ""],  # invalid number
        ["佐藤 花子", "03-1234-5678", ""],  # duplicate of line 2
        ["田中 次郎", "045-111-2222", "not-an-email"],
        ["中村 三郎", "090-1234-5678", "", "はみ出し"],  # more cells than the header
    ]
    data = csv_bytes(rows)
    plan = csvio.plan_import(data, team_id=cast.team_a.pk)
    assert [(r.line, r.action) for r in plan.rows] == [
        (2, "create"),
        (3, "reject"),
        (4, "reject"),
        (5, "reject"),
        (6, "reject"),
        (7, "reject"),
    ]
    reasons = {r.line: r.reasons for r in plan.rows}
    assert reasons[3] == ["名前がありません"]
    assert reasons[4] == ["電話番号が正しくありません: 12-34"]
    assert reasons[5] == ["電話番号 03-1234-5678 が 2行目と重複しています (ファイル内)"]
    assert reasons[6] == ["メールアドレスが正しくありません: not-an-email"]
    assert reasons[7] == ["列の数 (4) が見出し (3列) より多くなっています"]
    assert not plan.ok

    with pytest.raises(csvio.ImportRejectedLines) as info:
        csvio.apply_import(data, team_id=cast.team_a.pk, user=cast.supervisor)
    assert "5行に問題がある" in info.value.message
    assert Customer.objects.count() == 0
    assert CustomerPhone.objects.count() == 0


def test_a_failure_in_the_middle_of_applying_changes_nothing(cast: Cast, monkeypatch: Any) -> None:
    rows = [["名前", "電話番号"]] + [[f"顧客{i}", f"03-1234-{i:04d}"] for i in range(1, 6)]
    calls = {"n": 0}
    real = csvio.services.create_customer

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(csvio.services, "create_customer", failing)
    with pytest.raises(RuntimeError):
        csvio.apply_import(csv_bytes(rows), team_id=cast.team_a.pk, user=cast.supervisor)
    assert Customer.objects.count() == 0
    assert not AuditEntry.objects.filter(detail__change="customers_imported").exists()


def test_it_updates_by_number_and_keeps_what_the_file_leaves_empty(cast: Cast, yamada: Any) -> None:
    rows = [
        ["名前", "会社名", "電話番号", "携帯", "メール", "タグ"],
        ["山田 太郎", "", "0312345678", "080-7777-8888", "taro@example.jp", "VIP"],
        ["山田 太郎", "山田商事", "090-1111-2222", "", "", ""],
    ]
    plan = csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)
    assert [(r.action, r.customer_id, r.changes) for r in plan.rows] == [
        ("update", yamada.pk, ["メール", "電話番号", "タグ"]),
        ("unchanged", yamada.pk, []),
    ]
    csvio.apply_import(csv_bytes(rows), team_id=cast.team_a.pk, user=cast.supervisor)
    yamada.refresh_from_db()
    assert yamada.company == "山田商事"
    assert yamada.email == "taro@example.jp"
    assert set(yamada.phones.values_list("number", flat=True)) == {
        "+81312345678",
        "+819011112222",
        "+818077778888",
    }
    assert list(yamada.tags.values_list("name", flat=True)) == ["VIP"]
    # an import into another team creates that team's own customer
    other = csvio.plan_import(csv_bytes(rows[:2]), team_id=cast.team_b.pk)
    assert other.rows[0].action == "create"


def test_it_rejects_a_line_matching_two_customers(cast: Cast) -> None:
    a = new_customer("甲", ["03-1000-0001"], cast.team_a)
    b = new_customer("乙", ["03-1000-0002"], cast.team_a)
    rows = [["名前", "電話番号"], ["甲乙", "03-1000-0001 / 03-1000-0002"]]
    plan = csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)
    assert plan.rows[0].action == "reject"
    assert f"ID {a.pk} 甲" in plan.rows[0].reasons[0] and f"ID {b.pk} 乙" in plan.rows[0].reasons[0]


def test_it_validates_custom_fields_by_type(cast: Cast) -> None:
    CustomField.objects.create(key="contract_no", label="契約番号", field_type="text")
    CustomField.objects.create(key="since", label="契約日", field_type="date")
    CustomField.objects.create(key="seats", label="席数", field_type="number")
    rows = [
        ["名前", "契約番号", "契約日", "席数"],
        ["山田", "C-001", "2025/04/01", "12"],
        ["鈴木", "C-002", "来年", "多い"],
    ]
    plan = csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)
    assert plan.rows[0].action == "create"
    assert plan.rows[1].reasons == [
        "「契約日」は日付 (2026/11/27) で入力してください",
        "「席数」は数値で入力してください",
    ]
    csvio.apply_import(csv_bytes(rows[:2]), team_id=cast.team_a.pk, user=cast.admin)
    assert Customer.objects.get().custom == {"contract_no": "C-001", "since": "2025-04-01", "seats": 12}


def test_it_refuses_huge_files_and_too_many_lines(cast: Cast, monkeypatch: Any) -> None:
    big = b"name,phone\r\n" + b"x" * (csvio.MAX_IMPORT_BYTES + 1)
    with pytest.raises(csvio.ImportRejected, match="大きすぎます"):
        csvio.plan_import(big, team_id=cast.team_a.pk)
    monkeypatch.setattr(csvio, "MAX_IMPORT_ROWS", 3)
    rows = [["名前"]] + [[f"顧客{i}"] for i in range(5)]
    with pytest.raises(csvio.ImportRejected, match="行数が多すぎます"):
        csvio.plan_import(csv_bytes(rows), team_id=cast.team_a.pk)


def test_it_refuses_empty_and_binary_files(cast: Cast) -> None:
    with pytest.raises(csvio.ImportRejected, match="空です"):
        csvio.plan_import(b"", team_id=None)
    with pytest.raises(csvio.ImportRejected, match="見出しの行だけ"):
        csvio.plan_import("名前,電話番号\r\n".encode(), team_id=None)
    with pytest.raises(csvio.ImportRejected, match="NUL"):
        csvio.plan_import(b"name\r\nab\x00cd\r\n", team_id=None)


def export_text(qs: Any, encoding: str = "utf-8") -> str:
    data = b"".join(csvio.export_rows(qs, encoding))
    return data.decode("utf-8-sig" if encoding == "utf-8" else encoding)


def test_export_neutralises_formulas_and_round_trips(cast: Cast) -> None:
    evil = new_customer(
        "=cmd|' /C calc'!A0", ["03-1234-5678"], cast.team_a, company="+SUM(1,2)", memo="@import", kana="-1"
    )
    evil.tags.add(CustomerTag.objects.create(name="-要確認"))
    text = export_text(Customer.objects.all())
    lines = list(csv.reader(io.StringIO(text)))
    header, row = lines[0], lines[1]
    cells = dict(zip(header, row, strict=True))
    assert cells["名前"] == "'=cmd|' /C calc'!A0"
    assert cells["会社名"] == "'+SUM(1,2)"
    assert cells["備考"] == "'@import"
    assert cells["フリガナ"] == "'-1"
    assert cells["タグ"] == "'-要確認"
    assert cells["電話番号"] == "03-1234-5678 (会社)"
    assert cells["チーム"] == "営業部"
    for cell in row:
        assert not cell.startswith(csvio.FORMULA_START), cell
    # importing the export again matches by number and changes nothing
    plan = csvio.plan_import(text.encode("utf-8"), team_id=cast.team_a.pk)
    assert [(r.action, r.customer_id, r.changes) for r in plan.rows] == [("unchanged", evil.pk, [])]


def test_export_in_cp932_for_old_excel(cast: Cast) -> None:
    new_customer("髙橋 美咲", ["090-1234-5678"], cast.team_a, company="株式会社①", kana="タカハシ")
    data = b"".join(csvio.export_rows(Customer.objects.all(), "cp932"))
    assert not data.startswith(b"\xef\xbb\xbf")
    text = data.decode("cp932")
    assert "髙橋 美咲" in text and "株式会社①" in text and "090-1234-5678 (会社)" in text
    utf8 = b"".join(csvio.export_rows(Customer.objects.all(), "utf-8"))
    assert utf8.startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "＝1", "＋1", "－1", "＠x"])
def test_every_formula_start_gets_an_apostrophe(value: str) -> None:
    assert csvio.safe_cell(value) == "'" + value
    assert csvio.safe_cell("山田 " + value) == "山田 " + value


def test_damaged_utf8_is_not_read_as_shift_jis_garbage(cast: Cast) -> None:
    data = "名前,電話番号\r\n山田,03-1234-5678\r\n".encode() + b"\xe5\xb1\r\n"  # a cut-off character
    with pytest.raises(csvio.ImportRejected, match="3行目に UTF-8 として正しくない"):
        csvio.plan_import(data, team_id=cast.team_a.pk)
    sjis = "名前,電話番号\r\n".encode("cp932") + b"\xfd\xfe,03-1234-5678\r\n"
    with pytest.raises(csvio.ImportRejected, match="2行目に Shift_JIS"):
        csvio.plan_import(sjis, team_id=cast.team_a.pk)
