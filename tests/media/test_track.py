import random
import time

import numpy as np
import pytest
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from callvault.codecs import g711, g722, opus
from callvault.media.audio_compare import envelope_correlation
from callvault.media.track import TrackError, decode_track, resample, used_pcm_rates
from callvault.rtp.stream import PayloadType
from tests.rtp.helpers import (
    CN_PT,
    G722_PT,
    G729_PT,
    OPUS_PT,
    PAYLOAD_TYPES,
    PCMU,
    SSRC_B,
    block_payload,
    dtmf_records,
    l16_records,
    packetize,
    rtp,
    speak,
    tone,
)

T0 = 10.0
BLOCK = 160


def expected_blocks(indices, length_blocks):
    """8 kHz output where block i holds value i + 1 for the listed packet indices, else 0."""
    out = np.zeros(length_blocks * BLOCK, dtype=np.int16)
    for i in indices:
        out[i * BLOCK : (i + 1) * BLOCK] = i + 1
    return out


def decode(records, out_rate=8000, **kwargs):
    return decode_track(records, PAYLOAD_TYPES, t0=T0, out_rate=out_rate, **kwargs)


def dominant_frequency(pcm, rate):
    spectrum = np.abs(np.fft.rfft(pcm.astype(float) * np.hanning(len(pcm))))
    return np.argmax(spectrum) * rate / len(pcm)


def test_in_order_stream_decodes_to_its_samples_at_its_start():
    track = decode(l16_records(50, start=T0 + 1.5))
    np.testing.assert_array_equal(track.pcm, expected_blocks(range(50), 50))
    assert track.start == pytest.approx(1.5)
    assert track.sample_rate == 8000
    assert track.codecs == {"L16"}
    assert not track.unsupported


def test_lost_packets_become_silence_at_the_exact_sample_position():
    records = [r for i, r in enumerate(l16_records(50)) if i not in (10, 11, 30)]
    track = decode(records)
    kept = [i for i in range(50) if i not in (10, 11, 30)]
    np.testing.assert_array_equal(track.pcm, expected_blocks(kept, 50))
    assert track.stats.lost == 3


def test_reordering_duplicates_and_jitter_do_not_move_any_sample():
    rng = random.Random(7)
    records = l16_records(200)
    delayed = [(a + (0.0 if i == 0 else rng.uniform(0, 0.08)), d) for i, (a, d) in enumerate(records)]
    delayed += [(a + 0.003, d) for a, d in delayed[::17]]  # duplicates
    delayed.sort(key=lambda r: r[0])
    track = decode(delayed)
    np.testing.assert_array_equal(track.pcm, expected_blocks(range(200), 200))
    assert track.start == 0.0
    assert track.stats.duplicates == len(range(0, 200, 17))
    assert track.stats.jitter > 5


def test_epoch_start_is_the_least_delayed_packet_not_the_first():
    records = l16_records(100)
    delayed = [(a + (0.06 if i < 50 else 0.0), d) for i, (a, d) in enumerate(records)]
    track = decode(delayed)
    assert track.start == 0.0


def test_dtx_gap_is_exact_silence_and_later_audio_is_not_shifted():
    first = l16_records(10)
    gap_samples = 8000 * 2 + 40
    second = l16_records(
        10, seq0=1010, ts0=50_000 + 10 * BLOCK + gap_samples, start=T0 + 0.2 + 2.005, first_index=10
    )
    track = decode(first + second)
    pcm = track.pcm
    assert len(pcm) == 20 * BLOCK + gap_samples
    np.testing.assert_array_equal(pcm[: 10 * BLOCK], expected_blocks(range(10), 10))
    assert not pcm[10 * BLOCK : 10 * BLOCK + gap_samples].any()
    assert np.all(pcm[10 * BLOCK + gap_samples :].reshape(10, BLOCK)[:, 0] == np.arange(11, 21))


