"""Audio delivery for the call page: ranges, the AAC copy for Safari, waveform peaks, audit.

Every test plays a REAL recording: stereo audio generated here (440 Hz for the caller on the
left, 880 Hz for the callee on the right, the callee silent for the first second) and encoded
by the recorder's own encoder into Ogg Opus.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from callvault.apps.audit.models import AuditEntry, verify_chain
from callvault.apps.calls.models import Call
from callvault.apps.recordings import playback
from callvault.apps.recordings.models import Recording
from callvault.media.encode import encode_recording, probe_recording
from tests.apps.conftest import Cast, make_call
from tests.e2e.conftest import cli, free_port, rtp_block, server_factory  # noqa: F401

RATE = 16000
SEEN = {"admin": True, "supervisor": True, "member": True, "outsider": False, "auditor": False}


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """Recordings and caches of each test in its own directory."""
    settings.DATA_DIR = tmp_path
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    return tmp_path


def stereo_pcm(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    left = np.sin(2 * np.pi * 440 * t) * 9000
    right = np.sin(2 * np.pi * 880 * t) * 9000
    right[:rate] = 0  # the callee says nothing during the first second
    return np.stack([left, right], axis=1).astype(np.int16)


def make_recording(call: Call, seconds: float = 3.0, fmt: str = "opus") -> Recording:
    """Encode real audio with the recorder's encoder and register it like finalize does."""
    ext = {"opus": "opus", "flac": "flac", "wav": "wav"}[fmt]
    key = f"{timezone.localtime(call.started_at):%Y/%m/%d}/{call.pk}.{ext}"
    dest = Path(settings.RECORDINGS_DIR) / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    info = encode_recording(stereo_pcm(seconds), RATE, fmt, dest)
    probe = probe_recording(dest)
    Call.objects.filter(pk=call.pk).update(recording_state="ready")
    call.recording_state = "ready"
    return Recording.objects.create(
        call=call,
        storage_key=key,
        format=fmt,
        codec=info.codec,
        channels=2,
        sample_rate=RATE,
        bytes=info.bytes,
        sha256=info.sha256,
        duration=probe.duration,
        channel_map={"left": "caller", "right": "callee"},
        verified_at=timezone.now(),
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def audio_url(call: Call, fmt: str = "opus", listen: str | None = None) -> str:
    url = reverse("web:call_audio", args=[call.pk]) + f"?format={fmt}"
    return url + (f"&listen={listen}" if listen else "")


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def playbacks(call: Call) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="playback", object_id=str(call.pk)).order_by("id"))


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def decode(data: bytes) -> tuple[np.ndarray, int, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        chunks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
    return np.concatenate(chunks, axis=1), rate, codec


# -- ranges ---------------------------------------------------------------------------------------


def test_it_serves_the_first_bytes_of_the_recording_as_a_partial_response(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    data = (Path(settings.RECORDINGS_DIR) / rec.storage_key).read_bytes()
    response = client_for(cast.member).get(audio_url(cast.call_a), HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206
    assert body(response) == data[:100]
    assert response["Content-Range"] == f"bytes 0-99/{len(data)}"
    assert response["Content-Length"] == "100"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "audio/ogg"
    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=1000-1999", 1000, 1999),  # the middle
        ("bytes=-100", -100, None),  # the last 100 bytes
        ("bytes=1000-", 1000, None),  # open-ended: to the end
        ("bytes=500-99999999", 500, None),  # an end beyond the file is cut to the file
    ],
)
def test_it_serves_any_single_satisfiable_range(
    cast: Cast, header: str, first: int, last: int | None
) -> None:
    rec = make_recording(cast.call_a)
    data = (Path(settings.RECORDINGS_DIR) / rec.storage_key).read_bytes()
    size = len(data)
    expected = data[first : (last + 1 if last is not None else None)]
    start = first if first >= 0 else size + first
    response = client_for(cast.member).get(audio_url(cast.call_a), HTTP_RANGE=header)
    assert response.status_code == 206
    assert body(response) == expected
    assert response["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{size}"


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0", f"bytes={10**18}-{10**18 + 5}"])
def test_it_answers_416_for_ranges_beyond_the_end(cast: Cast, header: str) -> None:
    rec = make_recording(cast.call_a)
    response = client_for(cast.member).get(audio_url(cast.call_a), HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{rec.bytes}"
    assert "範囲" in response.content.decode()


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc-def",
        "bytes=5-2",
        "items=0-10",
        "bytes=0-1,5-6",  # several ranges: politely answered with the whole file
        "bytes=" + "9" * 5000,
        "bytes=-",
        "",
    ],
)
def test_it_sends_the_whole_file_for_malformed_or_multiple_ranges(cast: Cast, header: str) -> None:
    rec = make_recording(cast.call_a)
    response = client_for(cast.member).get(audio_url(cast.call_a), HTTP_RANGE=header)
    assert response.status_code == 200
    assert len(body(response)) == rec.bytes
    assert response["Content-Length"] == str(rec.bytes)


def test_it_sends_the_whole_file_when_if_range_does_not_match(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    client = client_for(cast.member)
    stale = client.get(audio_url(cast.call_a), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"other"')
    assert stale.status_code == 200 and len(body(stale)) == rec.bytes
    fresh = client.get(audio_url(cast.call_a), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{rec.sha256}"')
    assert fresh.status_code == 206 and len(body(fresh)) == 10


def test_it_answers_head_requests_with_headers_only(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    response = client_for(cast.member).head(audio_url(cast.call_a), HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206
    assert response["Content-Length"] == "10"
    assert response.content == b""
    assert playbacks(cast.call_a) == []
    assert rec.bytes > 10


@pytest.mark.django_db(transaction=True)
def test_it_streams_ranges_from_an_async_iterator_under_asgi(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    data = (Path(settings.RECORDINGS_DIR) / rec.storage_key).read_bytes()

    async def fetch() -> Any:
        client = AsyncClient()
        await client.aforce_login(cast.member)
        try:
            return await client.get(audio_url(cast.call_a), headers={"Range": "bytes=10-209"})
        finally:
            await sync_to_async(connections.close_all)()  # the view's thread's connection

    response = asyncio.run(fetch())

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    assert response.status_code == 206
    assert response.is_async
    assert asyncio.run(read()) == data[10:210]


# -- access ---------------------------------------------------------------------------------------


def test_it_serves_audio_peaks_and_downloads_only_through_the_access_helper(cast: Cast) -> None:
    make_recording(cast.call_a)
    urls = [
        audio_url(cast.call_a),
        audio_url(cast.call_a, "m4a"),
        reverse("web:call_peaks", args=[cast.call_a.pk]),
    ]
    for role, user in cast.users().items():
        client = client_for(user)
        for url in urls:
            assert client.get(url, HTTP_RANGE="bytes=0-9").status_code in (
                (200, 206) if SEEN[role] else (404,)
            ), (
                role,
                url,
            )
    assert {e.username for e in playbacks(cast.call_a)} == {"admin", "supervisor", "member"}


def test_it_sends_anonymous_visitors_to_the_login_page_instead_of_audio(cast: Cast, settings: Any) -> None:
    settings.LOGIN_URL = "/login/"
    make_recording(cast.call_a)
    response = Client().get(audio_url(cast.call_a))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")
    assert playbacks(cast.call_a) == []


def test_it_answers_404_for_audio_of_a_call_without_a_recording(cast: Cast) -> None:
    pending = make_call(cast.team_a, cast.member, recording_state="pending")
    client = client_for(cast.admin)
    assert client.get(audio_url(pending)).status_code == 404
    assert client.get(reverse("web:call_peaks", args=[pending.pk])).status_code == 404
    assert client.get(reverse("web:call_download", args=[pending.pk])).status_code == 404


def test_it_rejects_unknown_formats_with_a_clear_message(cast: Cast) -> None:
    make_recording(cast.call_a)
    response = client_for(cast.member).get(audio_url(cast.call_a, "mp3"))
    assert response.status_code == 400
    assert "format" in response.content.decode() and "m4a" in response.content.decode()
    flac_call = make_call(cast.team_a, cast.member)
    make_recording(flac_call, fmt="flac")
    wrong = client_for(cast.member).get(audio_url(flac_call, "opus"))
    assert wrong.status_code == 400 and "Ogg Opus" in wrong.content.decode()
    right = client_for(cast.member).get(audio_url(flac_call, "original"), HTTP_RANGE="bytes=0-3")
    assert right.status_code == 206 and body(right) == b"fLaC" and right["Content-Type"] == "audio/flac"


def test_it_reports_a_recording_file_missing_from_storage_plainly(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    (Path(settings.RECORDINGS_DIR) / rec.storage_key).unlink()
    client = client_for(cast.admin)
    response = client.get(audio_url(cast.call_a))
    assert response.status_code == 503
    assert "録音ファイルが保存場所に見つかりません" in response.content.decode()
    page = client.get(reverse("web:call", args=[cast.call_a.pk])).content.decode()
    assert "録音ファイルが保存場所に見つかりません" in page
    assert playbacks(cast.call_a) == []


# -- audit ----------------------------------------------------------------------------------------


def listen_token_of(page_html: str) -> str:
    match = re.search(r"listen=([A-Za-z0-9_:\-]+)", page_html)
    assert match, "the call page carries a listening token"
    return match.group(1)


def test_it_audits_playback_once_per_listening_session(cast: Cast) -> None:
    make_recording(cast.call_a)
    client = client_for(cast.member)
    page = client.get(reverse("web:call", args=[cast.call_a.pk])).content.decode()
    assert playbacks(cast.call_a) == []  # opening the page is not listening
    token = listen_token_of(page)
    for header in ("bytes=0-", "bytes=0-99", "bytes=2000-", "bytes=-100"):
        assert client.get(audio_url(cast.call_a, listen=token), HTTP_RANGE=header).status_code == 206
    client.get(audio_url(cast.call_a, "m4a", listen=token))  # switching format: the same session
    entries = playbacks(cast.call_a)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.username, entry.object_type, entry.ip) == ("member", "call", "127.0.0.1")
    assert entry.detail["format"] == "opus" and entry.detail["listen"]
    assert token not in json.dumps(entry.detail)  # the token itself is never stored

    again = listen_token_of(client.get(reverse("web:call", args=[cast.call_a.pk])).content.decode())
    client.get(audio_url(cast.call_a, listen=again), HTTP_RANGE="bytes=0-")
    assert len(playbacks(cast.call_a)) == 2  # a new page load is a new listening session
    assert verify_chain().ok


def test_it_audits_every_request_that_has_no_valid_listening_token(cast: Cast) -> None:
    make_recording(cast.call_a)
    other = make_call(cast.team_a, cast.member)
    make_recording(other)
    client = client_for(cast.supervisor)
    token_for_other = listen_token_of(client.get(reverse("web:call", args=[other.pk])).content.decode())
    member_token = listen_token_of(
        client_for(cast.member).get(reverse("web:call", args=[cast.call_a.pk])).content.decode()
    )
    for listen in (None, "forged", token_for_other, member_token, "x" * 5000):
        assert client.get(audio_url(cast.call_a, listen=listen), HTTP_RANGE="bytes=0-9").status_code == 206
    entries = playbacks(cast.call_a)
    assert len(entries) == 5
    assert all(e.detail["listen"] == "" and e.username == "supervisor" for e in entries)


# -- the AAC copy ----------------------------------------------------------------------------------


def test_it_makes_a_valid_aac_copy_for_safari_and_keeps_it(cast: Cast) -> None:
    rec = make_recording(cast.call_a, seconds=4.0)
    client = client_for(cast.member)
    response = client.get(audio_url(cast.call_a, "m4a"))
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/mp4"
    assert response["Accept-Ranges"] == "bytes"
    data = body(response)
    assert data[4:8] == b"ftyp"
    assert data.find(b"moov") < data.find(b"mdat")  # "fast start": playable before fully loaded

    samples, rate, codec = decode(data)
    assert codec == "aac"
    # the encoder's priming is cut off; at most the last AAC frame (1024 samples) is padded
    assert 0 <= samples.shape[1] / rate - rec.duration < 1024 / rate + 0.005
    talk = samples[:, int(1.5 * rate) : int(3.5 * rate)]
    assert abs(dominant_hz(talk[0], rate) - 440) < 15  # caller still on the left
    assert abs(dominant_hz(talk[1], rate) - 880) < 15  # callee still on the right
    assert np.abs(samples[1, int(0.1 * rate) : int(0.8 * rate)]).max() < 0.02  # callee silent at first
    onset = int(np.argmax(np.abs(samples[1]) > 0.1)) / rate
    assert abs(onset - 1.0) < 0.01  # not shifted: times on the page are true on Safari too

    cached = Path(settings.DATA_DIR) / "cache" / "audio" / f"{rec.sha256}.m4a"
    assert cached.read_bytes() == data
    stamp = cached.stat().st_mtime_ns
    # The second request must not encode again: it even works with the original gone.
    original = Path(settings.RECORDINGS_DIR) / rec.storage_key
    original.rename(original.with_suffix(".away"))
    second = client.get(audio_url(cast.call_a, "m4a"), HTTP_RANGE="bytes=0-99")
    assert second.status_code == 206 and body(second) == data[:100]
    assert cached.stat().st_mtime_ns == stamp


# -- waveform peaks --------------------------------------------------------------------------------


def test_it_computes_waveform_peaks_per_channel_and_caches_them(cast: Cast) -> None:
    rec = make_recording(cast.call_a, seconds=6.0)
    client = client_for(cast.member)
    response = client.get(reverse("web:call_peaks", args=[cast.call_a.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "private, no-store"
    data = response.json()
    buckets = playback.bucket_count(rec.duration)
    assert data["version"] == playback.PEAKS_VERSION
    assert data["channels"] == 2 and data["buckets"] == buckets == 120
    assert data["channel_map"] == {"left": "caller", "right": "callee"}
    assert abs(data["duration"] - rec.duration) < 0.01
    left, right = data["peaks"]
    assert len(left) == len(right) == buckets
    assert all(0.0 <= v <= 1.0 for v in left + right)
    first_second = buckets // 6
    assert min(left[2:-2]) > 0.15  # the caller's tone throughout (9000/32768 = 0.27)
    assert max(right[2 : first_second - 2]) < 0.05  # the callee is silent in the first second
    assert min(right[first_second + 2 : -2]) > 0.15

    cache = Path(settings.DATA_DIR) / "cache" / "peaks" / f"{rec.sha256}.v{playback.PEAKS_VERSION}.json"
    assert json.loads(cache.read_text())["peaks"] == data["peaks"]
    (Path(settings.RECORDINGS_DIR) / rec.storage_key).unlink()  # from now on only the cache can answer
    assert client.get(reverse("web:call_peaks", args=[cast.call_a.pk])).json() == data


def test_it_sizes_the_waveform_to_the_recording() -> None:
    assert playback.bucket_count(0.5) == playback.MIN_BUCKETS
    assert playback.bucket_count(65) == 1300
    assert playback.bucket_count(3 * 3600) == playback.MAX_BUCKETS


# -- download -------------------------------------------------------------------------------------


def test_it_downloads_the_original_with_a_dated_name_and_audits_it(cast: Cast) -> None:
    started = datetime(2026, 11, 27, 14, 5, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    Call.objects.filter(pk=cast.call_a.pk).update(started_at=started)
    cast.call_a.refresh_from_db()
    rec = make_recording(cast.call_a)
    data = (Path(settings.RECORDINGS_DIR) / rec.storage_key).read_bytes()
    response = client_for(cast.supervisor).get(reverse("web:call_download", args=[cast.call_a.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="20261127-1405_0312345678_201.opus"'
    assert response["Cache-Control"] == "private, no-store"
    assert body(response) == data
    assert response["Repr-Digest"].startswith("sha-256=:")
    entry = AuditEntry.objects.get(action="download")
    assert (entry.username, entry.object_id, entry.ip) == ("supervisor", str(cast.call_a.pk), "127.0.0.1")
    assert entry.detail["sha256"] == rec.sha256
    # the audit log names the file by its format and hash, never by the numbers in its name
    assert entry.detail["format"] == "opus" and "filename" not in entry.detail
    assert "0312345678" not in str(entry.detail)


def test_it_lets_only_supervisors_and_admins_download(cast: Cast) -> None:
    make_recording(cast.call_a)
    allowed = {"admin": 200, "supervisor": 200, "member": 404, "outsider": 404, "auditor": 404}
    for role, user in cast.users().items():
        response = client_for(user).get(reverse("web:call_download", args=[cast.call_a.pk]))
        assert response.status_code == allowed[role], role
    assert sorted(AuditEntry.objects.filter(action="download").values_list("username", flat=True)) == [
        "admin",
        "supervisor",
    ]


def test_it_names_downloads_of_withheld_numbers_in_ascii(cast: Cast) -> None:
    call = make_call(cast.team_a, cast.member, caller="anonymous", callee="+12025550123")
    rec = make_recording(call)
    from callvault.apps.web.views_call import download_name

    name = download_name(call, rec)
    assert re.fullmatch(r"\d{8}-\d{4}_anonymous_12025550123\.opus", name)


# -- the real server -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_it_plays_a_real_test_call_through_the_real_web_server(server_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    """recorder + worker + `callvault web` (uvicorn): a test call, then the page, ranges, AAC and peaks."""
    srv = server_factory()
    assert cli(srv.data_dir, "test-call", f"127.0.0.1:{srv.sip_port}", "--seconds", "3").returncode == 0
    call = srv.wait_calls(1)[0]
    script = (
        "from django.contrib.auth import get_user_model;"
        "from django.contrib.sessions.backends.db import SessionStore;"
        "from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY;"
        "u = get_user_model().objects.create_superuser('boss', '', 'pw-for-e2e-only');"
        "s = SessionStore(); s[SESSION_KEY] = str(u.pk);"
        "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend';"
        "s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
    )
    session = cli(srv.data_dir, "manage", "shell", "-c", script).stdout.strip().splitlines()[-1]
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "callvault.cli", "web", "--http-host", "127.0.0.1", "--http-port", str(port)],
        env={**os.environ, "CALLVAULT_DATA_DIR": str(srv.data_dir)},
        stdout=subprocess.DEVNULL,
        stderr=(srv.data_dir / "web.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"

    def get(path: str, **headers: str) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(base + path, headers={"Cookie": f"sessionid={session}", **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as res:
                return res.status, res.headers, res.read()  # headers: case-insensitive
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _h, page = get(f"/calls/{call['id']}/")
                break
            except (ConnectionError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == 200, page[:500]
        html = page.decode()
        assert "テスト 発信者" in html and "03-1234-5678" in html and call["recording"]["sha256"] in html
        token = listen_token_of(html)
        original = Path(call["recording"]["path"]).read_bytes()
        status, headers, chunk = get(
            f"/calls/{call['id']}/audio?format=opus&listen={token}", Range="bytes=100-299"
        )
        assert status == 206 and chunk == original[100:300]
        assert headers["Content-Range"] == f"bytes 100-299/{len(original)}"
        status, headers, _b = get(
            f"/calls/{call['id']}/audio?format=opus&listen={token}", Range="bytes=99999999-"
        )
        assert status == 416
        status, headers, m4a = get(f"/calls/{call['id']}/audio?format=m4a&listen={token}")
        assert status == 200 and headers["Content-Type"] == "audio/mp4"
        samples, rate, codec = decode(m4a)
        assert codec == "aac" and abs(samples.shape[1] / rate - call["recording"]["duration"]) < 0.07
        status, _h, peaks = get(f"/calls/{call['id']}/peaks.json")
        assert status == 200 and len(json.loads(peaks)["peaks"]) == 2
        status, _h, _b = get("/calls/00000000-0000-0000-0000-000000000000/audio?format=opus")
        assert status == 404
    finally:
        web.terminate()
        web.wait(10)
    audit = cli(srv.data_dir, "manage", "shell", "-c", _COUNT_PLAYBACKS.format(call=call["id"])).stdout
    assert audit.strip().splitlines()[-1] == "1"  # three audio requests, one listening session


_COUNT_PLAYBACKS = (
    "from callvault.apps.audit.models import AuditEntry;"
    "print(AuditEntry.objects.filter(action='playback', object_id='{call}').count())"
)


def test_it_is_not_fooled_by_a_cache_file_being_written_concurrently(cast: Cast) -> None:
    """Two requests at once: one encodes, the other waits for it and reuses the result."""
    import threading

    rec = make_recording(cast.call_a)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(playback.m4a_path(rec))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    cache = Path(settings.DATA_DIR) / "cache" / "audio"
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".m4a") == [f"{rec.sha256}.m4a"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_it_prunes_the_cache_oldest_first(cast: Cast) -> None:
    rec = make_recording(cast.call_a)
    path = playback.m4a_path(rec)
    playback.peaks_for(rec)
    peaks_file = next((Path(settings.DATA_DIR) / "cache" / "peaks").glob("*.json"))
    old = time.time() - 3600
    os.utime(path, (old, old))
    freed = playback.prune_cache(max_bytes=peaks_file.stat().st_size)
    assert freed > 0 and not path.exists() and peaks_file.exists()
    shutil.rmtree(Path(settings.DATA_DIR) / "cache")
    assert playback.m4a_path(rec).exists()  # the cache is rebuilt on demand
