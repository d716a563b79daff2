import av
import numpy as np
import pytest

from callvault.codecs import _av, g711
from callvault.codecs.g711 import G711Decoder, G711Error

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def _ffmpeg_decode(codec: str, data: bytes) -> np.ndarray:
    ctx = _av.open_decoder(codec, 8000, 1)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in ctx.decode(av.Packet(data))])


def _ffmpeg_encode(codec: str, pcm: np.ndarray) -> np.ndarray:
    ctx = _av.open_encoder(codec, 8000)
    frame = _av.make_frame(pcm, 8000, 0)
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    return np.frombuffer(data, dtype=np.uint8)


@pytest.mark.parametrize(
    ("code", "value"),
    # ITU-T G.711 table 2 (μ-law), 14-bit values scaled by 4: 0xFF/0x7F are ±0, 0x80/0x00 are ±8031
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xFE, 8), (0x7E, -8), (0xEF, 33 * 4)],
)
def test_ulaw_decoding_matches_itu_values(code, value):
    assert g711.decode(bytes([code]), g711.ULAW)[0] == value


@pytest.mark.parametrize(
    ("code", "value"),
    # ITU-T G.711 table 1 (A-law), 13-bit values scaled by 8: 0xD5/0x55 are ±1, 0xAA/0x2A are ±4032
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0xC5, 264), (0x80, 5504)],
)
def test_alaw_decoding_matches_itu_values(code, value):
    assert g711.decode(bytes([code]), g711.ALAW)[0] == value


@pytest.mark.parametrize(("law", "codec"), [(g711.ULAW, "pcm_mulaw"), (g711.ALAW, "pcm_alaw")])
def test_decoding_tables_equal_ffmpeg_for_all_256_codes(law, codec):
    np.testing.assert_array_equal(g711.decode(ALL_CODES, law), _ffmpeg_decode(codec, ALL_CODES))


@pytest.mark.parametrize("law", [g711.ULAW, g711.ALAW])
def test_encoding_a_decoded_code_gives_back_the_code(law):
    decoded = g711.decode(ALL_CODES, law)
    again = np.frombuffer(g711.encode(decoded, law), dtype=np.uint8)
    expected = np.arange(256, dtype=np.uint8)
    if law == g711.ULAW:
        expected[0x7F] = 0xFF  # negative zero encodes as positive zero
    np.testing.assert_array_equal(again, expected)


def test_ulaw_encoder_uses_the_itu_segment_decision_value():
    # G.711 decision value 4063 (14-bit) separates reconstruction levels 3999 and 4191
    below, above = g711.decode(
        g711.encode(np.array([4062 * 4, 4063 * 4], dtype=np.int16), g711.ULAW), g711.ULAW
    )
    assert (below, above) == (3999 * 4, 4191 * 4)


def test_alaw_encoder_uses_the_itu_segment_decision_value():
    # G.711 A-law: decision value 2048 (13-bit) separates levels 2016 and 2112
    pcm = np.array([2047 * 8, 2048 * 8], dtype=np.int16)
    below, above = g711.decode(g711.encode(pcm, g711.ALAW), g711.ALAW)
    assert (below, above) == (2016 * 8, 2112 * 8)


@pytest.mark.parametrize(("law", "codec"), [(g711.ULAW, "pcm_mulaw"), (g711.ALAW, "pcm_alaw")])
def test_encoder_agrees_with_ffmpeg_except_at_decision_boundaries(law, codec):
    mine = np.frombuffer(g711.encode(ALL_SAMPLES, law), dtype=np.uint8)
    theirs = _ffmpeg_encode(codec, ALL_SAMPLES)
    differ = mine != theirs
    assert differ.mean() < 0.02
    # FFmpeg rounds to the nearest level; ITU uses decision values: both are adjacent levels
    table = g711.ULAW_TO_LINEAR if law == g711.ULAW else g711.ALAW_TO_LINEAR
    a = table[mine[differ]].astype(np.int32)
    b = table[theirs[differ]].astype(np.int32)
    x = ALL_SAMPLES[differ].astype(np.int32)
    assert np.all((np.minimum(a, b) <= x + 8) & (x - 8 <= np.maximum(a, b)))


@pytest.mark.parametrize("law", [g711.ULAW, g711.ALAW])
def test_tone_survives_a_round_trip_with_telephone_quality_snr(law):
    t = np.arange(8000) / 8000
    pcm = (10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    back = G711Decoder(law).decode(g711.encode(pcm, law)).astype(np.float64)
    noise = back - pcm
    snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum(noise**2))
    assert snr > 35


def test_decoder_reports_rates_and_conceals_with_silence():
    decoder = G711Decoder(g711.ALAW)
    assert (decoder.sample_rate, decoder.rtp_clock_rate) == (8000, 8000)
    out = decoder.decode(b"\xd5" * 160)
    assert out.dtype == np.int16 and out.shape == (160,)
    concealed = decoder.conceal(80)
    assert concealed.dtype == np.int16 and concealed.shape == (80,) and not concealed.any()


def test_interleaved_stereo_is_downmixed():
    payload = g711.encode(np.array([1000, 3000] * 4, dtype=np.int16), g711.ULAW)
    out = G711Decoder(g711.ULAW, channels=2).decode(payload)
    assert out.shape == (4,)
    assert abs(int(out[0]) - 2000) < 100


def test_encoder_refuses_non_int16_input():
    with pytest.raises(G711Error, match=r"^G.711 encoder needs int16 samples, got float64$"):
        g711.encode(np.zeros(4), g711.ULAW)  # type: ignore[arg-type]


def test_unknown_law_is_refused():
    with pytest.raises(G711Error, match=r"^unknown G.711 law 'mulaw', expected 'ulaw' or 'alaw'$"):
        g711.decode(b"\0", "mulaw")  # type: ignore[arg-type]