def test_comfort_noise_is_silence_until_audio_resumes():
    first = l16_records(5)
    cn = (T0 + 0.1, rtp(1005, 50_000 + 5 * BLOCK, b"\x3c", pt=CN_PT))
    second = l16_records(5, seq0=1006, ts0=50_000 + 5 * BLOCK + 8000, start=T0 + 1.1, first_index=5)
    track = decode([*first, cn, *second])
    assert len(track.pcm) == 10 * BLOCK + 8000
    assert not track.pcm[5 * BLOCK : 5 * BLOCK + 8000].any()
    assert track.pcm[-1] == 10


def test_hold_with_frozen_timestamps_is_placed_by_arrival():
    first = l16_records(10)
    # resumes 5 s later with the next sequence number and timestamp (sender froze its clock)
    second = l16_records(10, seq0=1010, ts0=50_000 + 10 * BLOCK, start=T0 + 5.2, first_index=10)
    track = decode(first + second)
    resume = round(5.2 * 8000)
    assert len(track.pcm) == resume + 10 * BLOCK
    assert not track.pcm[10 * BLOCK : resume].any()
    assert track.pcm[resume] == 11
    assert track.stats.restarts == 1


def test_ssrc_change_is_placed_at_the_new_streams_arrival_time():
    first = l16_records(10)
    second = l16_records(10, seq0=5, ts0=123_456_789, start=T0 + 0.5, ssrc=SSRC_B, first_index=10)
    track = decode(first + second)
    assert track.stats.ssrc_changes == 1
    np.testing.assert_array_equal(track.pcm[4000:], expected_blocks(range(10, 20), 20)[10 * BLOCK :])
    assert not track.pcm[10 * BLOCK : 4000].any()


def test_overlapping_epochs_never_shift_later_audio():
    first = l16_records(10)
    # the new SSRC starts 50 ms before the old one's last packet: its audio stays where it arrived
    second = l16_records(10, seq0=5, ts0=1, start=T0 + 0.15, ssrc=SSRC_B, first_index=10)
    records = sorted(first + second, key=lambda r: r[0])
    track = decode(records, reorder_window=0.5)
    start_b = round(0.15 * 8000)
    np.testing.assert_array_equal(track.pcm[start_b:], expected_blocks(range(10, 20), 20)[10 * BLOCK :])
    assert len(track.pcm) == start_b + 10 * BLOCK
    np.testing.assert_array_equal(track.pcm[:start_b], expected_blocks(range(10), 10)[:start_b])


def test_wraps_of_sequence_and_timestamp_give_continuous_audio():
    track = decode(l16_records(40, seq0=65520, ts0=2**32 - 20 * BLOCK))
    np.testing.assert_array_equal(track.pcm, expected_blocks(range(40), 40))
    assert track.stats.lost == 0


def test_last_packets_are_never_truncated():
    records = l16_records(30)
    del records[27]  # the tail waits behind a gap in the reorder buffer
    records[-1], records[-2] = (records[-1][0], records[-2][1]), (records[-2][0], records[-1][1])
    track = decode(records)
    assert len(track.pcm) == 30 * BLOCK
    assert np.all(track.pcm[-BLOCK:] == 30)
    assert np.all(track.pcm[-2 * BLOCK : -BLOCK] == 29)


def test_dtmf_is_reported_with_its_time_and_never_appears_in_audio():
    audio = l16_records(10)
    events = dtmf_records(1, seq0=1010, start_ts=50_000 + 10 * BLOCK, start=T0 + 0.2)
    resume_ts = 50_000 + 10 * BLOCK + 3200
    after = l16_records(5, seq0=1010 + len(events), ts0=resume_ts, start=T0 + 0.6, first_index=10)
    track = decode(audio + events + after)
    (event,) = track.dtmf
    assert event.digit == "1"
    assert event.time == pytest.approx(0.2)
    assert event.duration == pytest.approx(2000 / 8000)
    assert len(track.pcm) == 10 * BLOCK + 3200 + 5 * BLOCK
    assert not track.pcm[10 * BLOCK : 10 * BLOCK + 3200].any()
    assert track.codecs == {"L16"}


