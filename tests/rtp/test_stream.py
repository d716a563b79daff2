import struct

import pytest

from callvault.rtp.dtmf import TelephoneEvent
from callvault.rtp.stream import (
    MAX_DROPOUT,
    Frame,
    PayloadType,
    StreamError,
    StreamProcessor,
)
from tests.rtp.helpers import (
    CN_PT,
    DTMF_PT,
    L16_PT,
    PAYLOAD_TYPES,
    PCMU,
    SSRC_A,
    SSRC_B,
    dtmf_records,
    l16_records,
    rtp,
)


def run(records, window=0.5, types=PAYLOAD_TYPES):
    processor = StreamProcessor(types, reorder_window=window)
    frames = list(processor.process(records))
    return processor, frames


def seqs(frames: list[Frame]) -> list[int]:
    return [f.ext_sequence for f in frames]


def test_in_order_stream_comes_out_unchanged():
    records = l16_records(50)
    processor, frames = run(records)
    assert seqs(frames) == list(range(1000, 1050))
    assert [f.ext_timestamp for f in frames] == [50_000 + 160 * i for i in range(50)]
    assert all(f.ssrc_epoch == 0 and f.payload_type == L16_PT for f in frames)
    assert frames[0].arrival == records[0][0]
    stats = processor.stats
    assert (stats.received, stats.lost, stats.duplicates, stats.late) == (50, 0, 0, 0)
    assert (stats.first_arrival, stats.last_arrival) == (records[0][0], records[-1][0])


def test_packets_reordered_within_the_window_are_put_back_in_order():
    records = l16_records(30)
    shuffled = [*records[:10], records[12], records[10], records[11], *records[13:]]
    # arrival order is the feed order; give swapped packets increasing arrival times
    shuffled = [(10.0 + i * 0.02, data) for i, (_, data) in enumerate(shuffled)]
    processor, frames = run(shuffled)
    assert seqs(frames) == list(range(1000, 1030))
    assert processor.stats.lost == 0


def test_duplicates_are_dropped_and_counted():
    records = l16_records(20)
    doubled = []
    for arrival, data in records:
        doubled += [(arrival, data), (arrival + 0.001, data)]
    doubled.append((records[-1][0] + 2.0, records[3][1]))  # a very old copy long after release
    processor, frames = run(doubled)
    assert seqs(frames) == list(range(1000, 1020))
    assert processor.stats.duplicates == 21
    assert processor.stats.late == 0


def test_gaps_are_counted_as_lost_and_frames_keep_their_timestamps():
    records = [r for i, r in enumerate(l16_records(40)) if i not in (5, 6, 20)]
    processor, frames = run(records)
    assert processor.stats.lost == 3
    assert 1005 not in seqs(frames) and 1020 not in seqs(frames)
    assert frames[5].ext_timestamp == 50_000 + 7 * 160


def test_packet_arriving_after_the_window_is_late_and_dropped():
    records = l16_records(60)
    late = records.pop(10)
    records.append((records[-1][0] + 0.001, late[1]))  # ~1 s late, window 0.5 s
    processor, frames = run(records)
    assert 1010 not in seqs(frames)
    stats = processor.stats
    assert (stats.late, stats.lost, stats.duplicates) == (1, 1, 0)


def test_packet_just_inside_the_window_is_not_late():
    records = l16_records(60)
    delayed = records.pop(10)
    records.insert(30, (delayed[0] + 0.45, delayed[1]))
    records.sort(key=lambda r: r[0])
    processor, frames = run(records)
    assert seqs(frames) == list(range(1000, 1060))
    assert (processor.stats.late, processor.stats.lost) == (0, 0)


def test_sequence_numbers_extend_across_the_16_bit_wrap():
    records = l16_records(20, seq0=65530)
    processor, frames = run(records)
    assert seqs(frames) == list(range(65530, 65550))
    assert processor.stats.lost == 0


def test_wrap_with_reordering_across_the_boundary():
    records = l16_records(12, seq0=65530)
    records[5], records[6] = (records[5][0], records[6][1]), (records[6][0], records[5][1])  # 65535 <-> 0
    _, frames = run(records)
    assert seqs(frames) == list(range(65530, 65542))


def test_timestamps_extend_across_the_32_bit_wrap():
    ts0 = 2**32 - 3 * 160
    _, frames = run(l16_records(8, ts0=ts0))
    assert [f.ext_timestamp for f in frames] == [ts0 + 160 * i for i in range(8)]
    assert frames[-1].ext_timestamp > 2**32


