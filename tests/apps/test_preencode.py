"""The pre-encoder: calls encoded while they go on give the same recording as a one-shot finalize."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from callvault.apps.calls.models import Call
from callvault.apps.recordings import finalize, preencode
from callvault.apps.recordings.models import Recording
from callvault.codecs import g711
from callvault.media.audio_compare import envelope_correlation
from callvault.media.encode import decode_recording
from callvault.spool.writer import CallSpool
from tests import audio_fixtures
from tests.audio_fixtures import TwoPartyCall, two_party_call

pytestmark = pytest.mark.django_db
audio_cache_dir = audio_fixtures.audio_cache_dir

PCMU = {"0": ["PCMU", 8000, 1, None], "101": ["telephone-event", 8000, 1, "0-16"]}
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def speech(audio_cache_dir: Path) -> TwoPartyCall:
    return two_party_call("en", cache_dir=audio_cache_dir)


class LiveCall:
    """A call written into a spool little by little, as the recorder does."""

    def __init__(self, pcm: np.ndarray, *, jitter_ms: float = 5.0, drop: set[int] | None = None) -> None:
        self.call_id = str(uuid.uuid4())
        self.key = self.call_id.replace("-", "")
        self.spool = CallSpool(settings.SPOOL_DIR, self.key)
        self.dir = settings.SPOOL_DIR / self.key
        streams = [
            {"index": i, "label": str(i + 1), "role": role, "participant_id": f"p{i}", "payload_types": PCMU}
            for i, role in enumerate(("caller", "callee"))
        ]
        participants = [
            {"participant_id": "p0", "aor": "sip:0312345678@x", "number": "0312345678", "role": "caller"},
            {"participant_id": "p1", "aor": "sip:201@x", "number": "201", "role": "callee"},
        ]
        self.spool.journal(
            {
                "type": "invite",
                "t": T0,
                "call_id": self.call_id,
                "source": "siprec",
                "sip_call_id": f"sip-{self.key}",
                "session_id": "s1",
                "direction": "in",
                "streams": streams,
                "participants": participants,
            }
        )
        self.spool.journal({"type": "answered", "t": T0})
        finalize.ingest_spool(self.dir, interrupted=False)
        rng = np.random.default_rng(3)
        self.records: list[tuple[float, int, bytes]] = []
        for index in (0, 1):
            payload = g711.encode(np.ascontiguousarray(pcm[:, index]), "ulaw")
            frames = len(payload) // 160
            delays = rng.uniform(0, jitter_ms / 1000, size=frames)
            for k in range(frames):
                if drop and index == 1 and k in drop:
                    continue
                header = struct.pack("!BBHII", 0x80, 0, (100 + k) & 0xFFFF, 1000 + k * 160, 0x1000 + index)
                self.records.append(
                    (T0 + 0.01 + k * 0.02 + delays[k], index, header + payload[k * 160 : (k + 1) * 160])
                )
        self.records.sort()
        self.streams = {i: self.spool.open_stream(i) for i in (0, 1)}
        self.written = 0
        self.end_t = T0 + len(pcm) / 8000 + 0.01

    def write_until(self, t: float) -> None:
        while self.written < len(self.records) and self.records[self.written][0] <= t:
            arrival, index, packet = self.records[self.written]
            self.streams[index].append(arrival, packet)
            self.written += 1
        self.spool.flush()

    def hang_up(self) -> None:
        self.write_until(float("inf"))
        self.spool.journal({"type": "ended", "t": self.end_t, "reason": "bye"})
        self.spool.mark_complete()
        finalize.ingest_spool(self.dir, interrupted=False)


def _run(encoder: preencode.PreEncoder, call: LiveCall, *, until: float, step: float = 0.5) -> None:
    t = T0
    while t < until:
        t += step
        call.write_until(t)
        encoder.tick(t)


def _recording(call_id: str) -> tuple[Recording, np.ndarray]:
    rec = Recording.objects.get(call_id=call_id)
    pcm, rate = decode_recording(settings.RECORDINGS_DIR / rec.storage_key)
    assert rate == 8000
    return rec, pcm


def _one_shot_copy(call: LiveCall) -> str:
    """The same spool, finalized in one go under another call id."""
    import shutil

    twin_id = str(uuid.uuid4())
    twin_key = twin_id.replace("-", "")
    shutil.copytree(call.dir, settings.SPOOL_DIR / twin_key)
    journal = settings.SPOOL_DIR / twin_key / "journal.jsonl"
    journal.write_text(journal.read_text().replace(call.call_id, twin_id))
    finalize.ingest_spool(settings.SPOOL_DIR / twin_key, interrupted=False)
    Call.objects.filter(pk=twin_id).update(started_at=Call.objects.get(pk=call.call_id).started_at)
    assert finalize.finalize_call(twin_id) == "ready"
    return twin_id


def test_a_pre_encoded_call_is_the_same_recording_as_a_one_shot_finalize(speech: TwoPartyCall) -> None:
    pcm = np.tile(speech.pcm, (2, 1))
    call = LiveCall(pcm, drop=set(range(200, 230)))
    encoder = preencode.PreEncoder(settings.SPOOL_DIR)
    _run(encoder, call, until=call.end_t - 0.2)
    followed = encoder.calls[call.key]
    assert followed.mix is not None and not followed.gave_up
    done_before_hang_up = followed.mix.taken / 8000
    assert done_before_hang_up > len(pcm) / 8000 - 5  # all but the last seconds already encoded
    # the job the recorder queues at hang-up finds the call taken and leaves it to the pre-encoder
    call.hang_up()
    assert finalize.finalize_call(call.call_id) == "deferred"
    twin = _one_shot_copy(call)  # the same spool, finalized in one go from a copy
    encoder.tick(call.end_t + 0.1)
    assert call.key not in encoder.calls and not call.dir.exists()
    assert list(preencode.work_dir().glob("*.part")) == []
    rec, got = _recording(call.call_id)
    assert abs(rec.duration - (call.end_t - T0)) < 0.001
    twin_rec, want = _recording(twin)
    assert got.shape == want.shape
    assert np.array_equal(got, want)  # same samples in, same encoder, same chunks: same audio out
    assert rec.bytes == twin_rec.bytes
    assert rec.call.packets_lost == twin_rec.call.packets_lost == 30


def test_a_crash_of_the_pre_encoder_mid_call_still_yields_the_whole_recording(speech: TwoPartyCall) -> None:
    pcm = np.tile(speech.pcm, (2, 1))
    call = LiveCall(pcm)
    encoder = preencode.PreEncoder(settings.SPOOL_DIR)
    _run(encoder, call, until=T0 + len(pcm) / 8000 / 2)
    assert encoder.calls[call.key].mix.taken > 0
    part = encoder.calls[call.key].part
    assert part.exists()
    # kill -9: the kernel closes its files (and so drops the spool lock); nothing is finished
    followed = encoder.calls.pop(call.key)
    preencode.unlock_spool(followed.lock)
    call.hang_up()
    # the next pre-encoder throws away partial files of the dead one
    preencode.PreEncoder(settings.SPOOL_DIR).clean_work_dir()
    assert not part.exists()
    assert finalize.finalize_call(call.call_id) == "ready"  # the job does it all from the spool
    rec, got = _recording(call.call_id)
    assert abs(rec.duration - (call.end_t - T0)) < 0.001
    assert not call.dir.exists()
    for ch in (0, 1):  # each party on its own channel, nothing lost or shifted
        assert envelope_correlation(pcm[:, ch], 8000, got[:, ch], 8000) >= 0.9


def test_a_restarted_pre_encoder_picks_up_a_call_that_already_ended(speech: TwoPartyCall) -> None:
    call = LiveCall(speech.pcm)
    call.hang_up()
    encoder = preencode.PreEncoder(settings.SPOOL_DIR)
    encoder.tick(call.end_t + 60)
    assert not call.dir.exists()
    rec, _ = _recording(call.call_id)
    assert abs(rec.duration - (call.end_t - T0)) < 0.001


def test_a_call_that_cannot_be_built_incrementally_is_let_go_and_finalized_in_one_go(
    speech: TwoPartyCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = LiveCall(speech.pcm)
    encoder = preencode.PreEncoder(settings.SPOOL_DIR)
    _run(encoder, call, until=T0 + 4)
    assert call.key in encoder.calls
    # a re-INVITE adds a G.722 stream: the mix would need resampling
    call.spool.journal(
        {
            "type": "update",
            "t": T0 + 4,
            "streams": [{"index": 2, "role": "callee", "payload_types": {"9": ["G722", 8000, 1, None]}}],
        }
    )
    encoder.tick(T0 + 10)
    assert call.key not in encoder.calls and call.key in encoder.let_go
    assert list(preencode.work_dir().glob("*.part")) == []
    call.hang_up()
    assert finalize.finalize_call(call.call_id) == "ready"  # the lock is free: the job does it


def test_a_recorder_crash_mid_call_gives_the_one_shot_recording_of_what_was_spooled(
    speech: TwoPartyCall,
) -> None:
    call = LiveCall(np.tile(speech.pcm, (2, 1)))
    encoder = preencode.PreEncoder(settings.SPOOL_DIR)
    crash_t = T0 + 16.0
    _run(encoder, call, until=crash_t)
    assert encoder.calls[call.key].mix.taken > 0
    # kill -9 of the recorder: its files stay as they are; the restarted recorder recovers the spool
    for stream in call.streams.values():
        stream._parts.clear()
    finalize.recover_spool(call.dir)
    twin = _one_shot_copy(call)
    encoder.tick(crash_t + 5)
    assert call.key not in encoder.calls and not call.dir.exists()
    rec, got = _recording(call.call_id)
    _, want = _recording(twin)
    assert rec.call.state == "interrupted"
    assert np.array_equal(got, want)


def test_a_second_worker_starting_keeps_the_partial_files_of_a_live_pre_encoder(speech: TwoPartyCall) -> None:
    call = LiveCall(np.tile(speech.pcm, (2, 1)))
    encoder = preencode.PreEncoder(settings.SPOOL_DIR)
    _run(encoder, call, until=T0 + 20)
    part = encoder.calls[call.key].part
    assert part.exists()
    preencode.PreEncoder(settings.SPOOL_DIR).clean_work_dir()  # the other worker's start-up
    assert part.exists()  # still locked by the live one: left alone
    call.hang_up()
    encoder.tick(call.end_t + 0.1)
    rec, _ = _recording(call.call_id)
    assert abs(rec.duration - (call.end_t - T0)) < 0.001
