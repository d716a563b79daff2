"""Resumable uploads (tus 1.0.0): create, HEAD, PATCH in chunks with checksums, resume, abandon."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.apps.uploads import tus
from callvault.apps.uploads.models import Device, Upload
from callvault.apps.uploads.tasks import sweep_uploads
from tests.uploads.conftest import META, Cast, device_client, make_audio, sha256, stored_files

URL = "/api/v1/uploads"
pytestmark = pytest.mark.django_db
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def metadata(**extra: str) -> str:
    items = {**META, "filename": "通話 0001.m4a", **extra}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in items.items())


def create(client: Client, length: int, **extra: str) -> Any:
    # as tus clients send it: no body (the test client's post() would add an empty multipart body)
    return client.generic(
        "POST", URL, b"", HTTP_UPLOAD_LENGTH=str(length), HTTP_UPLOAD_METADATA=metadata(**extra), **TUS
    )


def patch(client: Client, location: str, offset: int, chunk: bytes, checksum: str | None = None) -> Any:
    headers: dict[str, str] = {"HTTP_UPLOAD_OFFSET": str(offset), **TUS}
    if checksum is not None:
        headers["HTTP_UPLOAD_CHECKSUM"] = checksum
    return client.generic("PATCH", location, chunk, content_type=tus.OFFSET_TYPE, **headers)


def sha1(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_the_server_announces_what_it_supports(data_dir: Path) -> None:
    response = Client().options(URL)
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {"creation", "checksum", "termination"}
    assert "sha1" in response["Tus-Checksum-Algorithm"].split(",")
    assert int(response["Tus-Max-Size"]) > 0


def test_a_file_sent_in_checksummed_chunks_becomes_one_call(
    cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "m4a", seconds=4.0).read_bytes()
    client = device_client(device[1])
    created = create(client, len(data), client_upload_id="app-7")
    assert created.status_code == 201 and created["Tus-Resumable"] == "1.0.0"
    location = created["Location"]
    assert location.startswith("http://testserver/api/v1/uploads/")
    # nothing is a call while bytes are still coming
    calls_before = Call.objects.count()
    offset = 0
    for start in range(0, len(data), 8000):
        chunk = data[start : start + 8000]
        response = patch(client, location, offset, chunk, sha1(chunk))
        assert response.status_code == 204, response.content
        offset = int(response["Upload-Offset"])
        assert offset == start + len(chunk)
        if offset < len(data):
            assert Call.objects.count() == calls_before
            head = client.head(location, **TUS)
            assert (head.status_code, head["Upload-Offset"], head["Upload-Length"]) == (
                200,
                str(offset),
                str(len(data)),
            )
    call_id = response["Callvault-Call-Id"]
    call = Call.objects.get(pk=call_id)
    assert (call.source, call.team_id, call.caller_number) == ("upload", cast.team_a.pk, "+81312345678")
    rec = Recording.objects.get(call=call)
    assert rec.sha256 == hashlib.sha256(data).hexdigest() and rec.format == "m4a"
    (stored,) = stored_files(data_dir)
    assert stored.read_bytes() == data
    assert list((data_dir / "uploads" / "staging").iterdir()) == []  # staging cleaned up
    status = client.get(location).json()
    assert status["state"] == "complete" and status["call_id"] == call_id and status["offset"] == len(data)
    # the app restarts and creates "the same" upload again: it is told the upload is complete
    again = create(client, len(data), client_upload_id="app-7")
    assert again["Location"] == location and again["Upload-Offset"] == str(len(data))


def test_an_interrupted_upload_resumes_from_what_reached_the_disk(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "mp3", seconds=5.0).read_bytes()
    client = device_client(device[1])
    location = create(client, len(data))["Location"]
    upload = Upload.objects.get()
    # The connection breaks in the middle of a PATCH: only part of the body arrives.
    half = len(data) // 2

    class BrokenBody:
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def read(self, n: int) -> bytes:
            block, self.payload = self.payload[:n], self.payload[n:]
            return block  # then b"": the client went away

    assert tus.append(upload, BrokenBody(data[:half]), 0, len(data), None) == half  # type: ignore[arg-type]
    head = client.head(location, **TUS)
    assert head["Upload-Offset"] == str(half)
    # The client resumes from the offset the server reports.
    response = patch(client, location, half, data[half:])
    assert response.status_code == 204
    rec = Recording.objects.get(call_id=response["Callvault-Call-Id"])
    assert rec.sha256 == hashlib.sha256(data).hexdigest()


def test_a_chunk_whose_checksum_fails_is_dropped(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "wav").read_bytes()
    client = device_client(device[1])
    location = create(client, len(data))["Location"]
    bad = patch(client, location, 0, data[:1000], sha1(b"something else"))
    assert bad.status_code == 460 and bad.json()["error"] == "checksum_mismatch"
    assert client.head(location, **TUS)["Upload-Offset"] == "0"
    assert (data_dir / "uploads" / "staging" / f"{Upload.objects.get().pk}.part").stat().st_size == 0


def test_a_patch_at_the_wrong_offset_is_refused(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "wav").read_bytes()
    client = device_client(device[1])
    location = create(client, len(data))["Location"]
    assert patch(client, location, 0, data[:100]).status_code == 204
    wrong = patch(client, location, 50, data[50:200])
    assert wrong.status_code == 409 and wrong.json()["param"] == "Upload-Offset"
    too_much = patch(client, location, 100, data[100:] + b"extra")
    assert too_much.status_code == 413
    not_tus = client.generic(
        "PATCH", location, data[100:], content_type="audio/wav", HTTP_UPLOAD_OFFSET="100", **TUS
    )
    assert not_tus.status_code == 415
    assert (
        client.generic("POST", URL, b"", HTTP_UPLOAD_LENGTH="10", HTTP_TUS_RESUMABLE="0.2.2").status_code
        == 412
    )


def test_a_corrupt_file_fails_at_the_last_byte_and_says_why(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = b"ID3" + bytes(range(256)) * 100  # looks like MP3 for one tag, then garbage
    client = device_client(device[1])
    calls_before = Call.objects.count()
    location = create(client, len(data))["Location"]
    response = patch(client, location, 0, data)
    assert response.status_code == 422
    status = client.get(location).json()
    assert status["state"] == "failed" and status["error"]["error"] in (
        "not_audio",
        "corrupt",
        "unsupported_format",
    )
    assert Call.objects.count() == calls_before and stored_files(data_dir) == []
    assert list((data_dir / "uploads" / "staging").iterdir()) == []


def test_creation_checks_size_and_metadata_before_any_byte_is_sent(
    settings: Any, cast: Cast, device: tuple[Device, str], data_dir: Path
) -> None:
    client = device_client(device[1])
    settings.UPLOAD_MAX_BYTES = 1000
    assert create(client, 5000).status_code == 413
    bad_user = create(client, 500, user=cast.outsider.username)
    assert bad_user.status_code == 400 and bad_user.json()["param"] == "user"
    garbled = client.generic(
        "POST", URL, b"", HTTP_UPLOAD_LENGTH="500", HTTP_UPLOAD_METADATA="started_at %%%", **TUS
    )
    assert garbled.status_code == 400 and garbled.json()["param"] == "Upload-Metadata"
    assert not Upload.objects.exists()


def test_abandoning_an_upload_deletes_its_bytes(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "wav").read_bytes()
    client = device_client(device[1])
    location = create(client, len(data))["Location"]
    patch(client, location, 0, data[:500])
    assert client.delete(location, **TUS).status_code == 204
    assert client.head(location, **TUS).status_code == 404
    assert list((data_dir / "uploads" / "staging").iterdir()) == []
    assert patch(client, location, 500, data[500:]).status_code == 410


def test_uploads_expire_and_their_bytes_are_swept(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "wav").read_bytes()
    client = device_client(device[1])
    create(client, len(data))
    Upload.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert sweep_uploads() == (1, 0)
    assert Upload.objects.get().state == "expired"
    assert list((data_dir / "uploads" / "staging").iterdir()) == []


def test_another_device_cannot_see_or_continue_an_upload(
    cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    data = make_audio(audio_dir, "wav").read_bytes()
    location = create(device_client(device[1]), len(data))["Location"]
    _other, token = Device.create_with_token(name="サポート 録音装置", team=cast.team_b)
    stranger = device_client(token)
    assert stranger.head(location, **TUS).status_code == 404
    assert stranger.get(location).status_code == 404
    assert patch(stranger, location, 0, data).status_code == 404
    assert stranger.delete(location, **TUS).status_code == 404


def test_a_tus_replay_of_an_uploaded_file_answers_the_same_call(
    device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    audio = make_audio(audio_dir, "opus")
    data = audio.read_bytes()
    client = device_client(device[1])
    first = patch(client, create(client, len(data))["Location"], 0, data)
    second_location = create(client, len(data))["Location"]
    second = patch(client, second_location, 0, data)
    assert second.status_code == 204
    assert second["Callvault-Call-Id"] == first["Callvault-Call-Id"]
    assert client.get(second_location).json()["duplicate"] is True
    assert Recording.objects.filter(sha256=sha256(audio)).count() == 1
