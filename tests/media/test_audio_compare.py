from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callvault.media.audio_compare import (
    AudioCompareError,
    energy_envelope,
    envelope_correlation,
    find_silence,
)
from tests import audio_fixtures
from tests.audio_fixtures import SpeechSynthesisError, synthesize, two_party_call

RATE = 8000
audio_cache_dir = audio_fixtures.audio_cache_dir


def _tone(seconds: float, amplitude: float, freq: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _bursts(pattern: list[int], seed: int, rate: int = RATE, unit_s: float = 0.25) -> np.ndarray:
    """Noise bursts switched on/off per ``unit_s`` by pattern: a crude speech envelope."""
    rng = np.random.default_rng(seed)
    unit = int(unit_s * rate)
    gains = np.repeat(np.array(pattern, dtype=float), unit)
    return (rng.normal(0, 3000, size=len(gains)) * gains + rng.normal(0, 3, size=len(gains))).astype(np.int16)


PATTERN = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0]


def test_envelope_of_a_sine_is_its_power_in_dbfs() -> None:
    env = energy_envelope(_tone(1.0, 16384, freq=500), RATE, frame_ms=20)  # whole periods per frame
    assert env.shape == (50,)
    expected = 20 * np.log10(0.5 / np.sqrt(2))  # -9.03 dBFS
    assert np.allclose(env, expected, atol=0.01)


def test_envelope_of_digital_silence_is_the_floor_and_partial_frames_are_dropped() -> None:
    env = energy_envelope(np.zeros(8100, np.int16), RATE, frame_ms=20)
    assert env.shape == (50,)
    assert np.all(env == -100.0)
    assert energy_envelope(np.zeros(10, np.int16), RATE).shape == (0,)


def test_identical_and_delayed_signals_correlate_fully() -> None:
    a = _bursts(PATTERN, seed=1)
    assert envelope_correlation(a, RATE, a, RATE) == pytest.approx(1.0)
    delayed = np.concatenate([np.zeros(int(0.12 * RATE), np.int16), a])
    assert envelope_correlation(a, RATE, delayed, RATE, max_lag_ms=200) > 0.95
    assert envelope_correlation(a, RATE, delayed, RATE, max_lag_ms=50) < 0.8


def test_signals_at_different_rates_are_compared_on_the_same_time_grid() -> None:
    a8 = _bursts(PATTERN, seed=2)
    a48 = np.repeat(a8, 6)  # same audio, 48 kHz
    assert envelope_correlation(a8, 8000, a48, 48000) > 0.99


def test_complementary_talkers_score_far_below_a_match_even_at_their_best_lag() -> None:
    caller = _bursts(PATTERN, seed=3)
    callee = _bursts([1 - p for p in PATTERN], seed=4)
    assert envelope_correlation(caller, RATE, callee, RATE, max_lag_ms=0) < -0.99
    assert envelope_correlation(caller, RATE, callee, RATE, max_lag_ms=200) < 0.2


def test_different_speech_scores_far_below_same_speech(audio_cache_dir: Path) -> None:
    call = two_party_call("en", cache_dir=audio_cache_dir, g711=False)
    caller, callee = call.pcm[:, 0], call.pcm[:, 1]
    assert envelope_correlation(caller, RATE, caller, RATE) == pytest.approx(1.0)
    assert envelope_correlation(caller, RATE, callee, RATE) < 0.0


def test_constant_envelope_correlates_as_zero() -> None:
    silence = np.zeros(RATE, np.int16)
    assert envelope_correlation(silence, RATE, _bursts(PATTERN[:4], seed=5), RATE) == 0.0


