import numpy as np
import pytest

from callvault.codecs import g722, opus
from callvault.codecs.g722 import G722Decoder, G722Error
from callvault.codecs.opus import OpusDecoder, OpusError
from callvault.media.audio_compare import envelope_correlation
from tests.rtp.helpers import speak, tone

SPEECH_TEXT = "もしもし、 テスト の でんわ です。 よろしく おねがい します。"


@pytest.fixture(scope="module")
def speech_16k(tmp_path_factory):
    return speak(SPEECH_TEXT, tmp_path_factory.mktemp("speech16"), 16000)


@pytest.fixture(scope="module")
def speech_48k(tmp_path_factory):
    return speak(SPEECH_TEXT, tmp_path_factory.mktemp("speech48"), 48000)


def test_g722_decoder_outputs_16khz_while_the_rtp_clock_is_8khz():
    decoder = G722Decoder()
    assert (decoder.sample_rate, decoder.rtp_clock_rate) == (16000, 8000)
    (payload, *_) = g722.encode(tone(440, 0.1, 16000))
    assert len(payload) == 160
    assert decoder.decode(payload).shape == (320,)


def test_g722_speech_round_trip_keeps_the_energy_envelope(speech_16k):
    decoder = G722Decoder()
    decoded = np.concatenate([decoder.decode(p) for p in g722.encode(speech_16k)])
    assert abs(len(decoded) - len(speech_16k)) < 320
    assert envelope_correlation(speech_16k, 16000, decoded, 16000) >= 0.9


def test_g722_decoder_keeps_state_between_packets():
    pcm = tone(700, 0.5, 16000)
    payloads = g722.encode(pcm)
    first_only = G722Decoder().decode(payloads[0])
    streaming = G722Decoder()
    streamed = np.concatenate([streaming.decode(p) for p in payloads])
    fresh_each_time = np.concatenate([G722Decoder().decode(p) for p in payloads])
    np.testing.assert_array_equal(streamed[:320], first_only)
    # the ADPCM predictor carries over: a fresh decoder per packet gives different (worse) audio
    assert not np.array_equal(streamed, fresh_each_time)
    delay = 22  # the QMF filter bank delay of G.722
    error = streamed[delay + 320 :].astype(float) - pcm[320 : len(streamed) - delay].astype(float)
    assert np.sqrt(np.mean(error**2)) < 0.05 * 8000


def test_g722_empty_payload_decodes_to_nothing_and_conceal_is_silence():
    decoder = G722Decoder()
    assert decoder.decode(b"").shape == (0,)
    assert not decoder.conceal(320).any() and decoder.conceal(320).shape == (320,)


def test_g722_encoder_refuses_float_input():
    with pytest.raises(G722Error, match=r"^G.722 encoder needs int16 samples, got float32$"):
        g722.encode(np.zeros(10, dtype=np.float32))


def test_opus_speech_round_trip_keeps_the_energy_envelope(speech_48k):
    decoder = OpusDecoder(channels=2)
    packets = opus.encode(speech_48k)
    decoded = np.concatenate([decoder.decode(p) for p in packets])
    assert decoded.ndim == 1 and decoded.dtype == np.int16
    assert abs(len(decoded) - len(speech_48k)) <= 2 * 960
    assert envelope_correlation(speech_48k, 48000, decoded, 48000) >= 0.9


def test_opus_decoder_outputs_48khz_mono_one_frame_per_20ms_packet():
    decoder = OpusDecoder(channels=2)
    assert (decoder.sample_rate, decoder.rtp_clock_rate) == (48000, 48000)
    packets = opus.encode(tone(440, 0.2, 48000))
    assert {decoder.decode(p).shape for p in packets} == {(960,)}


def test_opus_decoder_configured_mono_gives_the_same_length():
    packets = opus.encode(tone(440, 0.2, 48000))
    mono = np.concatenate([OpusDecoder(channels=1).decode(p) for p in packets[:3]])
    stereo = np.concatenate([OpusDecoder(channels=2).decode(p) for p in packets[:3]])
    assert mono.shape == stereo.shape


def test_opus_stereo_packet_is_downmixed_to_the_average_of_both_channels():
    import av

    ctx = av.codec.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.format = "s16"
    ctx.layout = "stereo"
    ctx.bit_rate = 128000
    ctx.open()
    left = tone(440, 0.4, 48000, 12000)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(1, -1)
    packets = []
    for start in range(0, stereo.shape[1], 1920):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo[:, start : start + 1920]), "s16", "stereo"
        )
        frame.sample_rate = 48000
        frame.pts = start // 2
        packets += [bytes(p) for p in ctx.encode(frame)]
    decoder = OpusDecoder(channels=2)
    decoded = np.concatenate([decoder.decode(p) for p in packets])
    level = np.sqrt(np.mean(decoded[9600:].astype(float) ** 2))
    expected = 12000 / np.sqrt(2) / 2  # left only, averaged with a silent right channel
    assert level == pytest.approx(expected, rel=0.15)


def test_corrupt_opus_payload_is_counted_and_yields_no_audio():
    decoder = OpusDecoder()
    assert decoder.decode(b"\xff\xff\xff").shape == (0,)
    assert decoder.corrupt == 1


def test_opus_channel_count_must_be_one_or_two():
    with pytest.raises(OpusError, match=r"^Opus over RTP has 1 or 2 channels, got 6$"):
        OpusDecoder(channels=6)


def test_opus_encoder_refuses_non_int16_input():
    with pytest.raises(OpusError, match=r"^Opus encoder needs int16 samples, got int32$"):
        opus.encode(np.zeros(960, dtype=np.int32))
