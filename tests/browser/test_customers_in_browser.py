"""Customers (顧客カルテ) in headless Chromium against a real `callvault serve` and a sipp call:
register the unknown caller from the call page, the カルテ with that call and a note, a CP932 CSV
import through upload -> preview -> confirm, search in hiragana, the nuisance list, and team
isolation. Screenshots at desktop and phone sizes land in test-artifacts/ for review."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, CallvaultServer, OpenPage, PlacedCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CSV_ROWS = [
    ["氏名", "フリガナ", "会社名", "部署", "TEL", "携帯電話", "メールアドレス", "タグ"],
    ["髙橋 美咲", "タカハシ ミサキ", "株式会社ヤマト運輸倉庫", "総務部", "03-5555-0101", "",
     "misaki@example.jp", "VIP"],
    ["井上 直樹", "イノウエ ナオキ", "", "", "", "090-5555-0202", "", ""],
    ["渡邊 恵子", "ワタナベ ケイコ", "渡邊工務店", "", "06-5555-0303", "080-5555-0404", "", "クレーム注意"],
]  # fmt: skip


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="initial")
    return path


def cp932_csv(tmp_path: Path) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(CSV_ROWS)
    path = tmp_path / "顧客一覧.csv"
    path.write_bytes(buf.getvalue().encode("cp932"))
    return path


def test_an_agent_registers_the_caller_and_the_karte_shows_the_call(
    open_page: OpenPage, sales_call: PlacedCall
) -> None:
    page = open_page("yamamoto")
    page.goto(sales_call.path)
    page.get_by_role("link", name="顧客として登録").click()
    expect(page.get_by_role("heading", name="顧客を登録")).to_be_visible()
    expect(page.locator("#id_name")).to_have_value("山田 太郎")
    expect(page.locator("input[name=phone_number]").first).to_have_value("03-1234-5678")
    page.locator("#id_kana").fill("ヤマダ タロウ")
    page.locator("#id_company").fill("山田商事株式会社")
    page.locator("#id_tags").fill("VIP")
    shot(page, "customer-form-from-call-desktop-1366x900")
    page.get_by_role("button", name="登録", exact=True).click()

    expect(page.get_by_role("heading", name="山田 太郎", level=1)).to_be_visible()
    expect(page.get_by_text("顧客「山田 太郎」を登録しました。")).to_be_visible()
    calls = page.locator("#calls")
    expect(calls.locator("tbody tr")).to_have_count(1)
    expect(calls.locator(f"a[href='{sales_call.path}']")).to_have_text(
        re.compile(r"^\d{4}\/\d\d\/\d\d \d\d:\d\d$")
    )
    expect(calls).to_contain_text("山本 健太")
    callback = page.get_by_role("link", name="折り返し")
    expect(callback).to_have_attribute("href", "tel:+81312345678")

    page.get_by_label("メモを追加").fill("請求書の送付先が変わった。次回から経理部宛て。")
    page.get_by_role("button", name="メモを保存").click()
    expect(page.locator(".cu-timeline li").first).to_contain_text("請求書の送付先が変わった")
    expect(page.locator(".cu-timeline li").first).to_contain_text("山本 健太")
    shot(page, "customer-karte-desktop-1366x900")

    # back on the call page: a link to the カルテ instead of "register"
    page.goto(sales_call.path)
    expect(page.get_by_role("link", name="顧客カルテ: 山田 太郎")).to_be_visible()

    phone = open_page("yamamoto", device="phone")
    phone.goto("/customers/")
    phone.get_by_role("link", name="山田 太郎").click()
    expect(phone.get_by_role("link", name="折り返し")).to_be_visible()
    shot(phone, "customer-karte-phone-390x844")


def test_another_team_does_not_see_the_customer(open_page: OpenPage, callvault: CallvaultServer) -> None:
    page = open_page("suzuki")
    page.goto("/customers/")
    expect(page.get_by_role("heading", name="顧客", exact=True)).to_be_visible()
    expect(page.locator("#customers-table")).not_to_contain_text("山田")
    code = "from callvault.apps.customers.models import Customer as C; "
    code += "print(C.objects.get(name='山田 太郎').pk)"
    pk = callvault.cli("manage", "shell", "-c", code).stdout.strip().splitlines()[-1]
    response = page.goto(f"/customers/{pk}/")
    assert response is not None and response.status == 404


def test_a_supervisor_imports_a_shift_jis_file_after_a_preview(
    open_page: OpenPage, callvault: CallvaultServer, tmp_path: Path
) -> None:
    page = open_page("sato")
    page.goto("/customers/import/")
    shot(page, "customer-import-desktop-1366x900")
    page.locator("#id_file").set_input_files(str(cp932_csv(tmp_path)))
    page.get_by_role("button", name="内容を確認").click()
    expect(page.get_by_role("heading", name="2. 取り込み内容の確認")).to_be_visible()
    expect(page.get_by_text("Shift_JIS (CP932)")).to_be_visible()
    table = page.locator("#preview-table")
    expect(table.locator("tr.cu-row-create")).to_have_count(3)
    expect(table).to_contain_text("髙橋 美咲")
    expect(table).to_contain_text("渡邊 恵子")
    shot(page, "customer-import-preview-desktop-1366x900")
    page.get_by_role("button", name=re.compile(r"^取り込む")).click()
    expect(page.get_by_text("取り込みました: 新規 3件、更新 0件、変更なし 0件。")).to_be_visible()

    page.get_by_label("名前・フリガナ・会社名・電話番号").fill("わたなべ")
    page.get_by_role("button", name="検索", exact=True).click()
    rows = page.locator("#customers-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("渡邊 恵子")
    expect(rows.first).to_contain_text("06-5555-0303")
    page.goto("/customers/")
    shot(page, "customer-list-desktop-1366x900")
    phone = open_page("sato", device="phone")
    phone.goto("/customers/")
    expect(phone.locator("#customers-table")).to_contain_text("髙橋 美咲")
    shot(phone, "customer-list-phone-390x844")


def test_a_supervisor_keeps_the_nuisance_list(open_page: OpenPage, callvault: CallvaultServer) -> None:
    page = open_page("sato")
    page.goto("/customers/numbers/")
    page.locator("#id_pattern").fill("0120*")
    page.locator("#id_reason").fill("営業の勧誘電話")
    page.get_by_role("button", name="追加").click()
    expect(page.get_by_text("リストに追加しました。")).to_be_visible()
    row = page.locator("#numbers-table tbody tr").filter(has_text="0120…")
    expect(row).to_contain_text("迷惑電話")
    expect(row).to_contain_text("営業の勧誘電話")
    expect(row).to_contain_text("営業部")
    shot(page, "customer-number-list-desktop-1366x900")
