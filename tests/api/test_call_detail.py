"""A call's detail, its recording file (HTTP ranges, audit), comments and tags."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from callvault.apps.audit.models import AuditEntry, verify_chain
from callvault.apps.calls.models import CallTag, Comment, DtmfEvent, Stream, Tag
from callvault.media.encode import probe_recording
from tests.api.conftest import Cast

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def downloads(call: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="download", object_id=str(call.pk)).order_by("id"))


def test_the_detail_carries_participants_streams_dtmf_tags_comments_and_recording(
    cast: Cast, api_for: Any, make_recording: Any
) -> None:
    call = cast.call_a
    rec = make_recording(call)
    Stream.objects.create(
        call=call,
        index=0,
        label="1",
        role="caller",
        codec="PCMU",
        packets_received=150,
        packets_lost=2,
        jitter_ms=3.5,
        remote_addr="10.0.0.9:4000",
    )
    Stream.objects.create(call=call, index=1, label="2", role="callee", codec="PCMU", packets_received=149)
    DtmfEvent.objects.create(call=call, stream_index=0, digit="5", offset=1.25, duration_ms=120)
    CallTag.objects.create(call=call, tag=Tag.objects.create(name="クレーム", color="#b42318"))
    Comment.objects.create(call=call, author=cast.supervisor, offset=1.5, text="ここで要望")
    body = api_for("member").get(f"/calls/{call.pk}").json()
    assert [p["role"] for p in body["participants"]] == ["caller", "callee"]
    assert body["participants"][0]["display"] == "03-1234-5678"
    assert [(s["index"], s["role"], s["packets_received"], s["packets_lost"]) for s in body["streams"]] == [
        (0, "caller", 150, 2),
        (1, "callee", 149, 0),
    ]
    assert "remote_addr" not in body["streams"][0]  # media addresses stay inside
    assert body["dtmf"] == [{"digit": "5", "offset": 1.25, "duration_ms": 120, "stream_index": 0}]
    assert [(t["name"], t["color"]) for t in body["tags"]] == [("クレーム", "#b42318")]
    assert [(c["text"], c["offset"], c["author"]["username"]) for c in body["comments"]] == [
        ("ここで要望", 1.5, "supervisor")
    ]
    assert body["recording"] == {
        "format": "opus",
        "codec": rec.codec,
        "channels": 2,
        "sample_rate": rec.sample_rate,
        "bytes": rec.bytes,
        "sha256": rec.sha256,
        "duration": rec.duration,
        "channel_map": {"left": "caller", "right": "callee"},
        "download_url": f"http://testserver/api/v1/calls/{call.pk}/recording",
    }
    for internal in ("sip_call_id", "spool_key", "metadata", "siprec_session_id"):
        assert internal not in body


def test_a_call_without_recording_says_so(cast: Cast, api_for: Any) -> None:
    body = api_for("member").get(f"/calls/{cast.call_a.pk}").json()
    assert body["recording"] is None
    response = api_for("member").get(f"/calls/{cast.call_a.pk}/recording")
    assert response.status_code == 404
    assert response.json()["message"] == "この通話の録音はまだありません。"


def test_the_whole_recording_downloads_intact_and_is_audited(
    cast: Cast, api_for: Any, make_recording: Any, tmp_path: Any
) -> None:
    rec = make_recording(cast.call_a)
    response = api_for("member").get(
        f"/calls/{cast.call_a.pk}/recording", headers={"X-Forwarded-For": "1.2.3.4"}
    )
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    assert hashlib.sha256(data).hexdigest() == rec.sha256
    assert len(data) == int(response["Content-Length"]) == rec.bytes
    assert response["Content-Type"] == "audio/ogg"
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{rec.sha256}"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Disposition"].startswith('attachment; filename="callvault-')
    out = tmp_path / "downloaded.opus"
    out.write_bytes(data)
    assert abs(probe_recording(out).duration - rec.duration) < 0.01
    [entry] = downloads(cast.call_a)
    assert (entry.user_id, entry.ip, entry.object_type) == (cast.member.pk, "127.0.0.1", "call")
    assert entry.detail["via"] == "api" and entry.detail["range"] is None and "token_id" in entry.detail
    assert verify_chain().ok


def test_ranges_serve_exact_bytes_and_only_the_start_is_audited(
    cast: Cast, api_for: Any, make_recording: Any
) -> None:
    rec = make_recording(cast.call_a, seconds=5.0)
    full = b"".join(api_for("admin").get(f"/calls/{cast.call_a.pk}/recording").streaming_content)
    size = len(full)
    api = api_for("member")
    url = f"/calls/{cast.call_a.pk}/recording"
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-50": (size - 50, size - 1),
        f"bytes=10-{size + 1000}": (10, size - 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    before = len(downloads(cast.call_a))
    for header, (first, last) in cases.items():
        response = api.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
        body = b"".join(response.streaming_content)
        assert body == full[first : last + 1], header
        assert int(response["Content-Length"]) == last - first + 1
    # Only "bytes=0-99" starts at byte 0: one download for five range requests.
    assert len(downloads(cast.call_a)) == before + 1
    assert downloads(cast.call_a)[-1].detail["range"] == "0-99"
    assert rec.bytes == size


@pytest.mark.parametrize(
    "header", ["bytes=999999999-", "bytes=5-2", "bytes=-0", "bytes=abc", "bytes=-", "bytes=" + "9" * 100]
)
def test_unsatisfiable_ranges_answer_416(cast: Cast, api_for: Any, make_recording: Any, header: str) -> None:
    rec = make_recording(cast.call_a)
    before = len(downloads(cast.call_a))
    response = api_for("member").get(f"/calls/{cast.call_a.pk}/recording", headers={"Range": header})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{rec.bytes}"
    assert response.json()["error"] == "range_not_satisfiable"
    assert len(downloads(cast.call_a)) == before


@pytest.mark.parametrize("header", ["items=0-10", "bytes=0-10,20-30"])
def test_ranges_we_do_not_serve_get_the_whole_file(
    cast: Cast, api_for: Any, make_recording: Any, header: str
) -> None:
    rec = make_recording(cast.call_a)
    response = api_for("member").get(f"/calls/{cast.call_a.pk}/recording", headers={"Range": header})
    assert response.status_code == 200
    assert len(b"".join(response.streaming_content)) == rec.bytes


def test_if_range_with_a_stale_etag_gets_the_whole_current_file(
    cast: Cast, api_for: Any, make_recording: Any
) -> None:
    rec = make_recording(cast.call_a)
    api = api_for("member")
    url = f"/calls/{cast.call_a.pk}/recording"
    stale = api.get(url, headers={"Range": "bytes=10-", "If-Range": '"0000"'})
    assert stale.status_code == 200
    fresh = api.get(url, headers={"Range": "bytes=10-", "If-Range": f'"{rec.sha256}"'})
    assert fresh.status_code == 206


def test_flac_and_wav_recordings_have_their_own_types(cast: Cast, api_for: Any, make_recording: Any) -> None:
    make_recording(cast.call_a, fmt="flac")
    make_recording(cast.call_b, fmt="wav")
    admin = api_for("admin")
    assert admin.get(f"/calls/{cast.call_a.pk}/recording")["Content-Type"] == "audio/flac"
    assert admin.get(f"/calls/{cast.call_b.pk}/recording")["Content-Type"] == "audio/wav"


def test_a_recording_missing_from_storage_is_a_clear_404(
    cast: Cast, api_for: Any, make_recording: Any, recordings_dir: Any
) -> None:
    rec = make_recording(cast.call_a)
    path = recordings_dir / rec.storage_key
    path.chmod(0o600)
    path.unlink()
    response = api_for("member").get(f"/calls/{cast.call_a.pk}/recording")
    assert response.status_code == 404
    assert response.json()["error"] == "recording_missing"


# --- comments ------------------------------------------------------------------------------


def test_comments_are_added_listed_pinned_to_a_time_and_audited(
    cast: Cast, api_for: Any, make_recording: Any
) -> None:
    make_recording(cast.call_a, seconds=3.0)
    api = api_for("member")
    url = f"/calls/{cast.call_a.pk}/comments"
    pinned = api.post(url, {"text": "  ここでお客様が番号を復唱 \r\n", "offset": 2.5})
    assert pinned.status_code == 201
    assert pinned.json()["text"] == "ここでお客様が番号を復唱"
    assert pinned.json()["author"]["username"] == "member"
    whole = api.post(url, {"text": "折り返し済み"})
    assert whole.status_code == 201 and whole.json()["offset"] is None
    listed = api.get(url).json()
    assert {(c["text"], c["offset"]) for c in listed} == {
        ("ここでお客様が番号を復唱", 2.5),
        ("折り返し済み", None),
    }
    entries = AuditEntry.objects.filter(action="comment", user=cast.member)
    assert entries.count() == 2
    assert all(e.detail["call"] == str(cast.call_a.pk) and e.ip == "127.0.0.1" for e in entries)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n "}, "text"),
        ({"text": "あ" * 4001}, "text"),
        ({}, "text"),
        ({"text": 5}, "text"),
        ({"text": "ok", "offset": -1}, "offset"),
        ({"text": "ok", "offset": 3.5}, "offset"),
        ({"text": "ok", "offset": "later"}, "offset"),
    ],
)
def test_bad_comments_answer_400(
    cast: Cast, api_for: Any, make_recording: Any, body: dict[str, Any], param: str
) -> None:
    make_recording(cast.call_a, seconds=3.0)
    response = api_for("member").post(f"/calls/{cast.call_a.pk}/comments", body)
    assert response.status_code == 400, response.content
    assert response.json()["param"] == param
    assert not Comment.objects.exists()


def test_a_pinned_comment_needs_a_recording(cast: Cast, api_for: Any) -> None:
    response = api_for("member").post(f"/calls/{cast.call_a.pk}/comments", {"text": "x", "offset": 1})
    assert (response.status_code, response.json()["param"]) == (400, "offset")


def test_deleting_a_comment_is_audited_as_a_deletion(cast: Cast, api_for: Any) -> None:
    comment = Comment.objects.create(call=cast.call_a, author=cast.member, text="消すメモ")
    assert api_for("admin").delete(f"/calls/{cast.call_a.pk}/comments/{comment.pk}").status_code == 204
    entry = AuditEntry.objects.get(action="delete")
    assert (entry.user_id, entry.object_type, entry.object_id) == (cast.admin.pk, "comment", str(comment.pk))
    assert entry.detail["call"] == str(cast.call_a.pk) and entry.detail["author_id"] == cast.member.pk
    assert "消すメモ" not in str(entry.detail)


# --- tags ----------------------------------------------------------------------------------


def test_tagging_creates_new_tags_once_and_is_audited(cast: Cast, api_for: Any) -> None:
    api = api_for("supervisor")
    url = f"/calls/{cast.call_a.pk}/tags"
    first = api.post(url, {"tag": "クレーム"})
    assert first.status_code == 201
    assert [t["name"] for t in first.json()["tags"]] == ["クレーム"]
    again = api.post(url, {"tag": " クレーム "})
    assert again.status_code == 200
    assert Tag.objects.filter(name="クレーム").count() == 1
    api.post(url, {"tag": "要折り返し"})
    assert [t["name"] for t in api.get("/tags").json()] == ["クレーム", "要折り返し"]
    assert [t["name"] for t in api.get(f"/calls/{cast.call_a.pk}").json()["tags"]] == [
        "クレーム",
        "要折り返し",
    ]
    removed = api.delete(url, {"tag": "クレーム"})
    assert removed.status_code == 200
    assert [t["name"] for t in removed.json()["tags"]] == ["要折り返し"]
    assert api.delete(url, {"tag": "クレーム"}).status_code == 200  # already gone: still fine
    ops = [(e.detail["op"], e.detail["tag"]) for e in AuditEntry.objects.filter(action="tag").order_by("id")]
    assert ops == [("add", "クレーム"), ("add", "要折り返し"), ("remove", "クレーム")]


@pytest.mark.parametrize("body", [{"tag": ""}, {"tag": "   "}, {"tag": "x" * 51}, {}, {"tag": ["a"]}])
def test_bad_tags_answer_400(cast: Cast, api_for: Any, body: dict[str, Any]) -> None:
    response = api_for("admin").post(f"/calls/{cast.call_a.pk}/tags", body)
    assert (response.status_code, response.json()["param"]) == (400, "tag")
    assert not Tag.objects.exists()
