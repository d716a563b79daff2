"""The call page: who sees it, what it shows, tags and time-pinned comments with their audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from callvault.apps.audit.models import AuditEntry, verify_chain
from callvault.apps.calls import annotations
from callvault.apps.calls.models import Call, CallTag, Comment, DtmfEvent, Stream, Tag
from tests.apps.conftest import Cast, make_call
from tests.web.test_playback import data_dir, make_recording  # noqa: F401 (fixture)

SEES = {"admin": 200, "supervisor": 200, "member": 200, "outsider": 404, "auditor": 404}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(call: Call, user: Any) -> str:
    response = client_for(user).get(reverse("web:call", args=[call.pk]))
    assert response.status_code == 200
    return response.content.decode()


def audit(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def comment_url(call: Call) -> str:
    return reverse("web:call_comment_add", args=[call.pk])


def tag_url(call: Call) -> str:
    return reverse("web:call_tag_add", args=[call.pk])


# -- who sees the page -------------------------------------------------------------------------------


def test_it_shows_the_call_page_to_each_role_that_may_see_the_call_and_404_to_the_others(cast: Cast) -> None:
    for role, user in cast.users().items():
        response = client_for(user).get(reverse("web:call", args=[cast.call_a.pk]))
        assert response.status_code == SEES[role], role
        if response.status_code == 200:
            assert response["Cache-Control"] == "private, no-store"
        else:
            assert "山田" not in response.content.decode()


def test_it_answers_404_for_an_unknown_or_malformed_call_id(cast: Cast) -> None:
    client = client_for(cast.admin)
    assert client.get(reverse("web:call", args=[uuid.uuid4()])).status_code == 404
    for bad in ("not-a-uuid", "1%3B%20DROP%20TABLE", "0" * 5000, "%00"):
        assert client.get(f"/calls/{bad}/").status_code == 404, bad


def test_it_sends_anonymous_visitors_to_the_login_page(cast: Cast, settings: Any) -> None:
    settings.LOGIN_URL = "/login/"
    response = Client().get(reverse("web:call", args=[cast.call_a.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


# -- what it shows -----------------------------------------------------------------------------------------


def test_it_shows_who_called_whom_when_and_for_how_long_in_japanese(cast: Cast) -> None:
    started = datetime(2026, 11, 27, 14, 5, 12, tzinfo=ZoneInfo("Asia/Tokyo"))
    Call.objects.filter(pk=cast.call_a.pk).update(
        started_at=started,
        answered_at=started + timedelta(seconds=7),
        ended_at=started + timedelta(seconds=7 + 185),
        duration=185.0,
        end_reason="bye",
    )
    html = page_of(cast.call_a, cast.member)
    for text in (
        "山田 太郎",  # the caller's name
        "03-1234-5678",  # numbers as people write them
        "2026/11/27 14:05",
        "3分05秒",
        "営業部",
        "member",  # the agent the call is assigned to names the company's side (as in the list)
        "着信",
        "顧客",  # inbound: the caller is the customer...
        "担当者",  # ...and the callee the agent
        "通話終了",
        "14:05:19",  # answered, on the timeline
        "呼び出し 7秒",
    ):
        assert text in html, text
    assert "+81312345678" not in html.split("<main", 1)[1].split("cv-people-aor")[0]


def test_it_shows_withheld_and_payphone_callers_in_words(cast: Cast) -> None:
    withheld = make_call(cast.team_a, cast.member, caller="anonymous", caller_name="")
    payphone = make_call(cast.team_a, cast.member, caller="payphone", caller_name="")
    assert "非通知" in page_of(withheld, cast.member)
    assert "公衆電話" in page_of(payphone, cast.member)


@pytest.mark.parametrize(
    ("state", "reason", "shown"),
    [
        ("completed", "rtp_timeout", "RTPタイムアウト"),
        ("interrupted", "crash", "中断 (サーバー停止)"),
        ("cancelled", "cancel", "不在着信"),
        ("completed", "bye", "通話終了"),
    ],
)
def test_it_explains_how_the_call_ended(cast: Cast, state: str, reason: str, shown: str) -> None:
    call = make_call(cast.team_a, cast.member, state=state, end_reason=reason, recording_state="none")
    assert shown in page_of(call, cast.member)


def test_it_shows_the_recording_states_as_badges(cast: Cast) -> None:
    expected = {"recording": "録音中", "pending": "処理待ち", "ready": "録音あり", "failed": "処理失敗"}
    for state, label in expected.items():
        call = make_call(cast.team_a, cast.member, recording_state=state)
        if state == "ready":
            make_recording(call)
        html = page_of(call, cast.member)
        assert f">{label}</span>" in html, state


def test_it_shows_a_failed_recording_with_its_error_and_a_retry_button_for_managers_only(cast: Cast) -> None:
    call = make_call(
        cast.team_a, cast.member, recording_state="failed", recording_error="FinalizeError: boom"
    )
    retry = reverse("web:call_retry", args=[call.pk])
    for role, user in (("admin", cast.admin), ("supervisor", cast.supervisor), ("member", cast.member)):
        html = page_of(call, user)
        assert "録音の処理に失敗しました" in html and "FinalizeError: boom" in html
        assert (retry in html) == (role != "member"), role
    assert "スーパーバイザーまたは管理者に再処理を依頼してください" in page_of(call, cast.member)


def test_it_queues_the_retry_for_supervisors_and_refuses_everyone_else_with_404(
    cast: Cast, settings: Any
) -> None:
    from huey.contrib.djhuey import HUEY

    call = make_call(
        cast.team_a, cast.member, recording_state="failed", recording_error="boom", finalize_attempts=5
    )
    retry = reverse("web:call_retry", args=[call.pk])
    for user in (cast.member, cast.outsider, cast.auditor):
        assert client_for(user).post(retry).status_code == 404
    call.refresh_from_db()
    assert call.recording_state == "failed"

    immediate = HUEY.immediate
    HUEY.immediate = True  # run the real finalize job in-process
    try:
        response = client_for(cast.supervisor).post(retry, follow=True)
    finally:
        HUEY.immediate = immediate
    assert response.status_code == 200
    assert "録音の再処理を受け付けました" in response.content.decode()
    call.refresh_from_db()
    # The job ran: it claimed the call again (attempts reset, then one), found no spool, and says so.
    assert call.finalize_attempts == 1
    assert "spool is missing" in call.recording_error


def test_it_shows_stream_figures_and_warns_about_loss_above_one_percent(cast: Cast) -> None:
    Stream.objects.create(
        call=cast.call_a,
        index=0,
        role="caller",
        codec="PCMU",
        packets_received=990,
        packets_lost=10,
        jitter_ms=3.25,
    )
    Stream.objects.create(
        call=cast.call_a,
        index=1,
        role="callee",
        codec="PCMU",
        packets_received=960,
        packets_lost=40,
        jitter_ms=12.5,
    )
    html = page_of(cast.call_a, cast.member)
    assert "受信パケット" in html and "損失率" in html and "ジッター" in html
    assert "990" in html and "1.0%" in html and "4.0%" in html and "12.5 ms" in html
    warned = html.split("4.0%")[0].rsplit("<td", 1)[1]
    fine = html.split("1.0%")[0].rsplit("<td", 1)[1]
    assert "cv-warn" in warned and "cv-warn" not in fine  # exactly 1% is fine, above warns


def test_it_lists_dtmf_and_the_evidence_of_the_recording(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    Stream.objects.create(call=cast.call_a, index=0, role="caller")
    DtmfEvent.objects.create(call=cast.call_a, stream_index=0, digit="5", offset=1.5, duration_ms=120)
    html = page_of(cast.call_a, cast.member)
    assert "ダイヤル入力" in html and ">5</kbd>" in html and 'data-seek="1.50"' in html
    assert rec.sha256 in html
    assert f"{rec.bytes:,} バイト" in html
    assert "Ogg Opus" in html and "ステレオ (2ch)" in html and "16 kHz" in html
    assert "検証日時" in html and str(cast.call_a.pk) in html


def test_it_offers_the_download_only_to_those_who_may_export(cast: Cast) -> None:
    make_recording(cast.call_a)
    link = reverse("web:call_download", args=[cast.call_a.pk])
    assert link in page_of(cast.call_a, cast.supervisor)
    assert link in page_of(cast.call_a, cast.admin)
    assert link not in page_of(cast.call_a, cast.member)


def test_it_gives_the_player_both_formats_and_the_waveform_address(cast: Cast) -> None:
    make_recording(cast.call_a)
    html = page_of(cast.call_a, cast.member)
    assert 'id="cv-player-data"' in html
    assert "format=opus" in html and "format=m4a" in html
    assert reverse("web:call_peaks", args=[cast.call_a.pk]) in html
    assert "キーボード操作" in html
    assert 'preload="none"' in html  # nothing is fetched (or audited) before someone presses play


# -- comments ---------------------------------------------------------------------------------------------


def test_it_lets_everyone_who_sees_the_call_comment_and_audits_it(cast: Cast) -> None:
    for role, user in cast.users().items():
        response = client_for(user).post(comment_url(cast.call_a), {"text": f"{role} のメモ"})
        assert response.status_code == (302 if SEES[role] == 200 else 404), role
    assert sorted(Comment.objects.values_list("text", flat=True)) == sorted(
        ["admin のメモ", "supervisor のメモ", "member のメモ"]
    )
    entries = audit("comment")
    assert [e.username for e in entries] == ["admin", "supervisor", "member"]
    assert all(e.object_id == str(cast.call_a.pk) and e.ip == "127.0.0.1" for e in entries)
    assert all("メモ" not in str(e.detail) for e in entries)  # the audit log does not copy call content


def test_it_shows_comments_to_everyone_who_sees_the_call_newest_last(cast: Cast) -> None:
    make_recording(cast.call_a)
    client_for(cast.member).post(comment_url(cast.call_a), {"text": "最初のコメント", "offset": "00:02"})
    client_for(cast.supervisor).post(comment_url(cast.call_a), {"text": "二番目のコメント"})
    html = page_of(cast.call_a, cast.admin)
    assert html.index("最初のコメント") < html.index("二番目のコメント")
    assert 'data-seek="2.00"' in html and "00:02" in html
    assert "supervisor" in html


def test_it_pins_a_comment_to_the_time_written_as_minutes_and_seconds(cast: Cast) -> None:
    make_recording(cast.call_a, seconds=3.0)
    response = client_for(cast.member).post(
        comment_url(cast.call_a), {"text": "ここで返金を約束", "offset": "0:02.5"}
    )
    assert response.status_code == 302
    assert response["Location"].endswith("#comments")
    comment = Comment.objects.get()
    assert (comment.offset, comment.text, comment.author) == (2.5, "ここで返金を約束", cast.member)
    assert audit("comment")[0].detail["offset"] == 2.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"text": ""}, "コメントを入力してください"),
        ({"text": "   \n\t  "}, "コメントを入力してください"),
        ({"text": "あ" * 4001}, "4,000 文字以内"),
        ({"text": "ok", "offset": "-5"}, "00:00 以降"),
        ({"text": "ok", "offset": "00:09"}, "録音の長さ"),
        ({"text": "ok", "offset": "99999"}, "録音の長さ"),
        ({"text": "ok", "offset": "12:75"}, "59 まで"),
        ({"text": "ok", "offset": "abc"}, "分:秒"),
        ({"text": "ok", "offset": "nan"}, "分:秒"),
        ({"text": "ok", "offset": "1" * 100}, "分:秒"),
    ],
)
def test_it_refuses_bad_comments_with_a_clear_message_and_keeps_the_text(
    cast: Cast, data: dict[str, str], message: str
) -> None:
    make_recording(cast.call_a, seconds=3.0)
    response = client_for(cast.member).post(comment_url(cast.call_a), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    if data["text"].strip() and len(data["text"]) < 100:
        assert f">{data['text']}</textarea>" in html  # nothing typed is lost
    assert Comment.objects.count() == 0 and audit("comment") == []


def test_it_refuses_a_time_on_a_comment_when_there_is_no_recording(cast: Cast) -> None:
    call = make_call(cast.team_a, cast.member, recording_state="none", state="cancelled")
    response = client_for(cast.member).post(comment_url(call), {"text": "折り返す", "offset": "00:01"})
    assert response.status_code == 400
    assert "再生できる録音がない" in response.content.decode()
    assert client_for(cast.member).post(comment_url(call), {"text": "折り返す"}).status_code == 302


def test_it_answers_the_enhanced_comment_form_with_json(cast: Cast) -> None:
    make_recording(cast.call_a)
    client = client_for(cast.member)
    ok = client.post(
        comment_url(cast.call_a), {"text": "<b>太字?</b>", "offset": "1"}, HTTP_ACCEPT="application/json"
    )
    assert ok.status_code == 200
    data = ok.json()
    assert data["ok"] is True and data["message"] == "コメントを追加しました。"
    assert "&lt;b&gt;太字?&lt;/b&gt;" in data["html"]["comments"]  # escaped, never markup
    assert "<b>太字" not in data["html"]["comments"]
    assert data["markers"] == [
        {"id": Comment.objects.get().pk, "t": 1.0, "label": "00:01", "text": "<b>太字?</b>", "who": "member"}
    ]
    bad = client.post(comment_url(cast.call_a), {"text": ""}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400
    assert bad.json() == {"ok": False, "error": "コメントを入力してください。", "field": "text"}


def test_it_lets_only_the_author_or_an_admin_delete_a_comment_and_audits_it(cast: Cast) -> None:
    client_for(cast.member).post(comment_url(cast.call_a), {"text": "担当のメモ"})
    comment = Comment.objects.get()
    url = reverse("web:call_comment_delete", args=[cast.call_a.pk, comment.pk])
    for user in (cast.supervisor, cast.outsider, cast.auditor):
        assert client_for(user).post(url).status_code == 404
    assert Comment.objects.filter(pk=comment.pk).exists() and audit("delete") == []
    assert 'class="cv-comment-delete"' not in page_of(cast.call_a, cast.supervisor)
    assert 'class="cv-comment-delete"' in page_of(cast.call_a, cast.member)

    assert client_for(cast.member).post(url).status_code == 302
    assert not Comment.objects.exists()
    entry = audit("delete")[0]
    assert (entry.username, entry.object_id, entry.detail["what"], entry.detail["comment"]) == (
        "member",
        str(cast.call_a.pk),
        "comment",
        comment.pk,
    )

    client_for(cast.supervisor).post(comment_url(cast.call_a), {"text": "SVのメモ"})
    other = Comment.objects.get()
    admin_url = reverse("web:call_comment_delete", args=[cast.call_a.pk, other.pk])
    assert client_for(cast.admin).post(admin_url).status_code == 302
    assert [e.username for e in audit("delete")] == ["member", "admin"]
    assert verify_chain().ok


def test_it_answers_404_for_comments_of_another_call_or_absurd_ids(cast: Cast) -> None:
    client_for(cast.outsider).post(comment_url(cast.call_b), {"text": "B のメモ"})
    comment_b = Comment.objects.get()
    admin = client_for(cast.admin)
    # the id of call B's comment under call A's address: not found, nothing deleted
    assert (
        admin.post(reverse("web:call_comment_delete", args=[cast.call_a.pk, comment_b.pk])).status_code == 404
    )
    assert admin.post(f"/calls/{cast.call_a.pk}/comments/{10**30}/delete").status_code == 404
    assert Comment.objects.filter(pk=comment_b.pk).exists()


# -- tags -------------------------------------------------------------------------------------------------


def test_it_lets_everyone_who_sees_the_call_tag_it_from_the_list_or_with_a_new_name(cast: Cast) -> None:
    claim = Tag.objects.create(name="クレーム", color="#dc2626")
    for role, user in cast.users().items():
        response = client_for(user).post(tag_url(cast.call_a), {"tag": claim.pk})
        assert response.status_code == (302 if SEES[role] == 200 else 404), role
    assert list(cast.call_a.call_tags.values_list("tag__name", flat=True)) == ["クレーム"]
    assert client_for(cast.member).post(tag_url(cast.call_a), {"name": "  要折り返し "}).status_code == 302
    assert sorted(cast.call_a.call_tags.values_list("tag__name", flat=True)) == ["クレーム", "要折り返し"]
    entries = audit("tag")
    assert [(e.username, e.detail["op"], e.detail["tag"]) for e in entries] == [
        ("admin", "add", "クレーム"),
        ("member", "add", "要折り返し"),
    ]
    html = page_of(cast.call_a, cast.supervisor)
    assert "要折り返し" in html and "--tag-color: #dc2626" in html


def test_it_treats_full_width_and_differently_cased_names_as_the_same_tag(cast: Cast) -> None:
    client = client_for(cast.member)
    client.post(tag_url(cast.call_a), {"name": "ＶＩＰ"})
    client.post(tag_url(cast.call_a), {"name": "vip"})
    assert list(Tag.objects.values_list("name", flat=True)) == ["VIP"]
    assert CallTag.objects.filter(call=cast.call_a).count() == 1
    assert len(audit("tag")) == 1  # the second add changed nothing


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tag": "999999"}, "指定されたタグが見つかりません"),
        ({"tag": "abc"}, "指定されたタグが見つかりません"),
        ({"tag": str(10**30)}, "指定されたタグが見つかりません"),
        ({"name": "あ" * 51}, "50 文字以内"),
        ({"name": "\x00\x01"}, "タグ名を入力してください"),
        ({}, "タグを選ぶか"),
    ],
)
def test_it_refuses_unknown_tags_and_bad_names_with_a_clear_message(
    cast: Cast, data: dict[str, str], message: str
) -> None:
    response = client_for(cast.member).post(tag_url(cast.call_a), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not CallTag.objects.exists() and audit("tag") == []
    as_json = client_for(cast.member).post(tag_url(cast.call_a), data, HTTP_ACCEPT="application/json")
    assert as_json.status_code == 400 and message in as_json.json()["error"]


def test_it_removes_a_tag_and_audits_it(cast: Cast) -> None:
    tag = Tag.objects.create(name="研修用")
    CallTag.objects.create(call=cast.call_a, tag=tag)
    url = reverse("web:call_tag_remove", args=[cast.call_a.pk, tag.pk])
    assert client_for(cast.outsider).post(url).status_code == 404
    response = client_for(cast.member).post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["message"] == "タグ「研修用」を外しました。"
    assert "研修用" not in response.json()["html"]["tags"].split("datalist")[0]
    assert not CallTag.objects.exists() and Tag.objects.filter(pk=tag.pk).exists()
    assert [(e.username, e.detail["op"]) for e in audit("tag")] == [("member", "remove")]
    again = client_for(cast.member).post(url)
    assert again.status_code == 400 and "このタグは通話に付いていません" in again.content.decode()


# -- forms: method, CSRF, escaping ---------------------------------------------------------------------------


def test_it_requires_post_with_a_csrf_token_for_every_change(cast: Cast) -> None:
    tag = Tag.objects.create(name="確認")
    urls = [
        comment_url(cast.call_a),
        tag_url(cast.call_a),
        reverse("web:call_tag_remove", args=[cast.call_a.pk, tag.pk]),
        reverse("web:call_retry", args=[cast.call_a.pk]),
    ]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(cast.admin)
    for url in urls:
        assert client_for(cast.admin).get(url).status_code == 405, url
        assert strict.post(url, {"text": "x", "tag": tag.pk}).status_code == 403, url
    assert not Comment.objects.exists() and not CallTag.objects.exists()
    assert 'name="csrfmiddlewaretoken"' in page_of(cast.call_a, cast.member)


def test_it_escapes_everything_people_typed(cast: Cast) -> None:
    Call.objects.filter(pk=cast.call_a.pk).update(caller_name='<img src=x onerror="alert(1)">')
    client_for(cast.member).post(comment_url(cast.call_a), {"text": "<script>alert(1)</script>"})
    client_for(cast.member).post(tag_url(cast.call_a), {"name": "<i>x</i>"})
    html = page_of(cast.call_a, cast.member)
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<i>x</i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_keeps_tag_colours_to_plain_hex_values(cast: Cast) -> None:
    tag = Tag.objects.create(name="危険", color="red;}")
    CallTag.objects.create(call=cast.call_a, tag=tag)
    html = page_of(cast.call_a, cast.member)
    assert "red;}" not in html and "--tag-color: #6b7280" in html


# -- the services on their own ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("02:13", 133.0),
        ("2:13", 133.0),
        ("1:02:13", 3733.0),
        ("133", 133.0),
        ("133.5", 133.5),
        ("０２：１３", 133.0),
        ("", None),
    ],
)
def test_it_reads_times_the_way_people_write_them(raw: str, seconds: float | None) -> None:
    assert annotations.parse_offset(raw, duration=4000.0) == seconds


def test_it_formats_times_for_people() -> None:
    assert annotations.format_offset(133.9) == "02:13"
    assert annotations.format_offset(3733) == "1:02:13"
    assert annotations.format_offset(-3) == "00:00"


def test_it_answers_absurd_tag_ids_in_the_address_without_an_error(cast: Cast) -> None:
    response = client_for(cast.member).post(f"/calls/{cast.call_a.pk}/tags/{10**30}/remove")
    assert response.status_code == 400
    assert "このタグは通話に付いていません" in response.content.decode()


def test_it_asks_the_browser_to_watch_only_calls_whose_recording_is_not_settled(cast: Cast) -> None:
    for state, watched in (("recording", True), ("pending", True), ("processing", True), ("failed", False)):
        call = make_call(cast.team_a, cast.member, recording_state=state)
        assert (" data-live" in page_of(call, cast.member)) == watched, state
    make_recording(cast.call_a)
    assert " data-live" not in page_of(cast.call_a, cast.member)


def test_it_says_unanswered_and_ongoing_instead_of_a_duration(cast: Cast) -> None:
    missed = make_call(cast.team_a, cast.member, state="cancelled", answered_at=None, duration=0.0)
    ongoing = make_call(cast.team_a, cast.member, state="active", ended_at=None, duration=None)
    assert "応答なし" in page_of(missed, cast.member)
    assert "通話中" in page_of(ongoing, cast.member)


def test_it_shows_holds_recorded_in_the_call_metadata_on_the_timeline(cast: Cast) -> None:
    make_recording(cast.call_a, seconds=3.0)
    Call.objects.filter(pk=cast.call_a.pk).update(metadata={"holds": [{"start": 0.5, "end": 2.5}, "junk"]})
    html = page_of(cast.call_a, cast.member)
    assert "保留" in html and "保留解除" in html and "2秒間" in html
    assert 'data-seek="0.50"' in html and 'data-seek="2.50"' in html


def test_it_shows_capture_loss_apart_from_network_loss_and_unsupported_streams(cast: Cast) -> None:
    Call.objects.filter(pk=cast.call_a.pk).update(source="capture", packets_capture_lost=3)
    Stream.objects.create(
        call=cast.call_a, index=0, role="caller", codec="PCMA", packets_received=995, packets_lost=2,
        packets_capture_lost=3,
    )  # fmt: skip
    Stream.objects.create(call=cast.call_a, index=1, role="callee", codec="T.38", unsupported=True)
    html = page_of(cast.call_a, cast.member)
    assert "キャプチャ欠落 3 件" in html and "損失率には含めていません" in html
    assert "0.2%" in html, "only network loss counts in the loss rate"
    assert "未対応コーデック" in html and "パケットキャプチャ" in html