def test_ssrc_change_starts_a_new_epoch():
    first = l16_records(10, ssrc=SSRC_A)
    second = l16_records(10, seq0=7, ts0=999, start=first[-1][0] + 0.02, ssrc=SSRC_B, first_index=10)
    processor, frames = run(first + second)
    assert [f.ssrc_epoch for f in frames] == [0] * 10 + [1] * 10
    assert processor.stats.ssrc_changes == 1
    epochs = processor.epochs
    assert (epochs[0].ssrc, epochs[1].ssrc) == (SSRC_A, SSRC_B)
    assert epochs[1].base_ts == 999
    assert epochs[1].start == pytest.approx(second[0][0])
    assert processor.stats.lost == 0


def test_straggler_of_the_previous_ssrc_is_still_delivered_in_its_epoch():
    first = l16_records(10, ssrc=SSRC_A)
    second = l16_records(10, seq0=7, ts0=999, start=first[-1][0] + 0.02, ssrc=SSRC_B)
    straggler = first.pop(8)
    records = first + second[:2] + [(second[1][0] + 0.01, straggler[1])] + second[2:]
    processor, frames = run(records)
    assert [(f.ssrc_epoch, f.ext_sequence) for f in frames][:10] == [(0, 1000 + i) for i in range(10)]
    assert processor.stats.ssrc_changes == 1
    assert processor.stats.late == 0


def test_straggler_of_the_previous_ssrc_arriving_after_the_window_is_late():
    first = l16_records(10, ssrc=SSRC_A)
    second = l16_records(60, seq0=7, ts0=999, start=first[-1][0] + 0.02, ssrc=SSRC_B)
    straggler = first.pop(8)
    records = first + second[:50] + [(second[49][0] + 0.001, straggler[1])] + second[50:]
    processor, frames = run(records)
    assert {f.ssrc_epoch for f in frames} == {0, 1}
    stats = processor.stats
    assert (stats.ssrc_changes, stats.late, stats.lost) == (1, 1, 1)


def test_return_to_an_old_ssrc_after_a_while_is_another_epoch():
    a1 = l16_records(5, ssrc=SSRC_A)
    b = l16_records(5, seq0=1, ts0=0, start=11.0, ssrc=SSRC_B)
    a2 = l16_records(5, seq0=1005, ts0=50_000 + 800, start=12.0, ssrc=SSRC_A)
    processor, frames = run(a1 + b + a2)
    assert sorted({f.ssrc_epoch for f in frames}) == [0, 1, 2]
    assert processor.stats.ssrc_changes == 2


def test_confirmed_sequence_jump_restarts_the_epoch_without_counting_loss():
    first = l16_records(10)
    restarted = l16_records(10, seq0=1000 + 10 + MAX_DROPOUT + 500, ts0=777, start=first[-1][0] + 0.02)
    processor, frames = run(first + restarted)
    assert [f.ssrc_epoch for f in frames] == [0] * 10 + [1] * 10
    stats = processor.stats
    assert (stats.restarts, stats.lost, stats.ssrc_changes, stats.dropped_malformed) == (1, 0, 0, 0)


def test_a_sender_replaying_its_sequence_after_a_pause_is_a_restart_not_duplicates():
    # sipp replaying a pcap after hold, or a device that resets its counters: the same
    # sequence numbers and timestamps come again seconds later (RFC 3550 A.1: more than
    # MAX_MISORDER behind is a restart candidate, not a duplicate)
    first = l16_records(200, seq0=5000, ts0=9000, start=100.0)
    replay = l16_records(200, seq0=5000, ts0=9000, start=first[-1][0] + 3.0)
    processor, frames = run(first + replay)
    stats = processor.stats
    assert (stats.duplicates, stats.late, stats.restarts, stats.received) == (0, 0, 1, 400)
    assert [f.ssrc_epoch for f in frames] == [0] * 200 + [1] * 200
    timing = processor.epochs
    assert timing[1].start - timing[0].start == pytest.approx(200 * 0.02 + 3.0 - 0.02, abs=0.001)


def test_a_duplicate_within_the_misorder_range_is_still_a_duplicate():
    records = l16_records(150, seq0=10, ts0=0, start=0.0)
    records.append((records[-1][0] + 0.5, records[60][1]))  # 89 packets behind, half a second later
    processor, _ = run(records)
    assert (processor.stats.duplicates, processor.stats.restarts) == (1, 0)


def test_single_wild_sequence_number_is_dropped_as_malformed():
    records = l16_records(20)
    records.insert(10, (records[9][0] + 0.001, rtp(30_000, 1, b"\0\0", pt=L16_PT)))
    processor, frames = run(records)
    assert seqs(frames) == list(range(1000, 1020))
    assert (processor.stats.dropped_malformed, processor.stats.restarts) == (1, 0)


