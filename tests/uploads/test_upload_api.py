"""POST /api/v1/uploads in one request: every format, validation by decoding, rules, replay."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import av
import pytest
from django.test import Client

from callvault.apps.accounts.models import ApiToken
from callvault.apps.audit.models import AuditEntry
from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.apps.recordings.signals import recording_ready
from callvault.apps.uploads.models import Device, UploadedFile
from callvault.apps.webhooks.models import Delivery, Webhook
from tests.uploads.conftest import META, Cast, device_client, make_audio, sha256, stored_files

URL = "/api/v1/uploads"
pytestmark = pytest.mark.django_db


def post(client: Client, path: Path, **fields: Any) -> Any:
    with path.open("rb") as fh:
        return client.post(URL, {**META, **fields, "file": fh})


@pytest.mark.parametrize(
    ("fmt", "ext", "codec"),
    [
        ("wav", "wav", "pcm_s16le"),
        ("mp3", "mp3", "mp3float"),
        ("m4a", "m4a", "aac"),
        ("amr", "amr", "amrnb"),
        ("opus", "opus", "opus"),
        ("flac", "flac", "flac"),
    ],
)
def test_it_stores_every_supported_format_as_sent_and_plays_it_back(
    fmt: str, ext: str, codec: str, cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    audio = make_audio(audio_dir, fmt, seconds=3.0)
    response = post(device_client(device[1]), audio)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["duplicate"] is False and body["state"] == "complete"
    call = Call.objects.get(pk=body["call_id"])
    assert (call.source, call.state, call.recording_state) == ("upload", "completed", "ready")
    assert (call.caller_number, call.callee_number, call.direction) == ("+81312345678", "+819087654321", "in")
    assert [(p.role, p.number) for p in call.participants.all()] == [
        ("caller", "+81312345678"),
        ("callee", "+819087654321"),
    ]
    assert (call.team_id, call.agent_id) == (cast.team_a.pk, cast.member.pk)
    rec = Recording.objects.get(call=call)
    assert (rec.format, rec.codec, rec.channels) == (ext, codec, 1)
    assert rec.channel_map == {"mono": "mixed"}
    assert abs(rec.duration - 3.0) < 0.05
    assert abs(call.duration - rec.duration) < 1e-6
    # The original bytes, untouched, under the hash that was sent.
    assert rec.sha256 == sha256(audio) == body["recording"]["sha256"]
    (stored,) = stored_files(data_dir)
    assert stored.read_bytes() == audio.read_bytes() and stored.suffix == f".{ext}"
    # Playback through the existing recording endpoint (API, range-capable) gives the same bytes.
    token = ApiToken.issue(cast.supervisor, "t")[1]
    got = Client().get(f"/api/v1/calls/{call.pk}/recording", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == audio.read_bytes()


def test_the_browser_player_gets_a_playable_copy_of_a_mono_amr_upload(
    cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    """Browsers cannot play AMR: the player's AAC copy works, and a mono call has no channel buttons."""
    body = post(device_client(device[1]), make_audio(audio_dir, "amr", seconds=2.0)).json()
    browser = Client()
    browser.force_login(cast.member)
    page = browser.get(f"/calls/{body['call_id']}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "data-channel" not in html  # per-channel mute is off for mono
    assert "モノラル (1ch)" in html
    m4a = browser.get(f"/calls/{body['call_id']}/audio?format=m4a")
    assert m4a.status_code == 200 and m4a["Content-Type"] == "audio/mp4"
    copy = data_dir / "copy.m4a"
    copy.write_bytes(b"".join(m4a.streaming_content))
    with av.open(str(copy)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert abs(float(container.duration or 0) / 1e6 - 2.0) < 0.1
    peaks = browser.get(f"/calls/{body['call_id']}/peaks.json").json()
    assert peaks["channels"] == 1


def test_a_stereo_upload_keeps_both_channels_with_the_layout_it_was_given(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    audio = make_audio(audio_dir, "flac", channels=2)
    body = post(device_client(device[1]), audio, layout="caller_left").json()
    rec = Recording.objects.get(call_id=body["call_id"])
    assert rec.channels == 2 and rec.channel_map == {"left": "caller", "right": "callee"}


def test_it_fires_the_same_notifications_as_a_finalized_recording(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    Webhook.objects.create(name="CRM", url="http://127.0.0.1:9/hook", events=["call.completed"])
    seen: list[Any] = []

    def receiver(sender: Any, call: Any, **kwargs: Any) -> None:
        seen.append(call.pk)

    recording_ready.connect(receiver, dispatch_uid="test-upload-ready")
    try:
        body = post(device_client(device[1]), make_audio(audio_dir, "wav")).json()
    finally:
        recording_ready.disconnect(dispatch_uid="test-upload-ready")
    assert [str(pk) for pk in seen] == [body["call_id"]]
    from callvault.apps.live.models import LiveEvent

    event = LiveEvent.objects.get(call_id=body["call_id"])  # the open call lists update live
    assert event.kind == "call.completed" and event.team_id == device[0].team_id
    delivery = Delivery.objects.get()
    assert delivery.event == "call.completed" and str(delivery.call_id) == body["call_id"]


def test_every_upload_is_audited_without_numbers(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    body = post(device_client(device[1]), make_audio(audio_dir, "wav")).json()
    entry = AuditEntry.objects.get(action="upload")
    assert entry.object_id == body["call_id"]
    assert entry.username == "端末: 営業 山本のスマホ"
    assert entry.detail["device_id"] == device[0].pk and entry.detail["result"] == "created"
    assert "+81312345678" not in json.dumps(entry.detail) and "1234" not in json.dumps(entry.detail)


def test_a_replayed_upload_makes_no_second_call(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    audio = make_audio(audio_dir, "mp3")
    client = device_client(device[1])
    first = post(client, audio, client_upload_id="phone-42")
    again = post(client, audio, client_upload_id="phone-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True and again.json()["call_id"] == first.json()["call_id"]
    # the same bytes under another id, or without one: still the same call
    assert post(client, audio).json()["call_id"] == first.json()["call_id"]
    assert Call.objects.count() == 3  # the cast's two calls and this one
    assert len(stored_files(data_dir)) == 1
    # the same client id for different bytes is a conflict, not a silent overwrite
    other = post(
        client, make_audio(audio_dir, "mp3", freq=880, name="other.mp3"), client_upload_id="phone-42"
    )
    assert other.status_code == 409 and other.json()["param"] == "client_upload_id"


def _refused(response: Any, status: int, code: str, data_dir: Path, calls_before: int) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"] == code
    assert Call.objects.count() == calls_before
    assert stored_files(data_dir) == []
    assert not UploadedFile.objects.exists()
    staging = data_dir / "uploads" / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_it_refuses_a_text_file_named_wav(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    fake = audio_dir / "call.wav"
    fake.write_text("RIFF? no: 顧客リスト, 03-1234-5678\n" * 200, encoding="utf-8")
    with fake.open("rb") as fh:
        response = device_client(device[1]).post(URL, {**META, "file": fh}, HTTP_CONTENT_TYPE="audio/wav")
    _refused(response, 422, "not_audio", data_dir, 2)
    assert response.json()["param"] == "file"


def test_it_refuses_a_zip_bomb_named_wav(device: tuple[Device, str], data_dir: Path, audio_dir: Path) -> None:
    bomb = audio_dir / "bomb.wav"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.wav", bytes(50_000_000))  # 50 MB of zeros in about 50 KB
    assert bomb.stat().st_size < 100_000
    _refused(post(device_client(device[1]), bomb), 422, "not_audio", data_dir, 2)


def test_it_refuses_a_small_file_that_decodes_to_far_more_audio_than_it_can_hold(
    settings: Any, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    """Ten minutes of digital silence in FLAC are 114 KB; at 1000 bytes/s that is a bomb."""
    settings.UPLOAD_MIN_BYTES_PER_SECOND = 1000
    silence = audio_dir / "silence.flac"
    import subprocess

    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
         "-t", "600", "-c:a", "flac", str(silence)],
        check=True,
    )  # fmt: skip
    response = post(device_client(device[1]), silence)
    _refused(response, 422, "decompression_bomb", data_dir, 2)


def test_it_refuses_recordings_longer_than_the_limit(
    settings: Any, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    settings.UPLOAD_MAX_SECONDS = 2
    _refused(post(device_client(device[1]), make_audio(audio_dir, "opus")), 422, "too_long", data_dir, 2)


def test_it_refuses_corrupt_audio(device: tuple[Device, str], data_dir: Path, audio_dir: Path) -> None:
    good = make_audio(audio_dir, "flac").read_bytes()
    broken = audio_dir / "broken.flac"
    broken.write_bytes(good[: len(good) // 2])  # a transfer cut off half way
    _refused(post(device_client(device[1]), broken), 422, "corrupt", data_dir, 2)


@pytest.mark.parametrize(
    "token",
    ["cvd_" + "x" * 43, "cvd_short", "cv_" + "y" * 43],
    ids=["unknown device token", "malformed device token", "unknown user token"],
)
def test_it_refuses_wrong_tokens(
    token: str, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    response = post(device_client(token), make_audio(audio_dir, "wav"))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert stored_files(data_dir) == []


def test_a_revoked_device_cannot_upload(
    cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    from callvault.apps.accounts.services import Actor
    from callvault.apps.uploads.devices import revoke_device

    assert revoke_device(Actor(cast.admin), device[0])
    response = post(device_client(device[1]), make_audio(audio_dir, "wav"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_it_refuses_a_user_of_another_team_in_the_metadata(
    cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    response = post(device_client(device[1]), make_audio(audio_dir, "wav"), user=cast.outsider.username)
    _refused(response, 400, "invalid_parameter", data_dir, 2)
    assert response.json()["param"] == "user"
    # the same answer for a user that does not exist: no probing of user names
    unknown = post(device_client(device[1]), make_audio(audio_dir, "wav"), user="nobody")
    assert unknown.json()["message"] == response.json()["message"]
    # a member of the device's team is fine
    ok = post(device_client(device[1]), make_audio(audio_dir, "wav"), user=cast.supervisor.username)
    assert ok.status_code == 201
    assert Call.objects.get(pk=ok.json()["call_id"]).agent_id == cast.supervisor.pk


def test_it_asks_for_the_start_time(device: tuple[Device, str], data_dir: Path, audio_dir: Path) -> None:
    with make_audio(audio_dir, "wav").open("rb") as fh:
        response = device_client(device[1]).post(URL, {"caller": "0312345678", "file": fh})
    assert response.status_code == 400 and response.json()["param"] == "started_at"


@pytest.mark.parametrize(
    ("role", "status"), [("member", 403), ("auditor", 403), ("supervisor", 201), ("admin", 201)]
)
def test_user_tokens_may_upload_for_teams_they_supervise(
    role: str, status: int, cast: Cast, data_dir: Path, audio_dir: Path
) -> None:
    user = cast.users()[role]
    token = ApiToken.issue(user, "t")[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = post(client, make_audio(audio_dir, "wav"), team=cast.team_a.name)
    assert response.status_code == status, response.content
    if status == 201:
        assert Call.objects.get(pk=response.json()["call_id"]).team_id == cast.team_a.pk


def test_a_supervisor_cannot_upload_into_another_team(cast: Cast, data_dir: Path, audio_dir: Path) -> None:
    token = ApiToken.issue(cast.supervisor, "t")[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = post(client, make_audio(audio_dir, "wav"), team=cast.team_b.name)
    _refused(response, 400, "invalid_parameter", data_dir, 2)
    assert response.json()["param"] == "team"


def test_without_a_device_or_team_the_lines_assign_the_call(
    cast: Cast, data_dir: Path, audio_dir: Path
) -> None:
    token = ApiToken.issue(cast.admin, "t")[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = post(client, make_audio(audio_dir, "wav"), callee="301").json()
    call = Call.objects.get(pk=body["call_id"])
    assert (call.team_id, call.agent_id) == (cast.team_b.pk, cast.outsider.pk)


@pytest.mark.parametrize(
    ("layout", "left_lane"), [("", "左チャンネル"), ("callee_left", "担当者"), ("caller_left", "顧客")]
)
def test_the_player_labels_stereo_uploads_by_their_layout_never_by_guess(
    layout: str, left_lane: str, cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    fields = {"callee_name": "山本", "caller_name": "顧客 太郎"}
    if layout:
        fields["layout"] = layout
    body = post(device_client(device[1]), make_audio(audio_dir, "wav", channels=2), **fields).json()
    browser = Client()
    browser.force_login(cast.member)
    html = browser.get(f"/calls/{body['call_id']}/").content.decode()
    assert 'data-channel="0"' in html  # stereo: each side can be muted
    lane = html.split('class="cv-lane cv-lane--left">', 1)[1].split("</span>", 1)[0]
    assert left_lane in lane


def test_errors_speak_english_on_request(device: tuple[Device, str], data_dir: Path, audio_dir: Path) -> None:
    fake = audio_dir / "call.wav"
    fake.write_text("not audio at all " * 100)
    client = device_client(device[1])
    client.cookies["django_language"] = "en"  # the language switch (Accept-Language is ignored)
    with fake.open("rb") as fh:
        response = client.post(URL, {**META, "file": fh})
    assert response.status_code == 422
    assert response.json()["message"].startswith("This is not a readable audio file")