def test_unsupported_codec_is_flagged_and_kept_out_of_the_audio():
    records = packetize([b"\x11" * 20] * 50, pt=G729_PT, ts_step=BLOCK, start=T0 + 1)
    track = decode(records)
    assert track.unsupported
    assert track.codecs == {"G729"}
    assert len(track.pcm) == 0
    assert track.start == pytest.approx(1.0)
    assert track.stats.received == 50


def test_pcmu_upsampled_to_16khz_keeps_length_pitch_and_gap_position():
    pcm = tone(1000, 1.0, 8000)
    payloads = [g711.encode(pcm[i : i + BLOCK], g711.ULAW) for i in range(0, len(pcm), BLOCK)]
    records = [r for i, r in enumerate(packetize(payloads, pt=PCMU, ts_step=BLOCK)) if i != 25]
    track = decode(records, out_rate=16000)
    assert len(track.pcm) == 2 * len(pcm)
    assert dominant_frequency(track.pcm[:16000], 16000) == pytest.approx(1000, abs=2)
    gap = track.pcm[2 * 25 * BLOCK + 20 : 2 * 26 * BLOCK - 20]
    assert np.abs(gap).max() < 200
    assert np.abs(track.pcm[2 * 24 * BLOCK : 2 * 25 * BLOCK - 40]).max() > 5000


def test_g722_track_is_decoded_at_16khz_with_8khz_timestamps():
    pcm = tone(1000, 1.0, 16000)
    payloads = g722.encode(pcm)
    track = decode(packetize(payloads, pt=G722_PT, ts_step=BLOCK), out_rate=16000)
    assert len(track.pcm) == 320 * len(payloads)
    assert dominant_frequency(track.pcm, 16000) == pytest.approx(1000, abs=2)
    assert track.codecs == {"G722"}


def test_g722_track_can_be_downsampled_to_8khz():
    payloads = g722.encode(tone(500, 1.0, 16000))
    track = decode(packetize(payloads, pt=G722_PT, ts_step=BLOCK), out_rate=8000)
    assert len(track.pcm) == BLOCK * len(payloads)
    assert dominant_frequency(track.pcm, 8000) == pytest.approx(500, abs=2)


def test_codec_switch_within_one_ssrc_keeps_the_timeline():
    pcmu = packetize([g711.encode(tone(400, 0.02, 8000), g711.ULAW)] * 25, pt=PCMU, ts_step=BLOCK)
    g722_payloads = g722.encode(tone(400, 0.5, 16000))
    switched = packetize(
        g722_payloads, pt=G722_PT, ts_step=BLOCK, seq0=1025, ts0=50_000 + 25 * BLOCK, start=T0 + 0.5
    )
    track = decode(pcmu + switched, out_rate=16000)
    assert track.codecs == {"PCMU", "G722"}
    assert len(track.pcm) == 16000 * 1
    assert np.abs(track.pcm[7000:7800]).max() > 3000
    assert np.abs(track.pcm[8200:9000]).max() > 3000


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    directory = tmp_path_factory.mktemp("speech")
    return {
        rate: speak("テスト の ろくおん です。 きこえますか。", directory, rate) for rate in (8000, 48000)
    }