def test_restart_in_the_very_last_packet_is_kept_at_finish():
    records = l16_records(10)
    records.append((records[-1][0] + 0.02, rtp(40_000, 5, b"\0\1" * 160, pt=L16_PT)))
    processor, frames = run(records)
    assert [f.ssrc_epoch for f in frames] == [0] * 10 + [1]
    assert frames[-1].ext_sequence == 40_000
    assert (processor.stats.restarts, processor.stats.dropped_malformed) == (1, 0)


def test_timestamp_jump_with_continuous_sequence_starts_a_new_epoch():
    first = l16_records(10)
    # sequence continues, timestamp jumps back by an hour of samples, arrivals keep going
    second = l16_records(10, seq0=1010, ts0=5, start=first[-1][0] + 0.02, first_index=10)
    processor, frames = run(first + second)
    assert [f.ssrc_epoch for f in frames] == [0] * 10 + [1] * 10
    assert processor.stats.restarts == 1
    assert processor.epochs[1].start == pytest.approx(second[0][0])


def test_timestamps_that_advance_with_arrivals_across_silence_keep_one_epoch():
    first = l16_records(10)
    # 3 s of DTX: timestamps and arrivals both jump
    second = l16_records(10, seq0=1010, ts0=50_000 + 10 * 160 + 24_000, start=first[-1][0] + 3.02)
    processor, frames = run(first + second)
    assert {f.ssrc_epoch for f in frames} == {0}
    assert processor.stats.restarts == 0


def test_malformed_datagrams_are_counted_and_skipped():
    records = l16_records(5)
    records.insert(2, (records[1][0], b"\x80\x00"))
    records.insert(3, (records[1][0], b"\x40" + b"\0" * 20))
    processor, frames = run(records)
    assert len(frames) == 5
    assert processor.stats.dropped_malformed == 2
    assert processor.stats.received == 5


def test_muxed_rtcp_is_skipped_and_counted():
    records = l16_records(5)
    sender_report = struct.pack("!BBHI", 0x80, 200, 6, SSRC_A) + b"\0" * 20
    receiver_report = struct.pack("!BBHI", 0x81, 201, 7, SSRC_A) + b"\0" * 24
    records[2:2] = [(records[1][0], sender_report), (records[1][0], receiver_report)]
    processor, frames = run(records)
    assert len(frames) == 5
    assert processor.stats.rtcp == 2
    assert processor.stats.dropped_malformed == 0


def test_unknown_payload_type_is_counted_separately_and_does_not_look_like_loss():
    records = l16_records(10)
    records[4] = (records[4][0], rtp(1004, 50_000 + 4 * 160, b"\0" * 10, pt=77))
    foreign = (records[6][0], rtp(1, 2, b"", pt=78, ssrc=0x9999))
    records.insert(7, foreign)
    processor, frames = run(records)
    assert 1004 not in seqs(frames)
    stats = processor.stats
    assert (stats.unknown_pt, stats.lost, stats.ssrc_changes, stats.received) == (2, 0, 0, 9)


def test_comfort_noise_passes_through_as_a_silence_marker():
    records = l16_records(6)
    records.insert(3, (records[2][0] + 0.01, rtp(1003, 50_000 + 3 * 160, b"\x40", pt=CN_PT)))
    records = [(a, d) for a, d in records]
    # renumber the following packets to keep the sequence contiguous
    fixed = records[:4] + [
        (a, rtp(1004 + i, 50_000 + (4 + i) * 160, b"\0\1" * 160, pt=L16_PT))
        for i, (a, _) in enumerate(records[4:])
    ]
    _, frames = run(fixed, types={L16_PT: PayloadType("L16", 8000)})
    assert [f.comfort_noise for f in frames] == [False, False, False, True, False, False, False]
    assert frames[3].payload_type == CN_PT


def test_telephone_events_go_to_the_detector_and_never_become_frames():
    audio = l16_records(10)
    events = dtmf_records(5, seq0=1010, start_ts=50_000 + 1600, start=audio[-1][0] + 0.02)
    after = l16_records(5, seq0=1010 + len(events), ts0=50_000 + 1600 + 3200, start=events[-1][0] + 0.02)
    processor, frames = run(audio + events + after)
    assert all(f.payload_type == L16_PT for f in frames)
    assert len(frames) == 15
    (event,) = processor.dtmf
    assert (event.digit, event.start_ts, event.duration_samples, event.ssrc_epoch) == ("5", 51_600, 2000, 0)
    assert processor.stats.lost == 0
    assert processor.stats.received == 15 + len(events)


