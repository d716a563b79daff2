"""PBX integrations and the recording completeness page in a real browser against `callvault serve`:
an administrator adds a PBX integration, the PBX (the README's shell example, signed with openssl)
reports a call that was answered but never recorded and a missed call, `callvault check-recordings`
flags the first, and a supervisor finds it on 録音の欠落チェック, on the call page and in the list.
Screenshots for review go to test-artifacts/."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, CallvaultServer, OpenPage

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

# The README's "Try it" example, with the URL of the test server and one field more (time).
README_EXAMPLE = r"""
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
curl -sS "$URL" -H 'Content-Type: application/json' \
  -H "X-Callvault-Key: $KEY" -H "X-Callvault-Signature: t=$t,v1=$sig" -d "$body"
"""


def send(server: CallvaultServer, key: str, secret: str, event: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        ["bash", "-c", README_EXAMPLE],
        env={
            "PATH": "/usr/bin:/bin",
            "KEY": key,
            "SECRET": secret,
            "URL": f"{server.base_url}/api/v1/events",
            "body": json.dumps(event),
            "no_proxy": "*",
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True, animations="disabled")  # type: ignore[attr-defined]


def test_a_pbx_call_without_recording_is_flagged_and_found_by_the_supervisor(
    callvault: CallvaultServer, open_page: OpenPage
) -> None:
    admin = open_page("admin")
    admin.goto("/settings/pbx/")
    expect(admin.get_by_role("heading", name="PBX連携", exact=True)).to_be_visible()
    admin.get_by_role("link", name="PBX 連携を追加").click()
    admin.get_by_label("名前").fill("本社 FreePBX")
    admin.get_by_label("署名 (HMAC-SHA256、推奨)").check()
    admin.get_by_role("button", name="追加").click()
    expect(admin.get_by_role("heading", name="「本社 FreePBX」を追加しました")).to_be_visible()
    key = admin.locator("#key").inner_text().strip()
    secret = admin.locator("#secret").input_value()
    assert key.startswith("pbx_") and secret.startswith("pbxsec_")
    shot(admin, "pbx-integration-secret-desktop.png")

    now = datetime.now(UTC)
    at = lambda minutes: (now - timedelta(minutes=minutes)).isoformat()  # noqa: E731
    answered = {
        "call_id": "1732712345.501",
        "caller": "03-5555-0101",
        "callee": "06-6123-4567",
        "extension": "201",
        "direction": "in",
    }
    assert (
        send(callvault, key, secret, {"event": "ringing", "time": at(25), **answered})["state"] == "ringing"
    )
    send(callvault, key, secret, {"event": "answered", "time": at(24.9), "call_id": answered["call_id"]})
    ended = send(callvault, key, secret, {"event": "ended", "time": at(20), "call_id": answered["call_id"]})
    assert ended["state"] == "completed"
    missed = {"call_id": "1732712345.502", "caller": "090-5555-0202", "callee": "201", "direction": "in"}
    send(callvault, key, secret, {"event": "ringing", "time": at(15), **missed})
    assert (
        send(
            callvault,
            key,
            secret,
            {"event": "ended", "time": at(14.7), "call_id": missed["call_id"], "reason": "NOANSWER"},
        )["state"]
        == "cancelled"
    )
    admin.goto("/settings/pbx/")
    expect(admin.get_by_role("link", name="本社 FreePBX")).to_be_visible()
    admin.get_by_role("link", name="本社 FreePBX").click()
    expect(admin.locator("table tbody tr")).to_have_count(5)
    shot(admin, "pbx-integration-detail-desktop.png")

    check = callvault.cli("check-recordings")
    assert check.returncode == 0, check.stderr
    assert "録音なし" in check.stdout and "03-5555-0101" in check.stdout

    sato = open_page("sato")  # supervisor of 営業部 (extension 201's team)
    sato.goto("/")
    expect(sato.get_by_role("link", name="録音チェック")).to_be_visible()
    expect(sato.locator("tr", has_text="090-5555-0202").first).to_contain_text("不在着信")
    sato.get_by_role("link", name="録音チェック").click()
    expect(sato.get_by_role("heading", name="録音の欠落チェック")).to_be_visible()
    row = sato.locator(f"#flagged tr[data-call='{ended['call_id']}']")
    expect(row).to_contain_text("03-5555-0101")
    expect(row.locator("[data-reason=missing]")).to_have_text("録音なし")
    expect(sato.locator("#flagged tr[data-call]")).to_have_count(1)  # the missed call is fine
    shot(sato, "completeness-page-desktop.png")
    row.get_by_role("button", name="再チェック").click()
    expect(sato.get_by_text("再チェックしました。まだ問題があります。")).to_be_visible()
    sato.locator(f"#flagged tr[data-call='{ended['call_id']}'] a").first.click()
    expect(sato.get_by_text("録音の欠落チェックで問題が見つかりました")).to_be_visible()
    expect(sato.get_by_text("通話は応答・終了していますが、録音がありません。")).to_be_visible()
    shot(sato, "completeness-call-page-desktop.png")

    phone = open_page("sato", device="phone")
    phone.goto("/checks/recordings/?reason=missing")
    expect(phone.locator("#flagged tr[data-call]")).to_have_count(1)
    shot(phone, "completeness-page-phone.png")

    yamamoto = open_page("yamamoto")  # an agent: neither the link nor the page
    yamamoto.goto("/")
    expect(yamamoto.get_by_role("link", name="録音チェック")).to_have_count(0)
    assert yamamoto.goto("/checks/recordings/").status == 404  # type: ignore[union-attr]
