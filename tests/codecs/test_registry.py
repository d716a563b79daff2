import numpy as np
import pytest

from callvault.codecs import (
    Decoder,
    UnsupportedCodec,
    canonical_name,
    get_decoder,
    is_supported,
    l16,
    pcm_rate,
)


@pytest.mark.parametrize(
    ("encoding", "clock", "channels", "rate", "rtp_clock"),
    [
        ("PCMU", 8000, 1, 8000, 8000),
        ("pcmu", 8000, 1, 8000, 8000),
        ("Pcma", 8000, 1, 8000, 8000),
        ("G722", 8000, 1, 16000, 8000),
        ("g722", 16000, 1, 16000, 16000),
        ("opus", 48000, 2, 48000, 48000),
        ("OPUS", 48000, 1, 48000, 48000),
        ("L16", 16000, 1, 16000, 16000),
    ],
)
def test_registry_builds_decoders_case_insensitively(encoding, clock, channels, rate, rtp_clock):
    decoder = get_decoder(encoding, clock, channels)
    assert isinstance(decoder, Decoder)
    assert (decoder.sample_rate, decoder.rtp_clock_rate) == (rate, rtp_clock)
    assert is_supported(encoding, clock, channels)
    assert pcm_rate(encoding, clock, channels) == rate


@pytest.mark.parametrize("encoding", ["G729", "GSM", "t38", "G723", "AMR", "iLBC", "telephone-event", "CN"])
def test_unsupported_codecs_raise_with_the_codec_named(encoding):
    with pytest.raises(UnsupportedCodec) as info:
        get_decoder(encoding, 8000)
    assert str(info.value) == f"unsupported codec {encoding}/8000"
    assert not is_supported(encoding, 8000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("PCMU", 0), "invalid clock rate 0 for PCMU"),
        (("PCMU", 8000, 3), "PCMU with 3 channels is not supported"),
        (("G722", 8000, 2), "G722 with 2 channels is not supported (mono only)"),
    ],
)
def test_invalid_parameters_of_known_codecs_are_unsupported(args, message):
    with pytest.raises(UnsupportedCodec) as info:
        get_decoder(*args)
    assert str(info.value) == message


def test_each_call_returns_an_independent_stateful_decoder():
    assert get_decoder("G722", 8000) is not get_decoder("G722", 8000)


def test_canonical_names_are_upper_case():
    assert canonical_name(" opus ") == "OPUS"


def test_l16_decodes_network_byte_order():
    decoder = get_decoder("L16", 8000)
    out = decoder.decode(l16.encode(np.array([1, -2, 300], dtype=np.int16)))
    np.testing.assert_array_equal(out, [1, -2, 300])
    assert decoder.decode(b"\x00\x01\x02").shape == (1,)
    assert decoder.corrupt == 1
