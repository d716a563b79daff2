"""Building and encoding a call's timeline while the call goes on equals doing it in one go."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest

from callvault.codecs import g711
from callvault.media.encode import decode_recording, encode_recording
from callvault.media.incremental import IncrementalMix, NotIncremental, OpusWriter
from callvault.media.mix import mix_mono
from callvault.media.track import decode_track
from callvault.rtp.stream import ANCHOR_WINDOW, PayloadType
from tests.media.test_oggcheck import _pages
from tests.rtp.helpers import DTMF_PT, G722_PT, PAYLOAD_TYPES, PCMU, SSRC_B, dtmf_records, rtp, tone

T0 = 100.0
RATE = 8000


def pcmu_records(
    pcm: np.ndarray, *, start: float, seq0: int = 1, ts0: int = 1000, ssrc: int = 0x1234, jitter: float = 0.0
) -> list[tuple[float, bytes]]:
    payload = g711.encode(pcm, "ulaw")
    rng = random.Random(seq0)
    out = []
    for k in range(len(payload) // 160):
        arrival = start + k * 0.02 + rng.uniform(0, jitter)
        out.append((arrival, rtp(seq0 + k, ts0 + k * 160, payload[k * 160 : (k + 1) * 160], ssrc=ssrc)))
    return sorted(out, key=lambda r: r[0])


def one_shot(streams: dict[int, tuple[str, list[tuple[float, bytes]]]], ended: float) -> np.ndarray:
    """What finalize.build_audio makes of the same streams (caller left, the others right)."""
    tracks = {i: decode_track(recs, PAYLOAD_TYPES, t0=T0, out_rate=RATE) for i, (_r, recs) in streams.items()}
    left = mix_mono([tracks[i] for i, (role, _) in streams.items() if role == "caller"], out_rate=RATE)
    right = mix_mono([tracks[i] for i, (role, _) in streams.items() if role != "caller"], out_rate=RATE)
    n = max(len(left), len(right), round((ended - T0) * RATE))
    out = np.zeros((n, 2), dtype=np.int16)
    out[: len(left), 0] = left
    out[: len(right), 1] = right
    return out


def incremental(
    streams: dict[int, tuple[str, list[tuple[float, bytes]]]], ended: float, *, step: float = 0.7
) -> tuple[np.ndarray, IncrementalMix, float]:
    mix = IncrementalMix({i: (role, PAYLOAD_TYPES) for i, (role, _) in streams.items()}, t0=T0, out_rate=RATE)
    pos = dict.fromkeys(streams, 0)
    parts = []
    t = T0
    while any(pos[i] < len(recs) for i, (_r, recs) in streams.items()):
        t += step
        for i, (_role, recs) in streams.items():
            j = pos[i]
            while j < len(recs) and recs[j][0] <= t:
                j += 1
            mix.feed(i, recs[pos[i] : j])
            pos[i] = j
        parts.append(mix.take(mix.stable()))
    taken_before_end = mix.taken / RATE
    parts.append(mix.finish(ended))
    return np.concatenate(parts), mix, taken_before_end


def test_the_timeline_built_as_packets_come_equals_the_one_shot_decode() -> None:
    caller = tone(440, 30.0, RATE)
    callee = tone(1000, 30.0, RATE)
    a = pcmu_records(caller, start=T0 + 0.01, jitter=0.03)
    b = [r for k, r in enumerate(pcmu_records(callee, start=T0 + 0.5, ssrc=SSRC_B, jitter=0.03)) if k % 17]
    streams = {0: ("caller", a), 1: ("callee", b)}
    got, mix, before_end = incremental(streams, ended=T0 + 30.6)
    want = one_shot(streams, ended=T0 + 30.6)
    assert got.shape == want.shape
    assert np.array_equal(got, want)
    assert before_end > 30.6 - 5  # most of it was ready before the end of the call
    one = decode_track(b, PAYLOAD_TYPES, t0=T0, out_rate=RATE)
    assert mix.tracks()[1].stats == one.stats and one.stats.lost == len(range(17, 1500, 17))


def test_a_new_epoch_and_dtmf_come_out_as_in_one_go() -> None:
    first = pcmu_records(tone(500, 6.0, RATE), start=T0 + 0.01, jitter=0.01)
    events = dtmf_records(5, seq0=301, start_ts=1000 + 300 * 160, start=T0 + 6.02)
    events = [(at, pkt) for at, pkt in events]
    # after a hold the phone comes back with a new SSRC and timestamps
    second = pcmu_records(
        tone(700, 6.0, RATE), start=T0 + 9.0, seq0=5000, ts0=777_000, ssrc=0x9999, jitter=0.01
    )
    records = sorted(first + events + second, key=lambda r: r[0])
    streams = {
        0: ("caller", records),
        1: ("callee", pcmu_records(tone(900, 14.0, RATE), start=T0, ssrc=SSRC_B)),
    }
    got, mix, _ = incremental(streams, ended=T0 + 15.2, step=0.3)
    want = one_shot(streams, ended=T0 + 15.2)
    assert np.array_equal(got, want)
    one = decode_track(records, PAYLOAD_TYPES, t0=T0, out_rate=RATE)
    inc = mix.tracks()[0]
    assert [(d.digit, d.time) for d in inc.dtmf] == [(d.digit, d.time) for d in one.dtmf] and len(
        inc.dtmf
    ) == 1
    assert inc.stats == one.stats


def test_a_less_delayed_packet_after_the_anchor_window_moves_nothing() -> None:
    pcm = tone(440, ANCHOR_WINDOW + 4.0, RATE)
    records = pcmu_records(pcm, start=T0 + 0.05)
    # every packet 50 ms late, except one well after the anchor window that comes straight through
    k = int((ANCHOR_WINDOW + 1.0) / 0.02)
    arrival, packet = records[k]
    records[k] = (arrival - 0.049, packet)
    records.sort(key=lambda r: r[0])
    track = decode_track(records, PAYLOAD_TYPES, t0=T0, out_rate=RATE)
    assert track.start == pytest.approx(0.05, abs=1 / RATE)  # placed by the anchor window
    streams = {0: ("caller", records), 1: ("callee", [])}
    end = T0 + ANCHOR_WINDOW + 4.1
    got, _, _ = incremental(streams, ended=end)
    assert np.array_equal(got, one_shot(streams, ended=end))


def test_it_refuses_streams_that_need_resampling() -> None:
    mix = IncrementalMix({0: ("caller", {**PAYLOAD_TYPES})}, t0=T0, out_rate=RATE)
    g722 = [(T0 + 0.02 * k, rtp(k, k * 160, b"\x00" * 160, pt=G722_PT)) for k in range(100)]
    with pytest.raises(NotIncremental, match=r"16000 Hz audio in a 8000 Hz mix"):
        mix.feed(0, g722)


def test_it_refuses_audio_for_a_part_already_taken() -> None:
    mix = IncrementalMix({0: ("caller", PAYLOAD_TYPES)}, t0=T0, out_rate=RATE)
    mix.feed(0, pcmu_records(tone(440, 16.0, RATE), start=T0))
    mix.take(mix.stable())
    assert mix.taken > 0
    # the recorder's clock steps back 5 s and a new source starts: it lands on encoded audio
    stepped = pcmu_records(tone(440, 3.0, RATE), start=T0 + 11.0, seq0=9000, ts0=5, ssrc=0x7777)
    with pytest.raises(NotIncremental, match=r"overlaps the one before|already encoded"):
        mix.feed(0, stepped)
        mix.finish(T0 + 18)


def test_a_mono_mixed_stream_stays_mono() -> None:
    records = pcmu_records(tone(440, 5.0, RATE), start=T0)
    mix = IncrementalMix(
        {0: ("mixed", {PCMU: PayloadType("PCMU", 8000), DTMF_PT: PAYLOAD_TYPES[DTMF_PT]})},
        t0=T0,
        out_rate=RATE,
    )
    mix.feed(0, records)
    out = np.concatenate([mix.take(mix.stable()), mix.finish(T0 + 5.0)])
    assert mix.channels == 1 and mix.channel_map == {"mono": "mixed"}
    want = decode_track(records, PAYLOAD_TYPES, t0=T0, out_rate=RATE).pcm
    assert np.array_equal(out[:, 0], want)


def _packets(data: bytes) -> list[bytes]:
    packets, current = [], b""
    for start, _end in _pages(data):
        nseg = data[start + 26]
        lacing = data[start + 27 : start + 27 + nseg]
        body = start + 27 + nseg
        for size in lacing:
            current += data[body : body + size]
            body += size
            if size < 255:
                packets.append(current)
                current = b""
    return packets


@pytest.mark.parametrize("pieces", [[1], [4800], [333, 4801, 17, 20000], [160] * 50])
def test_the_writer_fed_in_pieces_makes_the_one_shot_file(tmp_path: Path, pieces: list[int]) -> None:
    rng = np.random.default_rng(5)
    pcm = (rng.normal(0, 2000, size=(RATE * 7 + 123, 2))).astype(np.int16)
    tags = {"callvault_call_id": "x", "date": "2026-11-28T10:00:00+09:00"}
    whole = encode_recording(pcm, RATE, "opus", tmp_path / "whole.opus", metadata=tags)
    buf = io.BytesIO()
    writer = OpusWriter(buf, RATE, 2, metadata=tags)
    pos = 0
    while pos < len(pcm):
        for size in pieces:
            writer.write(pcm[pos : pos + size])
            pos += size
    writer.close()
    (tmp_path / "pieces.opus").write_bytes(buf.getvalue())
    # the same packets (the Ogg serial number is random per file)
    assert _packets(buf.getvalue()) == _packets(whole.path.read_bytes())
    a, _ = decode_recording(whole.path)
    b, _ = decode_recording(tmp_path / "pieces.opus")
    assert np.array_equal(a, b)
