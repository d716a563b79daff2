from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import pytest
from pesq import pesq

from callvault.media import encode as encode_module
from callvault.media.audio_compare import envelope_correlation
from callvault.media.encode import (
    EncodeError,
    decode_recording,
    encode_recording,
    probe_recording,
    sha256_file,
)
from tests import audio_fixtures
from tests.audio_fixtures import TwoPartyCall, two_party_call

audio_cache_dir = audio_fixtures.audio_cache_dir


@pytest.fixture(scope="module")
def call_ja(audio_cache_dir: Path) -> TwoPartyCall:
    return two_party_call("ja", cache_dir=audio_cache_dir)


@pytest.fixture(scope="module")
def call_en_16k(audio_cache_dir: Path) -> TwoPartyCall:
    return two_party_call("en", rate=16000, cache_dir=audio_cache_dir)


def _first_ogg_packets(path: Path, count: int) -> list[bytes]:
    """The first ``count`` packets of an Ogg stream (enough to reach OpusHead/OpusTags)."""
    data = path.read_bytes()
    packets: list[bytes] = []
    current = b""
    pos = 0
    while len(packets) < count:
        assert data[pos : pos + 4] == b"OggS", f"no Ogg page at {pos}"
        segments = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + segments]
        body = pos + 27 + segments
        for size in lacing:
            current += data[body : body + size]
            body += size
            if size < 255:
                packets.append(current)
                current = b""
        pos = body
    return packets


def _opus_head(path: Path) -> dict[str, Any]:
    head = _first_ogg_packets(path, 1)[0]
    assert head[:8] == b"OpusHead"
    version, channels, _pre_skip, rate, gain, family = struct.unpack_from("<BBHIhB", head, 8)
    info: dict[str, Any] = {
        "version": version,
        "channels": channels,
        "rate": rate,
        "gain": gain,
        "family": family,
    }
    if family != 0:
        info["streams"], info["coupled"] = head[19], head[20]
        info["mapping"] = list(head[21 : 21 + channels])
    return info


