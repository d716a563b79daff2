"""From a spool on disk to a verified recording in the database: the finalize job and crash recovery."""

from __future__ import annotations

import hashlib
import json
import struct
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from callvault.apps.calls.models import Call, Participant, Stream
from callvault.apps.recordings import finalize
from callvault.apps.recordings.models import Recording
from callvault.codecs import g711
from callvault.media.encode import decode_recording
from callvault.spool.writer import CallSpool
from callvault.storage import LocalStorage, StorageError

pytestmark = pytest.mark.django_db

RATE = 8000
PCMU = {"0": ["PCMU", 8000, 1, None], "101": ["telephone-event", 8000, 1, "0-16"]}


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


def rtp(seq: int, ts: int, payload: bytes, ssrc: int, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def make_spool(
    t0: float,
    *,
    seconds: float = 2.0,
    drop: set[int] | None = None,
    close: bool = True,
    answered: bool = True,
) -> tuple[str, Path]:
    call_id = str(uuid.uuid4())
    key = call_id.replace("-", "")
    spool = CallSpool(settings.SPOOL_DIR, key)
    streams = [
        {
            "index": 0,
            "label": "1",
            "role": "caller",
            "participant_id": "p1",
            "payload_types": PCMU,
            "codec": "PCMU",
        },
        {
            "index": 1,
            "label": "2",
            "role": "callee",
            "participant_id": "p2",
            "payload_types": PCMU,
            "codec": "PCMU",
        },
    ]
    spool.journal(
        {
            "type": "invite",
            "t": t0,
            "call_id": call_id,
            "source": "siprec",
            "sip_call_id": f"sip-{key}",
            "session_id": "s1",
            "direction": "in",
            "streams": streams,
            "extensions": {},
            "participants": [
                {
                    "participant_id": "p1",
                    "aor": "sip:0312345678@x",
                    "name": "山田 太郎",
                    "number": "0312345678",
                    "role": "caller",
                },
                {
                    "participant_id": "p2",
                    "aor": "sip:201@x",
                    "name": "受付",
                    "number": "201",
                    "role": "callee",
                },
            ],
        }
    )
    if answered:
        spool.journal({"type": "answered", "t": t0})
        for index, freq in ((0, 440.0), (1, 1000.0)):
            s = spool.open_stream(index)
            payload = g711.encode(tone(freq, seconds), "ulaw")
            for k in range(int(seconds / 0.02)):
                if drop and index == 1 and k in drop:
                    continue
                s.append(
                    t0 + 0.01 + k * 0.02,
                    rtp(100 + k, 1000 + k * 160, payload[k * 160 : (k + 1) * 160], ssrc=0x1000 + index),
                )
            s.flush()
    if close:
        spool.journal({"type": "ended", "t": t0 + seconds + 0.01, "reason": "bye" if answered else "cancel"})
        spool.mark_complete()
    else:
        spool.flush()
        spool.close()
    return call_id, settings.SPOOL_DIR / key


def ingest_and_finalize(spool_dir: Path, *, interrupted: bool = False) -> Call:
    call_id = finalize.ingest_spool(spool_dir, interrupted=interrupted)
    assert call_id is not None
    assert finalize.finalize_call(call_id) in ("ready", "none")
    return Call.objects.get(pk=call_id)


def test_it_turns_a_spool_into_a_verified_stereo_recording_and_removes_the_spool() -> None:
    _, spool_dir = make_spool(time.time() - 10, drop=set(range(20, 30)))
    call = ingest_and_finalize(spool_dir)
    assert (call.state, call.recording_state, call.end_reason) == ("completed", "ready", "bye")
    assert (call.caller_number, call.caller_name, call.callee_number) == ("+81312345678", "山田 太郎", "201")
    assert call.packets_lost == 10 and call.packets_received == 190
    assert list(call.participants.values_list("role", flat=True)) == ["caller", "callee"]
    rec = Recording.objects.get(call=call)
    path = settings.RECORDINGS_DIR / rec.storage_key
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.sha256 and path.stat().st_size == rec.bytes
    assert rec.channel_map == {"left": "caller", "right": "callee"}
    assert abs(rec.duration - 2.01) < 0.06
    pcm, rate = decode_recording(path)
    left_spec = np.abs(np.fft.rfft(pcm[:rate, 0]))
    right_spec = np.abs(np.fft.rfft(pcm[:rate, 1]))
    assert abs(np.argmax(left_spec) * rate / (2 * (len(left_spec) - 1)) - 440) < 5
    assert abs(np.argmax(right_spec) * rate / (2 * (len(right_spec) - 1)) - 1000) < 5
    # the 200 ms of dropped callee packets are silence at 0.41-0.61 s, nothing shifted
    gap = pcm[int(0.45 * rate) : int(0.57 * rate), 1].astype(np.int32)
    assert np.abs(gap).max() < 200
    assert np.abs(pcm[int(0.7 * rate) : int(0.8 * rate), 1].astype(np.int32)).max() > 3000
    assert not spool_dir.exists()


def test_finalize_caches_the_waveform_from_the_samples_it_encoded(monkeypatch) -> None:
    from callvault.apps.recordings import playback

    _, spool_dir = make_spool(time.time() - 10, drop=set(range(20, 30)))
    decodes: list[Path] = []
    real = playback.compute_peaks
    monkeypatch.setattr(playback, "compute_peaks", lambda *a: decodes.append(a[0]) or real(*a))
    call = ingest_and_finalize(spool_dir)
    assert decodes == []  # the worker did not decode the file it had just written
    rec = Recording.objects.get(call=call)
    cached = playback.peaks_for(rec)
    decoded = real(settings.RECORDINGS_DIR / rec.storage_key, rec.duration)
    assert (cached["channels"], cached["buckets"]) == (decoded["channels"], decoded["buckets"]) == (2, 100)
    assert cached["channel_map"] == {"left": "caller", "right": "callee"}
    diff = np.abs(np.array(cached["peaks"]) - np.array(decoded["peaks"]))
    assert np.median(diff) < 0.05 and diff.max() < 0.2, [
        list(np.round(row, 2)) for row in diff
    ]  # Opus smears edges
    right = np.array(cached["peaks"][1])
    assert right[25] < 0.01 and right[40] > 0.2  # the dropped packets (0.41-0.61 s) show as silence


def test_finalizing_twice_is_harmless() -> None:
    call_id, spool_dir = make_spool(time.time() - 10)
    ingest_and_finalize(spool_dir)
    assert finalize.finalize_call(call_id) == "ready"
    assert Recording.objects.filter(call_id=call_id).count() == 1


def test_ingesting_the_same_journal_again_creates_nothing_new() -> None:
    _, spool_dir = make_spool(time.time() - 10)
    first = finalize.ingest_spool(spool_dir, interrupted=False)
    second = finalize.ingest_spool(spool_dir, interrupted=False)
    assert first == second
    assert Call.objects.count() == 1 and Participant.objects.count() == 2 and Stream.objects.count() == 2


def test_a_file_left_by_a_crashed_attempt_is_replaced_not_trusted() -> None:
    call_id, spool_dir = make_spool(time.time() - 10)
    finalize.ingest_spool(spool_dir, interrupted=False)
    call = Call.objects.get(pk=call_id)
    key = f"{timezone.localtime(call.started_at):%Y/%m/%d}/{call.pk}.opus"
    stale = settings.RECORDINGS_DIR / key
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half-written garbage")
    assert finalize.finalize_call(call_id) == "ready"
    rec = Recording.objects.get(call_id=call_id)
    assert hashlib.sha256(stale.read_bytes()).hexdigest() == rec.sha256


def test_a_cancelled_call_is_a_missed_call_without_recording() -> None:
    _, spool_dir = make_spool(time.time() - 10, answered=False)
    call = ingest_and_finalize(spool_dir)
    assert (call.state, call.recording_state) == ("cancelled", "none")
    assert not Recording.objects.filter(call=call).exists()
    assert not spool_dir.exists()


def test_an_interrupted_spool_is_recovered_up_to_its_last_packet() -> None:
    t0 = time.time() - 10
    call_id, spool_dir = make_spool(t0, seconds=3.0, close=False)
    with (spool_dir / "journal.jsonl").open("ab") as fh:
        fh.write(b'{"type": "upd')  # the crash tore the last journal line
    assert finalize.recover_spool(spool_dir) == call_id
    call = Call.objects.get(pk=call_id)
    assert (call.state, call.end_reason, call.recording_state) == ("interrupted", "crash", "pending")
    lines = (spool_dir / "journal.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "closed"
    assert abs(call.ended_at.timestamp() - (t0 + 0.01 + 149 * 0.02)) < 0.01
    assert finalize.finalize_call(call_id) == "ready"
    assert abs(Recording.objects.get(call_id=call_id).duration - 3.0) < 0.06


def test_a_failing_finalize_keeps_the_spool_shows_the_error_and_can_be_retried(monkeypatch) -> None:
    call_id, spool_dir = make_spool(time.time() - 10)
    finalize.ingest_spool(spool_dir, interrupted=False)
    monkeypatch.setattr(settings, "RECORDING_FORMAT", "nonsense")
    with pytest.raises(KeyError):
        finalize.finalize_call(call_id)
    call = Call.objects.get(pk=call_id)
    assert call.recording_state == "pending" and "KeyError" in call.recording_error
    assert spool_dir.exists(), "nothing is lost when processing fails"
    Call.objects.filter(pk=call_id).update(finalize_attempts=finalize.MAX_ATTEMPTS - 1)
    assert finalize.finalize_call(call_id) == "failed"
    assert Call.objects.get(pk=call_id).recording_state == "failed"
    monkeypatch.setattr(settings, "RECORDING_FORMAT", "opus")
    assert "再実行" in finalize.request_retry(call_id)
    assert finalize.finalize_call(call_id) == "ready"


def test_retry_of_an_unknown_call_says_so() -> None:
    with pytest.raises(LookupError, match="no call with id"):
        finalize.request_retry(str(uuid.uuid4()))
    with pytest.raises(LookupError, match="no call with id"):
        finalize.request_retry("not-a-uuid")


def test_storage_refuses_keys_that_escape_its_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for key in ("../etc/passwd", "/abs", "a/../../b", "", "a\\b"):
        with pytest.raises(StorageError, match="invalid storage key"):
            storage.exists(key)


def test_a_claim_left_by_a_dead_worker_of_this_host_is_released_at_once() -> None:
    import socket
    import subprocess
    import sys

    call_id, spool_dir = make_spool(time.time() - 10)
    finalize.ingest_spool(spool_dir, interrupted=False)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    owner = f"{socket.gethostname()}:{dead.stdout.strip()}"
    Call.objects.filter(pk=call_id).update(recording_state="processing", finalize_owner=owner)
    alive = f"{socket.gethostname()}:{__import__('os').getpid()}"
    other = make_spool(time.time() - 10)
    finalize.ingest_spool(other[1], interrupted=False)
    Call.objects.filter(pk=other[0]).update(recording_state="processing", finalize_owner=alive)
    assert finalize.release_dead_claims() == 1
    assert Call.objects.get(pk=call_id).recording_state == "pending"
    assert Call.objects.get(pk=other[0]).recording_state == "processing", "a live worker keeps its claim"
    assert finalize.finalize_call(call_id) == "ready"
