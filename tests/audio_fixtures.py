"""Speech made at test time with espeak-ng, so the repository holds no audio files.

Plain functions return 8 kHz (or any rate) mono int16 numpy arrays; results are
cached as WAV files in a cache directory (``CALLVAULT_AUDIO_CACHE``, else a
per-user folder under the system temp dir), so each sentence is synthesised once.
``audio_cache_dir`` is a session-scoped pytest fixture for tests that want their
own cache; bind it in a test module with ``audio_cache_dir = audio_fixtures.audio_cache_dir``.

Japanese text must be written in kana with spaces between phrases: espeak-ng
reads kanji (and some kana next to them) as "Chinese letter", which
:func:`synthesize` detects and refuses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

__all__ = [
    "CALLEE_EN",
    "CALLEE_JA",
    "CALLER_EN",
    "CALLER_JA",
    "SpeechSynthesisError",
    "TwoPartyCall",
    "audio_cache_dir",
    "callee_speech",
    "caller_speech",
    "default_cache_dir",
    "read_wav",
    "synthesize",
    "two_party_call",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_roundtrip",
]

INSTALL_HINT = "install espeak-ng: make test installs it"
_LANGUAGE_SWITCH = re.compile(r"\(([a-z]{2,3}(?:-[a-z0-9]+)?)\)")

CALLER_JA = (
    "すみません、 せんしゅう ちゅうもんした しなものが まだ とどいて いないんです。",
    "はい、 ばんごうは いち に さん よん ご です。 きのう とどく はずでした。",
    "わかりました。 では あしたの ごぜんちゅうに おねがい します。",
)
CALLEE_JA = (
    "おでんわ ありがとう ございます。 かぶしきがいしゃ コールボールトの やまだで ございます。",
    "しつれい ですが、 ちゅうもん ばんごうを おしえて いただけますか。",
    "もうしわけ ございません。 すぐに はいそうじょうきょうを おしらべ いたします。",
)
CALLER_EN = (
    "Hello, I am calling about an order that has not arrived yet.",
    "The order number is one two three four five, placed last Tuesday.",
    "Tomorrow morning would be fine, thank you very much.",
)
CALLEE_EN = (
    "Thank you for calling customer support, this is Emily speaking.",
    "I am sorry for the delay. Let me check the delivery status for you.",
    "Your parcel will be delivered before noon tomorrow.",
)


class SpeechSynthesisError(Exception):
    """espeak-ng, sox or ffmpeg is missing or failed."""


def default_cache_dir() -> Path:
    env = os.environ.get("CALLVAULT_AUDIO_CACHE")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"callvault-audio-cache-{os.getuid()}"


@pytest.fixture(scope="session")
def audio_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache directory shared by the whole test session."""
    return tmp_path_factory.mktemp("speech-cache")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        hint = INSTALL_HINT if name == "espeak-ng" else f"install {name}"
        raise SpeechSynthesisError(f"{name} not found on PATH: {hint}")
    return path


def _run(args: Sequence[str]) -> bytes:
    proc = subprocess.run(list(args), capture_output=True, check=False, timeout=120)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise SpeechSynthesisError(f"{Path(args[0]).name} exited with {proc.returncode}: {err}")
    return proc.stdout


@functools.cache
def _espeak_version() -> str:
    return _run([_tool("espeak-ng"), "--version"]).decode("utf-8", "replace").strip()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV into an int16 array of shape (n,) or (n, channels)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SpeechSynthesisError(f"{path}: expected 16-bit samples, got {8 * wav.getsampwidth()}-bit")
        channels = wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
        rate = wav.getframerate()
    return (data if channels == 1 else data.reshape(-1, channels)), rate


def _resample_to(src: Path, dest: Path, rate: int) -> None:
    if shutil.which("sox"):
        _run(["sox", str(src), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(dest)])
    else:
        ffmpeg = _tool("ffmpeg")
        args = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(src), "-ac", "1", "-ar", str(rate)]
        _run([*args, "-c:a", "pcm_s16le", str(dest)])


