"""Builders for RTP test streams (packets made with our own RtpPacket)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from callvault.codecs import l16
from callvault.media.track import resample
from callvault.rtp.dtmf import TelephoneEvent
from callvault.rtp.packet import RtpPacket
from callvault.rtp.stream import PayloadType

PCMU, PCMA, G722_PT, L16_PT, G729_PT, CN_PT, OPUS_PT, DTMF_PT = 0, 8, 9, 96, 18, 13, 111, 101
SSRC_A = 0x11111111
SSRC_B = 0x22222222
PTIME = 0.02
SAMPLES_8K_20MS = 160

PAYLOAD_TYPES: dict[int, PayloadType] = {
    PCMU: PayloadType("PCMU", 8000),
    PCMA: PayloadType("PCMA", 8000),
    G722_PT: PayloadType("G722", 8000),
    L16_PT: PayloadType("L16", 8000),
    G729_PT: PayloadType("G729", 8000),
    OPUS_PT: PayloadType("opus", 48000, 2),
    DTMF_PT: PayloadType("telephone-event", 8000, 1, "0-16"),
}

Record = tuple[float, bytes]


def rtp(
    seq: int,
    ts: int,
    payload: bytes = b"\xff" * SAMPLES_8K_20MS,
    *,
    pt: int = PCMU,
    ssrc: int = SSRC_A,
    marker: bool = False,
) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=pt,
            sequence_number=seq & 0xFFFF,
            timestamp=ts & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
            marker=marker,
        )
    )


def block_payload(index: int, samples: int = SAMPLES_8K_20MS) -> bytes:
    """L16 payload whose samples all equal ``index + 1``: identifies the packet in the output."""
    return l16.encode(np.full(samples, index + 1, dtype=np.int16))


def l16_records(
    count: int,
    *,
    seq0: int = 1000,
    ts0: int = 50_000,
    start: float = 10.0,
    ssrc: int = SSRC_A,
    first_index: int = 0,
) -> list[Record]:
    """``count`` 20 ms L16 packets; packet i holds samples equal to ``first_index + i + 1``."""
    return [
        (
            start + i * PTIME,
            rtp(seq0 + i, ts0 + i * SAMPLES_8K_20MS, block_payload(first_index + i), pt=L16_PT, ssrc=ssrc),
        )
        for i in range(count)
    ]


def packetize(
    payloads: list[bytes],
    *,
    pt: int,
    ts_step: int,
    seq0: int = 1000,
    ts0: int = 50_000,
    start: float = 10.0,
    ssrc: int = SSRC_A,
    ptime: float = PTIME,
) -> list[Record]:
    return [
        (start + i * ptime, rtp(seq0 + i, ts0 + i * ts_step, p, pt=pt, ssrc=ssrc))
        for i, p in enumerate(payloads)
    ]


def dtmf_records(
    event: int,
    *,
    seq0: int,
    start_ts: int,
    start: float,
    updates: int = 4,
    step: int = 400,
    end_copies: int = 3,
    ssrc: int = SSRC_A,
) -> list[Record]:
    """RFC 4733 run: marker start, growing updates, ``end_copies`` identical end packets, 50 ms apart."""
    out: list[Record] = []
    seq = seq0
    for i in range(updates + 1):
        tev = TelephoneEvent(event=event, end=False, volume=10, duration=i * step)
        out.append((start + i * 0.05, rtp(seq, start_ts, bytes(tev), pt=DTMF_PT, ssrc=ssrc, marker=i == 0)))
        seq += 1
    final = TelephoneEvent(event=event, end=True, volume=10, duration=(updates + 1) * step)
    for j in range(end_copies):
        at = start + (updates + 1 + j) * 0.05
        out.append((at, rtp(seq, start_ts, bytes(final), pt=DTMF_PT, ssrc=ssrc)))
        seq += 1
    return out


def tone(freq: float, seconds: float, rate: int, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def speak(text: str, directory: Path, rate: int) -> npt.NDArray[np.int16]:
    """Synthesise Japanese ``text`` with espeak-ng into ``directory``; return mono int16 at ``rate``."""
    assert shutil.which("espeak-ng"), "espeak-ng must be installed (the test setup installs it)"
    path = directory / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", "ja", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        native = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return resample(pcm, native, rate)