def test_stereo_opus_is_two_uncoupled_mono_streams(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    info = encode_recording(call_ja.pcm, 8000, "opus", tmp_path / "call.opus")
    assert _opus_head(info.path) == {
        "version": 1,
        "channels": 2,
        "rate": 8000,
        "gain": 0,
        "family": 255,
        "streams": 2,
        "coupled": 0,
        "mapping": [0, 1],
    }
    assert (info.format, info.codec, info.channels, info.sample_rate) == ("opus", "opus", 2, 8000)


def test_opus_channels_keep_their_own_party(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    info = encode_recording(call_ja.pcm, 8000, "opus", tmp_path / "call.opus")
    decoded, rate = decode_recording(info.path)
    assert rate == 8000
    assert decoded.shape == call_ja.pcm.shape
    for ch in (0, 1):
        own = envelope_correlation(call_ja.pcm[:, ch], 8000, decoded[:, ch], rate)
        other = envelope_correlation(call_ja.pcm[:, ch], 8000, decoded[:, 1 - ch], rate)
        assert own >= 0.9, f"channel {ch}: {own:.3f}"
        assert other < 0.2, f"channel {ch} vs other party: {other:.3f}"


def test_opus_defaults_meet_size_and_quality_targets(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    info = encode_recording(call_ja.pcm, 8000, "opus", tmp_path / "call.opus")
    kb_per_minute = info.bytes / 1000 / (info.duration / 60)
    assert kb_per_minute <= 120
    decoded, _ = decode_recording(info.path)
    for ch in (0, 1):
        score = pesq(8000, call_ja.pcm[:, ch].astype(float), decoded[:, ch].astype(float), "nb")
        assert score >= 3.6, f"channel {ch}: PESQ-NB {score:.2f}"


def test_opus_at_16k_keeps_rate_and_channels(tmp_path: Path, call_en_16k: TwoPartyCall) -> None:
    info = encode_recording(call_en_16k.pcm, 16000, "opus", tmp_path / "wb.opus", bitrate=16000, frame_ms=20)
    assert _opus_head(info.path)["rate"] == 16000
    decoded, rate = decode_recording(info.path)
    assert rate == 16000
    for ch in (0, 1):
        assert envelope_correlation(call_en_16k.pcm[:, ch], 16000, decoded[:, ch], rate) >= 0.9


def test_mono_opus_uses_the_plain_mono_mapping(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    info = encode_recording(call_ja.pcm[:, 0], 8000, "opus", tmp_path / "mono.opus")  # a strided view
    assert _opus_head(info.path) == {"version": 1, "channels": 1, "rate": 8000, "gain": 0, "family": 0}
    decoded, rate = decode_recording(info.path)
    assert decoded.shape == (call_ja.pcm.shape[0], 1)
    assert envelope_correlation(call_ja.pcm[:, 0], 8000, decoded[:, 0], rate) >= 0.9


def test_opus_tags_carry_metadata(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    tags = {"CALL_ID": "b2bua-42@pbx.example", "START_TIME": "2025-01-31T09:00:00+09:00", "CALLER": "山田"}
    info = encode_recording(call_ja.pcm[:8000], 8000, "opus", tmp_path / "t.opus", metadata=tags)
    opus_tags = _first_ogg_packets(info.path, 2)[1]
    assert opus_tags.startswith(b"OpusTags")
    for key, value in tags.items():
        assert f"{key}={value}".encode() in opus_tags


@pytest.mark.parametrize("fmt", ["flac", "wav"])
@pytest.mark.parametrize("channels", [1, 2])
def test_lossless_formats_round_trip_bit_exact(tmp_path: Path, fmt: str, channels: int) -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, size=(12345, 2), dtype=np.int16)
    pcm[:100] = [[32767, -32768]]
    if channels == 1:
        pcm = pcm[:, 0].copy()
    info = encode_recording(pcm, 8000, fmt, tmp_path / f"r.{fmt}")
    decoded, rate = decode_recording(info.path)
    assert rate == 8000
    assert decoded.dtype == np.int16
    assert np.array_equal(decoded, pcm.reshape(len(pcm), -1))
    assert info.channels == channels
    assert info.codec == {"flac": "flac", "wav": "pcm_s16le"}[fmt]
    assert info.bytes == info.path.stat().st_size
    assert info.sha256 == sha256_file(info.path)


def test_flac_carries_vorbis_comments(tmp_path: Path) -> None:
    pcm = np.zeros((800, 2), dtype=np.int16)
    info = encode_recording(
        pcm, 8000, "flac", tmp_path / "t.flac", metadata={"CALL_ID": "c-1", "AGENT": "鈴木"}
    )
    with av.open(str(info.path)) as container:
        tags = {k.upper(): v for k, v in container.metadata.items()}
    assert tags["CALL_ID"] == "c-1"
    assert tags["AGENT"] == "鈴木"


@pytest.mark.parametrize(("fmt", "rate"), [("opus", 8000), ("opus", 16000), ("flac", 8000), ("wav", 16000)])
def test_probe_reports_duration_within_20_ms(tmp_path: Path, fmt: str, rate: int) -> None:
    n = int(rate * 7.37)
    t = np.arange(n) / rate
    pcm = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 700 * t)], axis=1)
    pcm = (pcm * 8000).astype(np.int16)
    info = encode_recording(pcm, rate, fmt, tmp_path / f"p.{fmt}")
    probe = probe_recording(info.path)
    assert abs(probe.duration - 7.37) <= 0.020
    assert abs(info.duration - 7.37) <= 1 / rate
    assert (probe.channels, probe.sample_rate, probe.codec) == (2, rate, info.codec)


def test_sha256_matches_the_written_file(tmp_path: Path) -> None:
    pcm = np.arange(-4000, 4000, dtype=np.int16)
    info = encode_recording(pcm, 8000, "wav", tmp_path / "h.wav")
    expected = hashlib.sha256(info.path.read_bytes()).hexdigest()
    assert info.sha256 == expected == sha256_file(info.path)
    assert info.bytes == info.path.stat().st_size == 44 + 2 * 8000


def test_encoder_failure_leaves_no_file_at_dest_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fh: IO[bytes], *args: object) -> None:
        fh.write(b"OggS half a file")
        raise av.error.InvalidDataError(1094995529, "simulated encoder failure")

    monkeypatch.setattr(encode_module, "_encode_av", broken)
    pcm = np.zeros((8000, 2), dtype=np.int16)
    with pytest.raises(EncodeError, match=r"^cannot encode opus to .*new\.opus: .*simulated encoder failure"):
        encode_recording(pcm, 8000, "opus", tmp_path / "new.opus")
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_keeps_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "rec.flac"
    pcm = np.ones((8000, 2), dtype=np.int16)
    first = encode_recording(pcm, 8000, "flac", dest)

    def broken(fh: IO[bytes], *args: object) -> None:
        fh.write(b"fLaC partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(encode_module, "_encode_av", broken)
    with pytest.raises(EncodeError, match="No space left on device"):
        encode_recording(pcm, 8000, "flac", dest)
    assert sha256_file(dest) == first.sha256
    assert os.listdir(tmp_path) == ["rec.flac"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pcm": np.zeros(10, np.float32)}, r"^pcm must be int16, got float32$"),
        ({"pcm": np.zeros((10, 3), np.int16)}, r"^pcm must have shape \(n,\) or \(n, 2\), got \(10, 3\)$"),
        ({"pcm": np.zeros((0, 2), np.int16)}, r"^pcm has no samples$"),
        ({"pcm": [0, 1]}, r"^pcm must be a numpy array, got list$"),
        ({"fmt": "mp3"}, r"^unknown format 'mp3': expected one of opus, flac, wav$"),
        (
            {"sample_rate": 44100},
            r"^Opus cannot take 44100 Hz input: use one of 8000, 12000, 16000, 24000, 48000$",
        ),
        ({"bitrate": 1000}, r"^Opus bitrate per channel must be 6000\.\.256000 bit/s, got 1000$"),
        ({"frame_ms": 30}, r"^Opus frame duration must be one of 10, 20, 40, 60 ms, got 30$"),
        (
            {"fmt": "flac", "bitrate": 8000},
            r"^bitrate, frame_ms and complexity apply to opus only, not flac$",
        ),
        ({"fmt": "wav", "complexity": 3}, r"^bitrate, frame_ms and complexity apply to opus only, not wav$"),
        ({"complexity": 11}, r"^Opus complexity must be 0\.\.10, got 11$"),
        ({"fmt": "wav", "sample_rate": 0}, r"^sample rate must be 1\.\.655350 Hz, got 0$"),
        ({"metadata": {"A=B": "x"}}, r"^metadata key 'A=B' must be printable ASCII without '='$"),
        ({"metadata": {"CALL_ID": 5}}, r"^metadata value for 'CALL_ID' must be str, got int$"),
    ],
)
def test_invalid_arguments_are_rejected_before_writing(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"pcm": np.zeros((800, 2), np.int16), "sample_rate": 8000, "fmt": "opus"}
    args.update(kwargs)
    with pytest.raises(EncodeError, match=message):
        encode_recording(dest=tmp_path / "x", **args)
    assert list(tmp_path.iterdir()) == []


def test_missing_destination_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match=r"^destination directory .*nope does not exist$"):
        encode_recording(np.zeros(80, np.int16), 8000, "wav", tmp_path / "nope" / "x.wav")


def test_probe_rejects_missing_and_non_audio_files(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match=r"absent\.opus: no such file$"):
        probe_recording(tmp_path / "absent.opus")
    junk = tmp_path / "junk.opus"
    junk.write_bytes(b"this is not an audio file at all" * 10)
    with pytest.raises(EncodeError, match=r"junk\.opus: (not a readable media file|no audio stream)"):
        probe_recording(junk)


def test_probe_of_truncated_opus_reports_the_shorter_duration(tmp_path: Path, call_ja: TwoPartyCall) -> None:
    info = encode_recording(call_ja.pcm, 8000, "opus", tmp_path / "full.opus")
    cut = tmp_path / "cut.opus"
    cut.write_bytes(info.path.read_bytes()[: info.bytes // 2])
    probe = probe_recording(cut)
    assert probe.duration < info.duration * 0.75