def test_speech_over_pcmu_with_loss_and_jitter_keeps_its_envelope_and_timing(speech):
    pcm = speech[8000]
    pcm = pcm[: len(pcm) // BLOCK * BLOCK]
    payloads = [g711.encode(pcm[i : i + BLOCK], g711.ULAW) for i in range(0, len(pcm), BLOCK)]
    rng = random.Random(3)
    records = packetize(payloads, pt=PCMU, ts_step=BLOCK)
    lost = {40, 41, 70}
    records = [
        (a + (0 if i == 0 else rng.uniform(0, 0.06)), d) for i, (a, d) in enumerate(records) if i not in lost
    ]
    records.sort(key=lambda r: r[0])
    track = decode(records)
    assert len(track.pcm) == len(pcm)
    assert envelope_correlation(pcm, 8000, track.pcm, 8000, max_lag_ms=0) >= 0.9
    assert not track.pcm[40 * BLOCK : 42 * BLOCK].any()
    reference = g711.decode(b"".join(p for i, p in enumerate(payloads) if i not in lost), g711.ULAW)
    kept = np.ones(len(pcm), dtype=bool)
    for i in lost:
        kept[i * BLOCK : (i + 1) * BLOCK] = False
    np.testing.assert_array_equal(track.pcm[kept], reference)


def test_opus_speech_track_at_16khz_keeps_its_envelope(speech):
    pcm = speech[48000]
    packets = opus.encode(pcm)
    track = decode(packetize(packets, pt=OPUS_PT, ts_step=960), out_rate=16000)
    assert track.codecs == {"OPUS"}
    assert len(track.pcm) == len(packets) * 320
    assert envelope_correlation(pcm, 48000, track.pcm, 16000) >= 0.9


def test_resample_keeps_duration_and_alignment():
    impulse = np.zeros(8000, dtype=np.int16)
    impulse[4000] = 20000
    up = resample(impulse, 8000, 16000)
    assert len(up) == 16000
    assert np.argmax(up) == 8000
    assert len(resample(np.zeros(100, dtype=np.int16), 48000, 16000)) == 33


def test_long_segments_are_resampled_in_chunks_without_seams():
    rng = np.random.default_rng(1)
    pcm = (rng.standard_normal(8000 * 25 + 123) * 3000).astype(np.int16)
    resampler = AudioResampler(format="s16", layout="mono", rate=16000)
    frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    one_shot = np.concatenate(
        [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    )
    chunked = resample(pcm, 8000, 16000)
    assert len(chunked) == 2 * len(pcm)
    np.testing.assert_array_equal(chunked[: len(one_shot)], one_shot[: len(chunked)])


def test_used_pcm_rates_reports_the_codecs_actually_sent():
    g722_records = packetize(g722.encode(tone(300, 0.1, 16000)), pt=G722_PT, ts_step=BLOCK)
    assert used_pcm_rates(l16_records(3) + g722_records, PAYLOAD_TYPES) == {8000, 16000}
    assert used_pcm_rates(packetize([b"x"] * 3, pt=G729_PT, ts_step=BLOCK), PAYLOAD_TYPES) == set()


def test_empty_input_gives_an_empty_track():
    track = decode([])
    assert len(track.pcm) == 0 and track.dtmf == [] and track.stats.received == 0


def test_out_rate_must_be_positive():
    with pytest.raises(TrackError, match=r"^out_rate must be positive, got 0$"):
        decode([], out_rate=0)


def test_one_minute_of_pcmu_decodes_well_under_100_ms():
    pcm = tone(440, 60.0, 8000)
    encoded = g711.encode(pcm, g711.ULAW)
    records = packetize(
        [encoded[i : i + BLOCK] for i in range(0, len(encoded), BLOCK)], pt=PCMU, ts_step=BLOCK
    )
    assert len(records) == 3000
    best = min(_timed(lambda: decode(records)) for _ in range(3))
    assert best < 0.3  # typically ~25 ms; generous for loaded CI machines


def _timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_payload_type_table_is_used_for_clock_rates():
    types = {PCMU: PayloadType("PCMU", 8000)}
    records = [(T0 + i * 0.02, rtp(i, i * BLOCK, block_payload(i)[:BLOCK], pt=PCMU)) for i in range(5)]
    track = decode_track(records, types, t0=T0, out_rate=8000)
    assert len(track.pcm) == 5 * BLOCK
