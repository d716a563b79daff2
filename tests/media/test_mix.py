import numpy as np
import pytest

from callvault.media.mix import MixError, choose_out_rate, mix_mono, mix_stereo
from callvault.media.track import DecodedTrack
from callvault.rtp.stream import StreamStats


def track(values, start, rate=8000):
    return DecodedTrack(
        pcm=np.asarray(values, dtype=np.int16),
        start=start,
        stats=StreamStats(),
        dtmf=[],
        codecs=frozenset({"PCMU"}),
        unsupported=False,
        sample_rate=rate,
    )


def test_stereo_puts_caller_left_and_a_delayed_callee_right():
    left = track(np.full(8000, 100), 0.0)
    right = track(np.full(4000, -200), 0.75)
    out = mix_stereo(left, right, out_rate=8000)
    assert out.shape == (6000 + 4000, 2) and out.dtype == np.int16
    assert np.all(out[:8000, 0] == 100) and not out[8000:, 0].any()
    assert not out[:6000, 1].any() and np.all(out[6000:, 1] == -200)


def test_missing_side_is_silence():
    out = mix_stereo(None, track([5, 6, 7], 0.001), out_rate=8000)
    assert out.shape == (11, 2)
    assert not out[:, 0].any()
    assert out[8:, 1].tolist() == [5, 6, 7]


def test_both_sides_missing_gives_an_empty_or_silent_mix():
    assert mix_stereo(None, None, out_rate=8000).shape == (0, 2)
    silent = mix_stereo(None, None, out_rate=8000, duration=0.5)
    assert silent.shape == (4000, 2) and not silent.any()


def test_duration_pads_and_truncates():
    left = track(np.full(8000, 1), 0.0)
    assert mix_stereo(left, None, out_rate=8000, duration=2.0).shape == (16000, 2)
    cut = mix_stereo(left, None, out_rate=8000, duration=0.5)
    assert cut.shape == (4000, 2) and np.all(cut[:, 0] == 1)


def test_track_starting_before_t0_loses_only_its_leading_part():
    out = mix_stereo(track([1, 2, 3, 4], -2 / 8000), None, out_rate=8000)
    assert out[:, 0].tolist() == [3, 4]


def test_tracks_at_another_rate_are_refused():
    with pytest.raises(MixError, match=r"^track is at 16000 Hz but the mix is at 8000 Hz$"):
        mix_stereo(track([1], 0.0, rate=16000), None, out_rate=8000)


def test_negative_duration_is_refused():
    with pytest.raises(MixError, match=r"^duration must be >= 0 seconds, got -1$"):
        mix_stereo(None, None, out_rate=8000, duration=-1)


def test_mono_mix_sums_tracks_at_their_starts_and_saturates():
    a = track([30000, 30000, 10], 0.0)
    b = track([30000, -5], 1 / 8000)
    out = mix_mono([a, b, None], out_rate=8000)
    assert out.dtype == np.int16
    assert out.tolist() == [30000, 32767, 5]


def test_mono_mix_of_a_single_stream_is_that_stream_placed_at_its_start():
    out = mix_mono([track([7, 8], 0.5)])
    assert len(out) == 4002 and out[4000:].tolist() == [7, 8] and not out[:4000].any()


@pytest.mark.parametrize(
    ("rates", "kwargs", "expected"),
    [
        ([8000, 8000], {}, 8000),
        ([8000, 16000], {}, 16000),
        ([48000], {}, 16000),
        ([48000, 8000], {"max_rate": 48000}, 48000),
        ([], {}, 8000),
        ([16000], {"max_rate": 8000}, 8000),
    ],
)
def test_out_rate_is_narrowband_unless_a_wideband_codec_is_present(rates, kwargs, expected):
    assert choose_out_rate(rates, **kwargs) == expected


def test_out_rate_cap_below_narrowband_is_refused():
    with pytest.raises(MixError, match=r"^max_rate must be at least 8000, got 4000$"):
        choose_out_rate([8000], max_rate=4000)


def test_mono_mix_of_tracks_at_different_rates_is_refused():
    with pytest.raises(MixError, match=r"^track is at 16000 Hz but the mix is at 8000 Hz$"):
        mix_mono([track([1], 0.0), track([1], 0.0, rate=16000)])
