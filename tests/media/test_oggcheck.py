"""Verifying an Ogg Opus recording from its container instead of decoding it."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from callvault.media.encode import EncodeError, encode_recording, probe_recording, verify_recording
from callvault.media.oggcheck import OggCheckError, check_ogg_opus, ogg_crc32
from tests import audio_fixtures
from tests.audio_fixtures import TwoPartyCall, two_party_call

audio_cache_dir = audio_fixtures.audio_cache_dir


@pytest.fixture(scope="module")
def call_ja(audio_cache_dir: Path) -> TwoPartyCall:
    return two_party_call("ja", cache_dir=audio_cache_dir)


def _reference_crc(data: bytes) -> int:
    """The Ogg CRC straight from RFC 3533: polynomial 0x04C11DB7, MSB first, init 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _pages(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every Ogg page."""
    out = []
    pos = 0
    while pos < len(data):
        nseg = data[pos + 26]
        end = pos + 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
        out.append((pos, end))
        pos = end
    return out


def _fix_crc(page: bytearray) -> bytearray:
    page[22:26] = b"\0\0\0\0"
    page[22:26] = struct.pack("<I", _reference_crc(bytes(page)))
    return page


@pytest.mark.parametrize("data", [b"", b"a", b"OggS\x00\x02", bytes(range(256)) * 5])
def test_the_fast_crc_is_the_ogg_crc(data: bytes) -> None:
    assert ogg_crc32(data) == _reference_crc(data)


@pytest.mark.parametrize(("rate", "channels"), [(8000, 2), (8000, 1), (16000, 2)])
@pytest.mark.parametrize("samples_8k", [1, 479, 481, 8000, 8000 * 7 + 13])
def test_it_reads_the_exact_length_of_a_fresh_file(
    tmp_path: Path, rate: int, channels: int, samples_8k: int
) -> None:
    rng = np.random.default_rng(samples_8k)
    n = samples_8k * rate // 8000
    pcm = rng.normal(0, 3000, size=(n, channels)).astype(np.int16)
    info = encode_recording(pcm if channels == 2 else pcm[:, 0], rate, "opus", tmp_path / "r.opus")
    checked = check_ogg_opus(info.path, channels=channels, sample_rate=rate)
    assert checked.duration == pytest.approx(n / rate, abs=1e-9)
    assert (checked.channels, checked.sample_rate) == (channels, rate)
    assert checked.packets >= 1


def test_it_agrees_with_decoding_on_a_real_call(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    info = encode_recording(call_ja.pcm, 8000, "opus", tmp_path / "call.opus")
    fast = verify_recording(info.path, "opus", channels=2, sample_rate=8000)
    slow = probe_recording(info.path)
    assert fast.duration == pytest.approx(slow.duration, abs=0.001)
    assert (fast.channels, fast.sample_rate, fast.codec) == (slow.channels, slow.sample_rate, slow.codec)


@pytest.fixture
def good(tmp_path: Path, call_ja: TwoPartyCall) -> bytes:
    return encode_recording(call_ja.pcm, 8000, "opus", tmp_path / "good.opus").path.read_bytes()


def _check(tmp_path: Path, data: bytes, **kwargs: int) -> None:
    path = tmp_path / "bad.opus"
    path.write_bytes(data)
    check_ogg_opus(path, **kwargs)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_it_rejects_a_truncated_file(tmp_path: Path, good: bytes, keep: float) -> None:
    with pytest.raises(OggCheckError, match=r"truncated|no end-of-stream|unfinished"):
        _check(tmp_path, good[: int(len(good) * keep)])


def test_it_rejects_a_file_cut_at_a_page_boundary(tmp_path: Path, good: bytes) -> None:
    start, _end = _pages(good)[-1]
    with pytest.raises(OggCheckError, match=r"no end-of-stream page \(file incomplete\)$"):
        _check(tmp_path, good[:start])


def test_it_rejects_a_damaged_byte(tmp_path: Path, good: bytes) -> None:
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0x10
    with pytest.raises(OggCheckError, match=r"CRC mismatch \(damaged page\)$"):
        _check(tmp_path, bytes(damaged))


def test_it_rejects_a_missing_page(tmp_path: Path, good: bytes) -> None:
    pages = _pages(good)
    start, end = pages[len(pages) // 2]
    with pytest.raises(OggCheckError, match=r"page sequence \d+, expected \d+ \(pages missing\)$"):
        _check(tmp_path, good[:start] + good[end:])


def test_it_rejects_a_granule_position_that_does_not_match_the_packets(tmp_path: Path, good: bytes) -> None:
    pages = _pages(good)
    start, end = pages[len(pages) // 2]
    page = bytearray(good[start:end])
    granule = struct.unpack_from("<q", page, 6)[0]
    struct.pack_into("<q", page, 6, granule + 960)
    with pytest.raises(OggCheckError, match=r"does not match the \d+ samples of its packets$"):
        _check(tmp_path, good[:start] + bytes(_fix_crc(page)) + good[end:])


def test_it_rejects_a_final_granule_that_cuts_more_than_the_last_packet(tmp_path: Path, good: bytes) -> None:
    start, end = _pages(good)[-1]
    page = bytearray(good[start:end])
    granule = struct.unpack_from("<q", page, 6)[0]
    struct.pack_into("<q", page, 6, granule - 2881)  # more than one 60 ms packet
    with pytest.raises(OggCheckError, match=r"trims more than the last packet \(\d+ samples\)$"):
        _check(tmp_path, good[:start] + bytes(_fix_crc(page)))


def test_it_rejects_trailing_data_after_the_end(tmp_path: Path, good: bytes) -> None:
    with pytest.raises(OggCheckError, match=r"data after the end-of-stream page$"):
        _check(tmp_path, good + good[:200])


def test_it_rejects_the_wrong_layout(tmp_path: Path, good: bytes) -> None:
    with pytest.raises(OggCheckError, match=r"2 channels, expected 1$"):
        _check(tmp_path, good, channels=1)
    with pytest.raises(OggCheckError, match=r"input rate 8000 Hz, expected 16000$"):
        _check(tmp_path, good, sample_rate=16000)


def test_it_rejects_what_is_not_ogg(tmp_path: Path) -> None:
    with pytest.raises(OggCheckError, match=r"no Ogg capture pattern$"):
        _check(tmp_path, b"RIFF" + bytes(100))
    with pytest.raises(OggCheckError, match=r"no end-of-stream page"):
        _check(tmp_path, b"")
    with pytest.raises(OggCheckError, match=r"cannot read"):
        check_ogg_opus(tmp_path / "absent.opus")


def test_verify_recording_reports_a_bad_opus_file_as_an_encode_error(tmp_path: Path, good: bytes) -> None:
    path = tmp_path / "cut.opus"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(EncodeError, match=r"cut\.opus"):
        verify_recording(path, "opus", channels=2, sample_rate=8000)


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_verify_recording_decodes_lossless_formats(tmp_path: Path, call_ja: TwoPartyCall, fmt: str) -> None:
    info = encode_recording(call_ja.pcm, 8000, fmt, tmp_path / f"r.{fmt}")
    probe = verify_recording(info.path, fmt, channels=2, sample_rate=8000)
    assert probe.duration == pytest.approx(len(call_ja.pcm) / 8000, abs=1e-6)
    with pytest.raises(EncodeError, match=r"2 channels at 8000 Hz, expected 1 at 8000$"):
        verify_recording(info.path, fmt, channels=1, sample_rate=8000)