def test_dtmf_end_packets_reordered_and_duplicated_still_give_one_event():
    events = dtmf_records(11, seq0=1, start_ts=8000, start=1.0)
    events = [*events[:2], events[3], events[2], *events[4:], (events[-1][0] + 0.01, events[-1][1])]
    events = [(1.0 + i * 0.05, d) for i, (_, d) in enumerate(events)]
    processor, _ = run(events)
    assert [e.digit for e in processor.dtmf] == ["#"]


def test_jitter_follows_rfc3550_for_alternating_delay():
    records = l16_records(400)
    jittered = [(a + (0.010 if i % 2 else 0.0), d) for i, (a, d) in enumerate(records)]
    processor, _ = run(jittered)
    assert processor.stats.jitter == pytest.approx(10.0, abs=0.01)


def test_jitter_is_zero_for_perfectly_paced_packets():
    processor, _ = run(l16_records(100))
    assert processor.stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_finish_releases_packets_still_waiting_behind_a_gap():
    records = l16_records(10)
    del records[7]
    processor = StreamProcessor(PAYLOAD_TYPES)
    for arrival, data in records:
        processor.feed(arrival, data)
    early = list(processor.frames())
    assert len(early) < 9  # the tail is still waiting for the missing packet
    processor.finish()
    assert seqs(early + list(processor.frames())) == [1000 + i for i in range(10) if i != 7]
    assert processor.stats.lost == 1


def test_first_packet_waits_for_an_earlier_one_that_arrives_second():
    records = l16_records(5)
    records[0], records[1] = (records[0][0], records[1][1]), (records[1][0], records[0][1])
    processor, frames = run(records)
    assert seqs(frames) == list(range(1000, 1005))
    assert processor.stats.late == 0


def test_frames_are_emitted_incrementally_during_feeding():
    processor = StreamProcessor(PAYLOAD_TYPES)
    released = 0
    for arrival, data in l16_records(100):
        processor.feed(arrival, data)
        released += len(list(processor.frames()))
    assert released >= 70


def test_feeding_after_finish_is_an_error():
    processor = StreamProcessor(PAYLOAD_TYPES)
    processor.finish()
    with pytest.raises(StreamError, match=r"^feed\(\) called after finish\(\)$"):
        processor.feed(1.0, rtp(1, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reorder_window": -1}, "reorder_window must be >= 0 seconds, got -1"),
        ({"timestamp_jump_tolerance": 0}, "timestamp_jump_tolerance must be > 0 seconds, got 0"),
        ({"payload_types": {0: PayloadType("PCMU", 0)}}, "payload type 0 has invalid clock rate 0"),
    ],
)
def test_invalid_configuration_is_rejected(kwargs, message):
    with pytest.raises(StreamError) as info:
        StreamProcessor(**{"payload_types": PAYLOAD_TYPES, **kwargs})
    assert str(info.value) == message


def test_pcmu_packets_with_header_extension_take_the_slow_path_correctly():
    from callvault.rtp.packet import RtpPacket

    records = [
        (1.0 + i * 0.02, bytes(RtpPacket(PCMU, i, i * 160, SSRC_A, b"\xff" * 160, csrc=[5], padding=3)))
        for i in range(5)
    ]
    _, frames = run(records)
    assert [len(f.payload) for f in frames] == [160] * 5


def test_dtmf_packet_telephone_event_payload_is_not_mistaken_for_malformed():
    record = (1.0, rtp(1, 0, bytes(TelephoneEvent(1, True, 0, 800)), pt=DTMF_PT, marker=True))
    processor, frames = run([record])
    assert frames == []
    assert [e.digit for e in processor.dtmf] == ["1"]


def test_telephone_event_with_an_implausible_timestamp_is_dropped_as_malformed():
    audio = l16_records(10)
    wild = (
        audio[-1][0] + 0.01,
        rtp(1010, 50_000 + 8000 * 600, bytes(TelephoneEvent(3, True, 0, 800)), pt=DTMF_PT),
    )
    processor, frames = run([*audio, wild])
    assert len(frames) == 10
    assert processor.dtmf == []
    assert processor.stats.dropped_malformed == 1


def test_epoch_opened_by_a_telephone_event_is_anchored_on_its_first_audio():
    events = dtmf_records(2, seq0=1, start_ts=999_999, start=5.0)  # bogus event timestamp base
    audio = l16_records(5, seq0=1 + len(events), ts0=80_000, start=5.5)
    processor, frames = run(events + audio)
    timing = processor.epochs[frames[0].ssrc_epoch]
    assert timing.base_ts == 80_000
    assert timing.time_of(80_000) == pytest.approx(5.5)
