"""The customer pages through the Django test client: access per role, search, forms, audit."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from callvault.apps.audit.models import AuditEntry
from callvault.apps.customers.models import (
    Customer,
    CustomerImport,
    CustomerNote,
    CustomerTag,
    NumberListEntry,
)
from callvault.apps.customers.services import add_note
from tests.customers.conftest import Cast, make_call, new_customer


def client_for(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def csv_upload(rows: list[list[str]], encoding: str = "cp932", name: str = "customers.csv") -> Any:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    f = io.BytesIO(buf.getvalue().encode(encoding))
    f.name = name
    return f


# --- list and search ----------------------------------------------------------------------------


def test_the_list_shows_only_customers_of_the_viewers_teams(cast: Cast, yamada: Any) -> None:
    new_customer("サポートの顧客", ["06-1111-2222"], cast.team_b)
    member = client_for(cast.member).get("/customers/")
    assert member.status_code == 200
    text = member.content.decode()
    assert "山田 太郎" in text and "03-1234-5678" in text
    assert "サポートの顧客" not in text
    outsider = client_for(cast.outsider).get("/customers/").content.decode()
    assert "山田 太郎" not in outsider and "サポートの顧客" in outsider
    auditor = client_for(cast.auditor).get("/customers/").content.decode()
    assert "顧客を閲覧する権限がありません" in auditor and "山田" not in auditor
    admin = client_for(cast.admin).get("/customers/").content.decode()
    assert "山田 太郎" in admin and "サポートの顧客" in admin


@pytest.mark.parametrize(
    "query",
    [
        "山田",
        "太郎",
        "山田太郎",
        "やまだ",
        "ﾔﾏﾀﾞ",
        "ヤマダ　タロウ",
        "山田商",
        "1234-5678",
        "0312345678",
        "+81312345678",
        "０９０１１１１",
    ],
)
def test_search_finds_japanese_substrings_kana_and_numbers(cast: Cast, yamada: Any, query: str) -> None:
    new_customer("鈴木 花子", ["045-222-3333"], cast.team_a, kana="スズキ ハナコ")
    text = client_for(cast.member).get("/customers/", {"q": query}).content.decode()
    assert "山田 太郎" in text, query
    assert "鈴木 花子" not in text, query


def test_a_search_is_audited_with_its_query(cast: Cast, yamada: Any) -> None:
    client_for(cast.member).get("/customers/", {"q": "やまだ"})
    entry = AuditEntry.objects.filter(action="view", detail__change="customer_list").get()
    assert entry.detail["filters"] == {"q": "やまだ"}
    assert entry.username == "member"


# --- the カルテ -------------------------------------------------------------------------------------


def test_the_karte_shows_visible_calls_notes_and_callback_links(cast: Cast, yamada: Any) -> None:
    older = make_call(cast.team_a, cast.member, caller="+819011112222", minutes_ago=60 * 24)
    make_call(cast.team_b, cast.outsider, caller="+81312345678", callee="301", minutes_ago=2)  # team B only
    add_note(yamada, "請求書は経理部宛てに送る", user=cast.supervisor)
    response = client_for(cast.member).get(f"/customers/{yamada.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'href="tel:+81312345678"' in text and 'href="tel:+819011112222"' in text
    assert "請求書は経理部宛てに送る" in text
    # newest first, only the calls the member may see (call_a, then the older one)
    assert text.index(f"/calls/{cast.call_a.pk}/") < text.index(f"/calls/{older.pk}/")
    assert "サポート部" not in text.split('id="calls"')[1].split('id="notes"')[0]
    admin_text = client_for(cast.admin).get(f"/customers/{yamada.pk}/").content.decode()
    assert admin_text.count("/calls/") > text.count("/calls/")
    entry = AuditEntry.objects.filter(action="view", object_type="customer", object_id=str(yamada.pk)).first()
    assert entry is not None and entry.detail["change"] == "customer_viewed"


def test_customers_of_other_teams_are_not_found(cast: Cast, yamada: Any) -> None:
    for role in ("outsider", "auditor"):
        c = client_for(getattr(cast, role))
        assert c.get(f"/customers/{yamada.pk}/").status_code == 404
        assert c.get(f"/customers/{yamada.pk}/edit/").status_code == 404
        assert c.post(f"/customers/{yamada.pk}/notes/", {"text": "x"}).status_code == 404
    assert Client().get(f"/customers/{yamada.pk}/").status_code == 302  # to the login page


def test_the_karte_warns_about_listed_numbers_and_warning_tags(cast: Cast, yamada: Any) -> None:
    NumberListEntry.objects.create(
        pattern="+81312345678", kind="caution", reason="料金未払い", team=cast.team_a
    )
    yamada.tags.add(CustomerTag.objects.create(name="クレーム注意", warning=True))
    text = client_for(cast.member).get(f"/customers/{yamada.pk}/").content.decode()
    assert "要注意" in text and "料金未払い" in text
    assert "cu-tag-warning" in text and "クレーム注意" in text


# --- create / edit / delete -------------------------------------------------------------------------


def test_a_member_registers_an_unknown_caller_from_the_call_page(cast: Cast) -> None:
    c = client_for(cast.member)
    call_page = c.get(f"/calls/{cast.call_a.pk}/").content.decode()
    assert f'href="/customers/new/?call={cast.call_a.pk}"' in call_page
    assert "顧客として登録" in call_page
    form = c.get("/customers/new/", {"call": str(cast.call_a.pk)}).content.decode()
    assert 'value="03-1234-5678"' in form and 'value="山田 太郎"' in form
    response = c.post(
        "/customers/new/",
        {
            "kind": "person",
            "name": "山田 太郎",
            "owner_team": cast.team_a.pk,
            "phone_number": ["03-1234-5678", ""],
            "phone_label": ["work", "mobile"],
            "from_call": str(cast.call_a.pk),
        },
    )
    customer = Customer.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/customers/{customer.pk}/"
    assert list(customer.phones.values_list("number", flat=True)) == ["+81312345678"]
    assert customer.created_by == cast.member
    # the call page now links to the カルテ instead
    call_page = c.get(f"/calls/{cast.call_a.pk}/").content.decode()
    assert f'href="/customers/{customer.pk}/"' in call_page and "顧客カルテ: 山田 太郎" in call_page
    assert AuditEntry.objects.filter(detail__change="customer_created", object_id=str(customer.pk)).exists()


def test_the_form_reports_bad_input_without_saving(cast: Cast) -> None:
    c = client_for(cast.member)
    base = {"kind": "person", "owner_team": cast.team_a.pk, "phone_label": ["work", "work"]}
    r = c.post("/customers/new/", {**base, "name": "鈴木", "phone_number": ["12-34", ""]})
    assert r.status_code == 400 and "電話番号として正しくありません: 12-34" in r.content.decode()
    r = c.post("/customers/new/", {**base, "name": "鈴木", "phone_number": ["03-1111-2222", "0311112222"]})
    assert r.status_code == 400 and "同じ電話番号が2回あります" in r.content.decode()
    r = c.post("/customers/new/", {**base, "name": "", "phone_number": ["", ""]})
    assert r.status_code == 400
    r = c.post("/customers/new/", {**base, "name": "鈴木", "email": "nope", "phone_number": ["", ""]})
    assert r.status_code == 400 and "メールアドレス" in r.content.decode()
    # a member cannot put a customer into a team they are not in
    r = c.post(
        "/customers/new/", {**base, "name": "鈴木", "owner_team": cast.team_b.pk, "phone_number": [""]}
    )
    assert r.status_code == 404  # that team is out of reach
    assert Customer.objects.count() == 0


def test_supervisors_edit_and_members_may_not(cast: Cast, yamada: Any) -> None:
    assert client_for(cast.member).get(f"/customers/{yamada.pk}/edit/").status_code == 404
    assert client_for(cast.member).post(f"/customers/{yamada.pk}/delete/").status_code == 404
    sup = client_for(cast.supervisor)
    page = sup.get(f"/customers/{yamada.pk}/edit/").content.decode()
    assert 'value="03-1234-5678"' in page and 'value="090-1111-2222"' in page
    r = sup.post(
        f"/customers/{yamada.pk}/edit/",
        {
            "kind": "person",
            "name": "山田 太郎",
            "kana": "ヤマダ タロウ",
            "company": "山田ホールディングス",
            "owner_team": cast.team_a.pk,
            "tags": "VIP、クレーム注意",
            "phone_number": ["03-1234-5678", "080-0000-1111"],
            "phone_label": ["work", "mobile"],
        },
    )
    assert r.status_code == 302
    yamada.refresh_from_db()
    assert yamada.company == "山田ホールディングス"
    assert set(yamada.phones.values_list("number", flat=True)) == {"+81312345678", "+818000001111"}
    assert sorted(yamada.tags.values_list("name", flat=True)) == ["VIP", "クレーム注意"]
    entry = AuditEntry.objects.filter(detail__change="customer_updated").get()
    assert entry.detail["fields"] == ["company", "phones", "tags"]
    assert sup.post(f"/customers/{yamada.pk}/delete/").status_code == 302
    assert not Customer.objects.exists()
    assert AuditEntry.objects.filter(action="delete", detail__change="customer_deleted").exists()


# --- notes and merge --------------------------------------------------------------------------------


def test_notes_are_added_and_edits_are_audited_with_the_old_text(cast: Cast, yamada: Any) -> None:
    c = client_for(cast.member)
    assert c.post(f"/customers/{yamada.pk}/notes/", {"text": "  "}).status_code == 400
    assert c.post(f"/customers/{yamada.pk}/notes/", {"text": "折り返し希望 (午後)"}).status_code == 302
    note = CustomerNote.objects.get()
    assert (note.author, note.text) == (cast.member, "折り返し希望 (午後)")
    assert (
        c.post(f"/customers/{yamada.pk}/notes/{note.pk}/edit/", {"text": "折り返し希望 (午前)"}).status_code
        == 302
    )
    note.refresh_from_db()
    assert note.text == "折り返し希望 (午前)" and note.edited_at is not None
    entry = AuditEntry.objects.filter(detail__change="customer_note_edited").get()
    assert (entry.detail["from"], entry.detail["to"]) == ("折り返し希望 (午後)", "折り返し希望 (午前)")
    # another agent of the team cannot edit someone else's note
    other = client_for(cast.outsider)
    assert other.post(f"/customers/{yamada.pk}/notes/{note.pk}/edit/", {"text": "x"}).status_code == 404


def test_merging_moves_phones_notes_and_tags_to_the_survivor(cast: Cast, yamada: Any) -> None:
    dup = new_customer(
        "山田太郎", ["03-1234-5678", "080-9999-0000"], cast.team_a, email="t@example.jp", tags=["VIP"]
    )
    add_note(dup, "重複側のメモ", user=cast.member)
    sup = client_for(cast.supervisor)
    page = sup.get(f"/customers/{yamada.pk}/merge/").content.decode()
    assert f'value="{dup.pk}"' in page  # found as a likely duplicate (same number)
    r = sup.post(f"/customers/{yamada.pk}/merge/", {"merge": [str(dup.pk)], "survivor": str(yamada.pk)})
    assert r.status_code == 302 and r["Location"] == f"/customers/{yamada.pk}/"
    assert not Customer.objects.filter(pk=dup.pk).exists()
    yamada.refresh_from_db()
    assert set(yamada.phones.values_list("number", flat=True)) == {
        "+81312345678",
        "+819011112222",
        "+818099990000",
    }
    assert yamada.email == "t@example.jp"
    assert list(yamada.tags.values_list("name", flat=True)) == ["VIP"]
    assert list(yamada.notes.values_list("text", flat=True)) == ["重複側のメモ"]
    entry = AuditEntry.objects.filter(detail__change="customers_merged").get()
    assert entry.detail["merged"] == [{"id": dup.pk, "name": "山田太郎"}]
    assert client_for(cast.member).get(f"/customers/{yamada.pk}/merge/").status_code == 404


def test_merge_can_keep_the_other_customer(cast: Cast, yamada: Any) -> None:
    dup = new_customer("山田 太郎 (新)", ["03-1234-5678"], cast.team_a)
    r = client_for(cast.admin).post(
        f"/customers/{yamada.pk}/merge/", {"merge": [str(dup.pk)], "survivor": str(dup.pk)}
    )
    assert r["Location"] == f"/customers/{dup.pk}/"
    assert list(Customer.objects.values_list("pk", flat=True)) == [dup.pk]
    r = client_for(cast.admin).post(f"/customers/{dup.pk}/merge/", {"survivor": str(dup.pk)})
    assert r.status_code == 400


# --- CSV in the UI ------------------------------------------------------------------------------------


def test_import_upload_preview_confirm(cast: Cast) -> None:
    sup = client_for(cast.supervisor)
    rows = [
        ["氏名", "フリガナ", "電話番号"],
        ["髙橋 美咲", "タカハシ ミサキ", "03-5555-0001"],
        ["井上 直樹", "", "090-5555-0002"],
    ]
    r = sup.post("/customers/import/", {"file": csv_upload(rows), "team": cast.team_a.pk})
    pending = CustomerImport.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/customers/import/{pending.pk}/"
    preview = sup.get(r["Location"]).content.decode()
    assert (
        "Shift_JIS (CP932)" in preview
        and "髙橋 美咲" in preview
        and "取り込む (新規 2件・更新 0件)" in preview
    )
    assert Customer.objects.count() == 0
    assert sup.post(r["Location"]).status_code == 302
    assert set(Customer.objects.values_list("name", flat=True)) == {"髙橋 美咲", "井上 直樹"}
    pending.refresh_from_db()
    assert pending.state == "applied" and bytes(pending.data) == b"" and pending.summary["created"] == 2
    # someone else's import is not found
    assert client_for(cast.admin).get(f"/customers/import/{pending.pk}/").status_code == 404


def test_import_with_bad_lines_shows_why_and_imports_nothing(cast: Cast) -> None:
    sup = client_for(cast.supervisor)
    rows = [["名前", "電話番号"], ["髙橋", "03-5555-0001"], ["", "03-5555-0002"], ["井上", "03-5555-0001"]]
    r = sup.post("/customers/import/", {"file": csv_upload(rows, "utf-8"), "team": cast.team_a.pk})
    preview = sup.get(r["Location"]).content.decode()
    assert "名前がありません" in preview and "2行目と重複しています" in preview
    assert "取り込む (" not in preview
    r2 = sup.post(r["Location"])
    assert r2.status_code == 400 and "2行に問題がある" in r2.content.decode()
    assert Customer.objects.count() == 0
    assert CustomerImport.objects.get().state == "failed"


def test_import_refuses_huge_and_unreadable_files(cast: Cast, settings: Any, monkeypatch: Any) -> None:
    from callvault.apps.customers import csvio

    sup = client_for(cast.supervisor)
    monkeypatch.setattr(csvio, "MAX_IMPORT_BYTES", 1000)
    big = io.BytesIO(b"name\r\n" + b"x" * 2000)
    big.name = "big.csv"
    r = sup.post("/customers/import/", {"file": big, "team": cast.team_a.pk})
    assert r.status_code == 400 and "ファイルが大きすぎます" in r.content.decode()
    huge = io.BytesIO(b"name\r\n" + b"x" * 200_000)
    huge.name = "huge.csv"
    r = sup.post("/customers/import/", {"file": huge, "team": cast.team_a.pk})
    assert r.status_code == 413 and "ファイルが大きすぎます" in r.content.decode()
    broken = io.BytesIO("名前\r\n".encode() + b"\xff\xfe\xfd\r\n")
    broken.name = "broken.csv"
    r = sup.post("/customers/import/", {"file": broken, "team": cast.team_a.pk})
    preview = sup.get(r["Location"]).content.decode()
    assert "2行目" in preview and "文字コード" in preview
    assert client_for(cast.member).get("/customers/import/").status_code == 404


def test_export_for_supervisors_is_audited(cast: Cast, yamada: Any) -> None:
    new_customer('=HYPERLINK("http://evil")', ["06-1111-2222"], cast.team_a)
    new_customer("サポートの顧客", ["06-3333-4444"], cast.team_b)
    r = client_for(cast.supervisor).get("/customers/export.csv", {"encoding": "cp932"})
    assert r.status_code == 200 and r["Content-Type"] == "text/csv; charset=shift_jis"
    text = b"".join(r.streaming_content).decode("cp932")
    assert "山田 太郎" in text and "'=HYPERLINK" in text and "サポートの顧客" not in text
    entry = AuditEntry.objects.filter(action="export").get()
    assert entry.detail["rows"] == 2 and entry.detail["format"] == "csv-cp932"
    assert client_for(cast.member).get("/customers/export.csv").status_code == 404


# --- number lists and fields ----------------------------------------------------------------------


def test_supervisors_keep_their_teams_lists_and_admins_the_organisation(cast: Cast) -> None:
    sup = client_for(cast.supervisor)
    r = sup.post(
        "/customers/numbers/",
        {"pattern": "0120*", "kind": "nuisance", "reason": "勧誘", "team": cast.team_a.pk},
    )
    assert r.status_code == 302
    entry = NumberListEntry.objects.get()
    assert (entry.pattern, entry.is_prefix, entry.team) == ("+81120", True, cast.team_a)
    # only admins add organisation-wide entries
    r = sup.post("/customers/numbers/", {"pattern": "非通知", "kind": "caution", "reason": "", "team": ""})
    assert r.status_code == 400
    r = client_for(cast.admin).post(
        "/customers/numbers/", {"pattern": "非通知", "kind": "caution", "team": ""}
    )
    assert r.status_code == 302
    assert NumberListEntry.objects.filter(pattern="anonymous", team=None).exists()
    page = sup.get("/customers/numbers/").content.decode()
    assert "0120…" in page and "非通知" in page and "組織全体" in page
    r = sup.post("/customers/numbers/", {"pattern": "電話", "kind": "caution", "team": cast.team_a.pk})
    assert r.status_code == 400 and "番号として読めません" in r.content.decode()
    org = NumberListEntry.objects.get(pattern="anonymous")
    assert sup.post(f"/customers/numbers/{org.pk}/delete/").status_code == 404
    assert sup.post(f"/customers/numbers/{entry.pk}/delete/").status_code == 302
    assert client_for(cast.member).get("/customers/numbers/").status_code == 404
    changes = list(
        AuditEntry.objects.filter(detail__change__startswith="number_list").values_list(
            "detail__change", flat=True
        )
    )
    assert sorted(changes) == ["number_list_added", "number_list_added", "number_list_removed"]


def test_admins_define_custom_fields_and_warning_tags(cast: Cast, yamada: Any) -> None:
    admin = client_for(cast.admin)
    r = admin.post(
        "/customers/fields/", {"form": "field", "label": "契約日", "key": "since", "field_type": "date"}
    )
    assert r.status_code == 302
    r = admin.post(
        "/customers/fields/",
        {"form": "field", "label": "プラン", "key": "plan", "field_type": "choice", "choices": ""},
    )
    assert r.status_code == 400 and "選択肢を入力してください" in r.content.decode()
    form = admin.get(f"/customers/{yamada.pk}/edit/").content.decode()
    assert 'name="custom_since"' in form and 'type="date"' in form
    tag = CustomerTag.objects.create(name="クレーム注意")
    assert admin.post("/customers/fields/", {"form": "tags", "warning": [str(tag.pk)]}).status_code == 302
    tag.refresh_from_db()
    assert tag.warning
    assert client_for(cast.supervisor).get("/customers/fields/").status_code == 404


def test_the_pages_speak_english_when_chosen(cast: Cast, yamada: Any) -> None:
    from django.conf import settings as dj_settings

    c = client_for(cast.supervisor)
    c.cookies[dj_settings.LANGUAGE_COOKIE_NAME] = "en"
    karte = c.get(f"/customers/{yamada.pk}/").content.decode()
    assert "Call back" in karte and "Add a note" in karte and "Merge duplicates" in karte
    assert "折り返し" not in karte
    listing = c.get("/customers/").content.decode()
    assert "Export CSV" in listing and "Name, reading, company, phone number" in listing
    imports = c.get("/customers/import/").content.decode()
    assert "Import customers from CSV" in imports
