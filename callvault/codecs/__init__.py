"""RTP audio codecs: a registry from SDP ``rtpmap`` names to stateful decoders.

>>> decoder = get_decoder("PCMU", 8000)
>>> decoder.sample_rate, decoder.rtp_clock_rate
(8000, 8000)
"""

from __future__ import annotations

from collections.abc import Callable

from callvault.codecs.base import Decoder, Pcm, UnsupportedCodec
from callvault.codecs.g711 import ALAW, ULAW, G711Decoder
from callvault.codecs.g722 import G722Decoder
from callvault.codecs.l16 import L16Decoder
from callvault.codecs.opus import OpusDecoder

__all__ = [
    "SUPPORTED_ENCODINGS",
    "Decoder",
    "Pcm",
    "UnsupportedCodec",
    "canonical_name",
    "get_decoder",
    "is_supported",
    "pcm_rate",
]

MAX_CHANNELS = 2


def _pcmu(clock_rate: int, channels: int, fmtp: str | None) -> Decoder:
    return G711Decoder(ULAW, clock_rate, channels)


def _pcma(clock_rate: int, channels: int, fmtp: str | None) -> Decoder:
    return G711Decoder(ALAW, clock_rate, channels)


def _g722(clock_rate: int, channels: int, fmtp: str | None) -> Decoder:
    if channels != 1:
        raise UnsupportedCodec(f"G722 with {channels} channels is not supported (mono only)")
    # RFC 3551 says 8000; a few devices signal (and use) 16000, so trust the SDP.
    return G722Decoder(rtp_clock_rate=clock_rate)


def _opus(clock_rate: int, channels: int, fmtp: str | None) -> Decoder:
    return OpusDecoder(channels=channels, rtp_clock_rate=clock_rate)


def _l16(clock_rate: int, channels: int, fmtp: str | None) -> Decoder:
    return L16Decoder(clock_rate, channels)


_FACTORIES: dict[str, Callable[[int, int, str | None], Decoder]] = {
    "PCMU": _pcmu,
    "PCMA": _pcma,
    "G722": _g722,
    "OPUS": _opus,
    "L16": _l16,
}
SUPPORTED_ENCODINGS = frozenset(_FACTORIES)


def canonical_name(encoding: str) -> str:
    """Registry key for an SDP encoding name (``opus`` → ``OPUS``)."""
    return encoding.strip().upper()


def get_decoder(encoding: str, clock_rate: int, channels: int = 1, fmtp: str | None = None) -> Decoder:
    """A new decoder for one stream; raises :class:`UnsupportedCodec` (G729, GSM, T.38, ...)."""
    name = canonical_name(encoding)
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnsupportedCodec(f"unsupported codec {encoding}/{clock_rate}")
    if clock_rate <= 0:
        raise UnsupportedCodec(f"invalid clock rate {clock_rate} for {encoding}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedCodec(f"{encoding} with {channels} channels is not supported")
    return factory(clock_rate, channels, fmtp)


def is_supported(encoding: str, clock_rate: int = 8000, channels: int = 1, fmtp: str | None = None) -> bool:
    try:
        get_decoder(encoding, clock_rate, channels, fmtp)
    except UnsupportedCodec:
        return False
    return True


def pcm_rate(encoding: str, clock_rate: int, channels: int = 1, fmtp: str | None = None) -> int:
    """The PCM output rate of a codec (16000 for G722 at its 8000 RTP clock)."""
    return get_decoder(encoding, clock_rate, channels, fmtp).sample_rate
