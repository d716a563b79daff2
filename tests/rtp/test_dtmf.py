import pytest

from callvault.rtp.dtmf import FLASH, DtmfDetector, DtmfError, DtmfEvent, TelephoneEvent


def _run(detector, event, ts, *, updates=3, step=400, ends=3, epoch=0):
    """Feed one RFC 4733 run; return everything emitted."""
    out = []
    for i in range(updates + 1):
        payload = bytes(TelephoneEvent(event, False, 10, i * step))
        out += detector.feed(ts, payload, marker=i == 0, ssrc_epoch=epoch)
    final = bytes(TelephoneEvent(event, True, 10, (updates + 1) * step))
    for _ in range(ends):
        out += detector.feed(ts, final, ssrc_epoch=epoch)
    return out


def test_telephone_event_payload_round_trips():
    tev = TelephoneEvent(event=11, end=True, volume=63, duration=0xFFFF)
    assert bytes(tev) == b"\x0b\xbf\xff\xff"
    assert TelephoneEvent.parse(b"\x0b\xbf\xff\xff") == tev
    assert tev.digit == "#"


def test_reserved_bit_is_ignored_when_parsing():
    assert TelephoneEvent.parse(b"\x05\x4a\x00\xa0") == TelephoneEvent(5, False, 10, 160)


def test_short_telephone_event_payload_is_rejected():
    with pytest.raises(DtmfError, match=r"^telephone-event payload too short: 3 bytes, need 4$"):
        TelephoneEvent.parse(b"\x01\x02\x03")


@pytest.mark.parametrize(
    ("tev", "message"),
    [
        (TelephoneEvent(256, False, 0, 0), "event code 256 out of range 0-255"),
        (TelephoneEvent(1, False, 64, 0), "volume 64 out of range 0-63"),
        (TelephoneEvent(1, False, 0, 65536), "duration 65536 out of range 0-65535"),
    ],
)
def test_out_of_range_telephone_event_fields_are_refused(tev, message):
    with pytest.raises(DtmfError) as info:
        bytes(tev)
    assert str(info.value) == message


def test_redundant_updates_and_three_end_packets_give_one_event():
    detector = DtmfDetector()
    events = _run(detector, 5, 8000)
    assert events == [DtmfEvent(digit="5", start_ts=8000, duration_samples=1600)]
    assert detector.finish() == []
    assert detector.events == events
    assert events[0].duration == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("code", "digit"),
    [
        *((d, str(d)) for d in range(10)),
        (10, "*"),
        (11, "#"),
        (12, "A"),
        (13, "B"),
        (14, "C"),
        (15, "D"),
        (16, FLASH),
    ],
)
def test_every_dtmf_event_code_maps_to_its_digit(code, digit):
    events = _run(DtmfDetector(), code, 0)
    assert [e.digit for e in events] == [digit]


def test_same_digit_pressed_twice_gives_two_events():
    detector = DtmfDetector()
    events = _run(detector, 1, 1000) + _run(detector, 1, 5000)
    assert [(e.digit, e.start_ts) for e in events] == [("1", 1000), ("1", 5000)]


def test_event_whose_end_packets_were_lost_is_emitted_when_the_next_starts():
    detector = DtmfDetector()
    first = _run(detector, 7, 1000, ends=0)
    assert first == []
    second = _run(detector, 8, 9000)
    assert [(e.digit, e.start_ts, e.duration_samples) for e in second] == [
        ("7", 1000, 1200),
        ("8", 9000, 1600),
    ]


def test_event_whose_end_packets_were_lost_is_emitted_at_finish():
    detector = DtmfDetector()
    assert _run(detector, 9, 1000, ends=0) == []
    assert [(e.digit, e.duration_samples) for e in detector.finish()] == [("9", 1200)]
    assert detector.finish() == []


def test_late_end_copy_after_a_new_event_is_not_reported_again():
    detector = DtmfDetector()
    _run(detector, 2, 1000)
    _run(detector, 3, 5000)
    late_end = bytes(TelephoneEvent(2, True, 10, 1600))
    assert detector.feed(1000, late_end) == []
    assert [e.digit for e in detector.events] == ["2", "3"]


def test_same_timestamp_in_another_epoch_is_a_new_event():
    detector = DtmfDetector()
    events = _run(detector, 4, 1000, epoch=0) + _run(detector, 4, 1000, epoch=1)
    assert [(e.digit, e.ssrc_epoch) for e in events] == [("4", 0), ("4", 1)]


def test_long_event_sent_as_segments_is_merged():
    detector = DtmfDetector()
    first = bytes(TelephoneEvent(0, False, 10, 0xFFFF))
    assert detector.feed(100, bytes(TelephoneEvent(0, False, 10, 0)), marker=True) == []
    assert detector.feed(100, first) == []
    events = detector.feed(100 + 0xFFFF, bytes(TelephoneEvent(0, True, 10, 800)))
    assert [(e.digit, e.start_ts, e.duration_samples) for e in events] == [("0", 100, 0xFFFF + 800)]


def test_malformed_and_non_dtmf_payloads_are_counted_not_reported():
    detector = DtmfDetector()
    assert detector.feed(0, b"\x01") == []
    assert detector.feed(0, bytes(TelephoneEvent(36, True, 10, 800))) == []  # fax CNG tone
    assert (detector.malformed, detector.ignored, detector.events) == (1, 1, [])


def test_duration_uses_the_detector_clock_rate():
    detector = DtmfDetector(clock_rate=48000)
    (event,) = _run(detector, 3, 0, step=4800)
    assert event.clock_rate == 48000
    assert event.duration == pytest.approx(4 * 4800 / 48000)