def synthesize(
    text: str,
    voice: str = "en-us",
    *,
    rate: int = 8000,
    speed: int | None = None,
    pitch: int | None = None,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return mono int16 samples at ``rate`` Hz."""
    espeak = _tool("espeak-ng")
    options: list[str] = ["-v", voice]
    if speed is not None:
        options += ["-s", str(speed)]
    if pitch is not None:
        options += ["-p", str(pitch)]
    key = json.dumps([_espeak_version(), options, text, rate], ensure_ascii=False)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}-{rate}.wav"
    if not cached.exists():
        phonemes = _run([espeak, *options, "-q", "-x", text]).decode("utf-8", "replace")
        switch = _LANGUAGE_SWITCH.search(phonemes)
        if switch:  # e.g. "_:(en)tS'aIni:z(ja)l'et@" = "Chinese letter"
            raise SpeechSynthesisError(
                f"espeak-ng voice {voice!r} would spell {text!r} as letters "
                f"(switches to {switch.group(1)}); write Japanese in kana"
            )
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            raw = Path(tmp) / "espeak.wav"
            out = Path(tmp) / "out.wav"
            _run([espeak, *options, "-w", str(raw), text])
            _resample_to(raw, out, rate)
            os.replace(out, cached)
    samples, got_rate = read_wav(cached)
    if got_rate != rate or samples.ndim != 1:
        raise SpeechSynthesisError(f"{cached}: expected mono {rate} Hz, got {samples.shape} at {got_rate} Hz")
    return samples


def caller_speech(lang: str = "ja", *, rate: int = 8000, cache_dir: Path | None = None) -> list[np.ndarray]:
    """The caller's utterances (low male voice)."""
    texts, voice = (CALLER_JA, "ja") if lang == "ja" else (CALLER_EN, "en-us")
    return [synthesize(t, voice, rate=rate, pitch=35, cache_dir=cache_dir) for t in texts]


def callee_speech(lang: str = "ja", *, rate: int = 8000, cache_dir: Path | None = None) -> list[np.ndarray]:
    """The callee's (agent's) utterances: different sentences, higher female voice."""
    texts, voice = (CALLEE_JA, "ja+f3") if lang == "ja" else (CALLEE_EN, "en-us+f3")
    return [synthesize(t, voice, rate=rate, pitch=60, cache_dir=cache_dir) for t in texts]


# -- G.711 µ-law, to make "telephone quality" references -----------------------------

_BIAS = 0x84
_CLIP = 32635
_EXPONENT = np.array([max(int(v).bit_length() - 1, 0) for v in range(256)], dtype=np.int32)


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> G.711 µ-law bytes (uint8)."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = _EXPONENT[mag >> 7]
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 µ-law bytes -> int16 samples."""
    b = ~codes.astype(np.int32) & 0xFF
    exponent = (b >> 4) & 0x07
    mag = (((b & 0x0F) << 3) + _BIAS << exponent) - _BIAS
    return np.where(b & 0x80, -mag, mag).astype(np.int16)


def ulaw_roundtrip(pcm: np.ndarray) -> np.ndarray:
    return ulaw_decode(ulaw_encode(pcm))


# -- a two-party call ----------------------------------------------------------------


@dataclass(frozen=True)
class TwoPartyCall:
    pcm: np.ndarray
    """(n, 2) int16: channel 0 the caller, channel 1 the callee."""
    rate: int
    turns: list[tuple[int, float, float]]
    """(channel, start_s, end_s) of every utterance."""


def two_party_call(
    lang: str = "ja",
    *,
    rate: int = 8000,
    noise_dbfs: float = -60.0,
    gap_s: float = 0.4,
    g711: bool = True,
    seed: int = 1,
    cache_dir: Path | None = None,
) -> TwoPartyCall:
    """Alternate callee and caller utterances on their own channels, like a real call.

    While one party talks the other channel carries only low noise (line/room noise
    at ``noise_dbfs``).  With ``g711`` each channel goes through µ-law, as it would
    arrive from the network.
    """
    callee = callee_speech(lang, rate=rate, cache_dir=cache_dir)
    caller = caller_speech(lang, rate=rate, cache_dir=cache_dir)
    order: list[tuple[int, np.ndarray]] = []
    for agent_says, customer_says in zip(callee, caller, strict=True):
        order += [(1, agent_says), (0, customer_says)]
    gap = int(gap_s * rate)
    total = gap + sum(len(u) + gap for _, u in order)
    rng = np.random.default_rng(seed)
    noise_amp = 32768 * 10 ** (noise_dbfs / 20)
    mix = rng.normal(0.0, noise_amp, size=(total, 2))
    turns: list[tuple[int, float, float]] = []
    pos = gap
    for channel, utterance in order:
        mix[pos : pos + len(utterance), channel] += utterance
        turns.append((channel, pos / rate, (pos + len(utterance)) / rate))
        pos += len(utterance) + gap
    pcm = np.clip(np.rint(mix), -32768, 32767).astype(np.int16)
    if g711:
        pcm = ulaw_roundtrip(pcm)
    return TwoPartyCall(pcm, rate, turns)
