"""The web UI in a real browser (Debian's headless Chromium) against a real `callvault serve`,
with calls placed by sipp: the live calls list, the call page's player and comments, team
isolation, login and logout, and screenshots at phone and desktop sizes for review."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    ACCOUNTS,
    ARTIFACTS,
    CallvaultServer,
    OpenPage,
    PlacedCall,
    SippCall,
    log_in,
    record_timing,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

COMMENT = "ここで返金を約束"
CLOCK = re.compile(r"^\d{2}:\d{2}$")
COMMENTS = re.compile(r"^コメント( \d+)?$")  # the heading carries the count

# Notes every row of the calls table and, per row, when each state was first shown (browser clock).
WATCH_ROWS = """() => {
  window.__rows = {};
  const body = document.getElementById("calls-body");
  const note = () => {
    for (const tr of body.querySelectorAll("tr[data-call-id]")) {
      const seen = window.__rows[tr.dataset.callId] ||= {first: Date.now(), shown: {}};
      const key = (tr.dataset.state || "") + " | " + tr.innerText.replace(/\\s+/g, " ");
      seen.shown[key] ??= Date.now();
    }
  };
  note();
  new MutationObserver(note).observe(
    body, {childList: true, subtree: true, attributes: true, characterData: true});
}"""

AUDIO_STATE = """() => {
  const a = document.querySelector("audio");
  return a && {currentTime: a.currentTime, paused: a.paused, ended: a.ended, rate: a.playbackRate,
    readyState: a.readyState, networkState: a.networkState, error: a.error && a.error.code,
    src: a.currentSrc, duration: a.duration};
}"""


def mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def duration_ja(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}分{s % 60:02d}秒" if s >= 60 else f"{s}秒"


def row_ids(page: Page) -> list[str]:
    return list(page.eval_on_selector_all("tr[data-call-id]", "rows => rows.map(r => r.dataset.callId)"))


def open_calls_list(page: Page) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200, f"GET / gave {response and response.status}"
    expect(page.get_by_role("heading", name="通話一覧", exact=True)).to_be_visible()
    # the WebSocket is connected before anything is placed: the live indicator says so
    expect(page.get_by_text("リアルタイム更新中")).to_be_visible(timeout=15_000)


def test_new_call_appears_live_in_the_agents_list_and_not_in_another_teams(
    open_page: OpenPage, callvault: CallvaultServer, call_registry: dict[str, str]
) -> None:
    page = open_page("yamamoto")
    open_calls_list(page)
    other_team = open_page("suzuki")
    open_calls_list(other_team)
    for p in (page, other_team):
        p.evaluate(WATCH_ROWS)
    before = row_ids(page)
    marker = secrets.token_hex(8)
    page.evaluate("m => { window.__marker = m; }", marker)
    navigations: list[str] = []
    page.on(
        "framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None
    )
    url = page.url

    with SippCall(callvault, "siprec_basic.xml") as sipp:  # callee: extension 201 = 営業部 / yamamoto
        page.wait_for_function(
            "before => [...document.querySelectorAll('tr[data-call-id]')]"
            ".some(r => !before.includes(r.dataset.callId))",
            arg=before,
            timeout=20_000,
        )
        [call_id] = [i for i in row_ids(page) if i not in before]
        row = page.locator(f'tr[data-call-id="{call_id}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text("山田 太郎")  # the caller, from the SIPREC metadata
        expect(row).to_contain_text("03-1234-5678")  # +81312345678 shown as a Japanese number
        expect(row).to_contain_text("山本 健太")  # the agent of extension 201
        sipp.finish()
    bye_at = sipp.bye_sent_at()
    call_registry["sales"] = call_id

    expect(row).to_have_attribute("data-state", "completed", timeout=20_000)
    expect(row).to_contain_text("録音あり", timeout=60_000)  # finalized by the worker, shown live

    assert page.evaluate("() => window.__marker") == marker, "the page was reloaded (marker lost)"
    assert navigations == [] and page.url == url, f"the page navigated: {navigations}"
    seen: dict[str, Any] = page.evaluate("id => window.__rows[id]", call_id)
    shown = seen["shown"]
    ended = min(t for key, t in shown.items() if key.startswith("completed"))
    ready = min(t for key, t in shown.items() if "録音あり" in key)
    record_timing("INVITE → row visible (call in progress)", seen["first"] / 1000 - sipp.started_at)
    record_timing("BYE → row shows the call ended", ended / 1000 - bye_at)
    record_timing("BYE → row shows the recording ready", ready / 1000 - bye_at)

    assert call_id not in row_ids(other_team), "サポート部's agent saw 営業部's call in the list"
    assert other_team.evaluate("id => window.__rows[id] || null", call_id) is None
    expect(other_team.get_by_text("まだ通話がありません。")).to_be_visible()


def test_pages_load_their_stylesheets_and_scripts(open_page: OpenPage, sales_call: PlacedCall) -> None:
    """Without /static/ the list is not live and the player has no controls (the other tests time out)."""
    page = open_page("yamamoto")
    static: dict[str, object] = {}
    page.on("request", lambda r: static.update({r.url: "no answer"}) if "/static/" in r.url else None)
    page.on("response", lambda r: static.update({r.url: r.status}) if "/static/" in r.url else None)
    for path in ("/", sales_call.path):
        page.goto(path)
        page.wait_for_load_state("load")
    wanted = {"app.css", "calls.js", "call.css", "player.js"}
    loaded = {url.rsplit("/", 1)[-1] for url, status in static.items() if status == 200}
    assert wanted <= loaded, f"static files not served by `callvault serve`: {static}"
    applied = page.evaluate(
        "() => [...document.styleSheets]"
        ".filter(s => (s.href || '').includes('/static/') && s.cssRules.length).length"
    )
    assert applied >= 2, f"the call page applies {applied} of its 2 stylesheets (app.css, call.css)"


def test_agent_plays_the_recording_changes_speed_and_pins_a_comment(
    open_page: OpenPage, sales_call: PlacedCall
) -> None:
    page = open_page("yamamoto")
    response = page.goto(sales_call.path)
    assert response is not None and response.status == 200
    rec_duration = sales_call.data["recording"]["duration"]

    # what the page says about the call
    expect(page.get_by_role("heading", name="山田 太郎")).to_be_visible()
    expect(page.locator("dt", has_text="通話時間").locator("xpath=following-sibling::dd")).to_have_text(
        duration_ja(sales_call.data["duration"])
    )
    participants = page.get_by_role("region", name="参加者")
    expect(participants).to_contain_text("山田 太郎")
    expect(participants).to_contain_text("受付 佐藤")
    player = page.get_by_role("region", name="録音", exact=True)
    expect(player).to_contain_text(mmss(rec_duration))  # total length next to the position

    # play: the audio element really advances
    player.get_by_role("button", name="再生", exact=True).click()
    try:
        page.wait_for_function(
            "() => { const a = document.querySelector('audio'); return a && a.currentTime > 0.5; }",
            timeout=15_000,
        )
    except Exception as exc:
        raise AssertionError(f"the recording does not play: {page.evaluate(AUDIO_STATE)}") from exc
    expect(player.get_by_role("button", name="一時停止", exact=True)).to_be_visible()

    # speed 1.5x
    player.get_by_label("速度").select_option("1.5")
    assert page.evaluate("() => document.querySelector('audio').playbackRate") == 1.5

    # pause a little later, pin a comment to the current position
    page.wait_for_function("() => document.querySelector('audio').currentTime > 2", timeout=10_000)
    player.get_by_role("button", name="一時停止", exact=True).click()
    page.wait_for_function("() => document.querySelector('audio').paused")
    position = page.evaluate("() => document.querySelector('audio').currentTime")
    assert position > 2, page.evaluate(AUDIO_STATE)
    comments = page.get_by_role("region", name=COMMENTS)
    comments.get_by_role("button", name="現在の位置").click()
    offset = comments.get_by_role("textbox", name="再生位置")
    expect(offset).to_have_value(mmss(position))
    comments.get_by_label("コメントを書く").fill(COMMENT)
    comments.get_by_role("button", name="投稿").click()
    item = comments.get_by_role("listitem").filter(has_text=COMMENT)
    expect(item).to_contain_text(mmss(position))

    page.reload()
    item = page.get_by_role("region", name=COMMENTS).get_by_role("listitem").filter(has_text=COMMENT)
    expect(item).to_have_count(1)
    chip = item.get_by_role("link", name=mmss(position), exact=True)
    expect(chip).to_be_visible()
    assert CLOCK.match(chip.inner_text().strip()), chip.inner_text()
    expect(item).to_contain_text("山本 健太")


def test_agent_of_another_team_neither_lists_nor_opens_the_call(
    open_page: OpenPage, sales_call: PlacedCall
) -> None:
    page = open_page("suzuki")
    response = page.goto("/")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="通話一覧", exact=True)).to_be_visible()
    assert sales_call.id not in row_ids(page)
    expect(page.get_by_text("まだ通話がありません。")).to_be_visible()

    response = page.goto(sales_call.path)
    assert response is not None and response.status == 404, f"call page gave {response and response.status}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "call-of-another-team-404-desktop-1366x900.png"))
    for path in (
        f"{sales_call.path}audio?format=opus",
        f"{sales_call.path}row",
        f"{sales_call.path}peaks.json",
    ):
        status = page.request.get(path, max_redirects=0).status
        assert status == 404, f"{path} gave {status} to サポート部's agent"


def test_wrong_password_is_refused_in_japanese(open_page: OpenPage) -> None:
    page = open_page(None)
    page.goto("/login/")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
    page.get_by_label("ユーザー名", exact=True).fill("yamamoto")
    page.get_by_label("パスワード", exact=True).fill("not-the-password")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="ログイン", exact=True).click()
    assert posted.value.status == 200
    expect(page.get_by_role("alert")).to_have_text("ユーザー名またはパスワードが正しくありません。")
    expect(page.get_by_label("ユーザー名", exact=True)).to_have_value("yamamoto")
    page.goto("/")
    assert page.url.endswith("/login/?next=/"), (
        f"without a login / must lead to the login page, got {page.url}"
    )


def test_logout_ends_the_session(open_page: OpenPage) -> None:
    page = open_page(None)  # its own session: the shared logged-in states stay valid
    log_in(page, ACCOUNTS["sato"])
    page.get_by_label("アカウントメニュー").click()
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url("**/login/")
    expect(page.get_by_role("status").filter(has_text="ログアウトしました。")).to_be_visible()
    page.goto("/")
    assert page.url.endswith("/login/?next=/"), f"after logout / must lead to the login page, got {page.url}"


def sideways_overflow(page: Page) -> int:
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_login_list_and_call_page_fit_phone_and_desktop_screens(
    open_page: OpenPage, sales_call: PlacedCall, device: str
) -> None:
    """Also saves the screenshots for the UI review (test-artifacts/)."""
    size = {"phone": "390x844", "desktop": "1366x900"}[device]
    ARTIFACTS.mkdir(exist_ok=True)

    def shoot(page: Page, name: str) -> None:
        page.evaluate("() => window.scrollTo(0, 0)")
        path = ARTIFACTS / f"{name}-{device}-{size}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="initial")
        overflow = sideways_overflow(page)
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {size} (see {path})"

    login = open_page(None, device=device)
    login.goto("/login/")
    expect(login.get_by_role("button", name="ログイン", exact=True)).to_be_visible()
    shoot(login, "login")

    page = open_page("sato", device=device)  # the supervisor sees every control (CSV, download)
    open_calls_list(page)
    expect(page.locator(f'tr[data-call-id="{sales_call.id}"]')).to_be_visible()
    shoot(page, "calls-list")

    page.goto(sales_call.path)
    player = page.get_by_role("region", name="録音", exact=True)
    expect(player.get_by_role("button", name="再生", exact=True)).to_be_visible()
    expect(page.get_by_text("波形を読み込んでいます…")).to_be_hidden()  # the waveform is drawn
    shoot(page, "call-page")