def test_bad_inputs_raise() -> None:
    stereo = np.zeros((RATE, 2), np.int16)
    with pytest.raises(
        AudioCompareError, match=r"^pcm must be mono \(n,\), got shape \(8000, 2\); pass one channel$"
    ):
        energy_envelope(stereo, RATE)
    with pytest.raises(AudioCompareError, match=r"^7 ms is not a whole number of samples at 11025 Hz$"):
        energy_envelope(np.zeros(100, np.int16), 11025, frame_ms=7)
    with pytest.raises(AudioCompareError, match=r"^sample rate must be positive, got 0$"):
        energy_envelope(np.zeros(100, np.int16), 0)
    with pytest.raises(AudioCompareError, match=r"^signals too short to compare: 10 frames of 10 ms"):
        envelope_correlation(np.zeros(800, np.int16), RATE, np.zeros(8000, np.int16), RATE)
    with pytest.raises(AudioCompareError, match=r"^min_ms must be positive, got 0$"):
        find_silence(np.zeros(800, np.int16), RATE, 0)


def test_find_silence_locates_inserted_gaps_to_the_sample() -> None:
    pcm = _tone(3.0, 10000)
    pcm[4003:4803] = 0  # 100 ms gap, not frame-aligned
    pcm[12000:12240] = 0  # 30 ms gap: shorter than min_ms
    pcm[16001:20001] = 0  # 500 ms gap
    spans = find_silence(pcm, RATE, min_ms=60)
    assert len(spans) == 2
    (s1, e1), (s2, e2) = spans
    # A sine sample next to a gap can itself be ~0 (a zero crossing): allow one sample.
    tolerance = 1.01 / RATE
    assert abs(s1 - 4003 / RATE) <= tolerance and abs(e1 - 4803 / RATE) <= tolerance
    assert abs(s2 - 16001 / RATE) <= tolerance and abs(e2 - 20001 / RATE) <= tolerance
    assert len(find_silence(pcm, RATE, min_ms=20)) == 3


def test_find_silence_treats_low_noise_as_silence_and_louder_noise_as_sound() -> None:
    rng = np.random.default_rng(9)
    quiet = rng.normal(0, 3, size=RATE).astype(np.int16)  # about -80 dBFS
    loud = rng.normal(0, 300, size=RATE).astype(np.int16)  # about -40 dBFS
    assert find_silence(quiet, RATE, min_ms=500) == [(0.0, 1.0)]
    assert find_silence(loud, RATE, min_ms=10) == []
    pcm = np.concatenate([loud, quiet, loud])
    ((start, end),) = find_silence(pcm, RATE, min_ms=200)
    assert abs(start - 1.0) <= 0.005 and abs(end - 2.0) <= 0.005


def test_find_silence_includes_a_quiet_partial_last_frame() -> None:
    pcm = np.concatenate([_tone(0.5, 8000), np.zeros(int(0.2 * RATE) + 3, np.int16)])
    ((start, end),) = find_silence(pcm, RATE, min_ms=100)
    assert end == len(pcm) / RATE
    assert abs(start - 0.5) <= 1 / RATE


def test_speech_fixture_refuses_text_espeak_would_spell_out(audio_cache_dir: Path) -> None:
    with pytest.raises(
        SpeechSynthesisError,
        match=r"would spell '山田' as letters \(switches to en\); write Japanese in kana$",
    ):
        synthesize("山田", "ja", cache_dir=audio_cache_dir)


def test_speech_fixture_explains_how_to_install_espeak(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        SpeechSynthesisError, match=r"^espeak-ng not found on PATH: install espeak-ng: make test installs it$"
    ):
        synthesize("hello", cache_dir=tmp_path)


def test_speech_fixture_returns_8k_mono_int16_and_caches_it(audio_cache_dir: Path) -> None:
    first = synthesize("Hello, this is a test.", "en-us", cache_dir=audio_cache_dir)
    assert first.dtype == np.int16 and first.ndim == 1
    assert 0.5 < len(first) / RATE < 5
    assert np.abs(first).max() > 3000
    again = synthesize("Hello, this is a test.", "en-us", cache_dir=audio_cache_dir)
    assert np.array_equal(first, again)
    assert len(list(audio_cache_dir.glob("*-8000.wav"))) >= 1
