"""Audio delivery for the call page: byte ranges, the AAC copy for Safari, waveform peaks.

- The stored recording (Ogg Opus, FLAC or WAV) is served as it is, with HTTP range support
  (RFC 9110 §14), so that browsers can seek without downloading the whole file.
- Safari and iOS cannot play Ogg Opus: for them an AAC (``.m4a``) copy is made on first request
  and kept in ``DATA_DIR/cache/audio/``, named by the recording's SHA-256 (the cache can be
  deleted at any time; it is rebuilt on demand).
- The waveform is drawn from peaks (per channel, per time bucket) computed server-side by
  decoding the recording once; they are cached as JSON in ``DATA_DIR/cache/peaks/``.

Playback is audited once per *listening session*: the call page issues a signed one-time token
(:func:`issue_listen_token`) that the player puts on every audio request of that page load. The
first request carrying a token writes the ``playback`` audit entry (with the token's nonce);
later range requests of the same session find that entry and are not audited again. A request
without a valid token (a script, an expired page) is audited every time: audio never leaves
the server unaudited.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date
from django.utils.translation import gettext as _

from callvault.apps.audit.models import Action, AuditEntry, AuditHead, record
from callvault.apps.audit.request import client_ip  # noqa: F401  (re-exported)
from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.storage import StorageError, get_storage

log = logging.getLogger("callvault.playback")

CHUNK = 64 * 1024
PEAKS_VERSION = 1
MIN_BUCKETS = 100
MAX_BUCKETS = 4000
BUCKETS_PER_SECOND = 20
AAC_BITRATE_PER_CHANNEL = 24_000
LISTEN_SALT = "callvault.playback.listen"
LISTEN_MAX_AGE = 12 * 3600
MAX_RANGE_HEADER = 200

CONTENT_TYPES = {
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    # uploads keep the file as it was sent (callvault/apps/uploads)
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "amr": "audio/amr",
    "ogg": "audio/ogg",
}
# The MIME type with codecs, for HTMLMediaElement.canPlayType() in the player.
PLAYABLE_TYPES = {
    "opus": "audio/ogg; codecs=opus",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "m4a": 'audio/mp4; codecs="mp4a.40.2"',
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "amr": "audio/amr",  # no browser plays it: the player falls back to the AAC copy
    "ogg": "audio/ogg; codecs=vorbis",
}


class PlaybackError(Exception):
    """The audio cannot be delivered; the message is for people (Japanese)."""


class RangeNotSatisfiable(Exception):
    pass


# -- files ---------------------------------------------------------------------------------


def cache_dir(kind: str) -> Path:
    path = Path(settings.DATA_DIR) / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def recording_path(rec: Recording) -> Path:
    """The stored file on local disk; PlaybackError if it is missing (that is never normal)."""
    storage = get_storage()
    try:
        path = storage.local_path(rec.storage_key)
    except StorageError as exc:
        raise PlaybackError(_("録音ファイルの保存場所が不正です。管理者に連絡してください。")) from exc
    if path is None or not path.is_file():
        log.error("x recording file missing call=%s key=%s", rec.call_id, rec.storage_key)
        raise PlaybackError(_("録音ファイルが保存場所に見つかりません。管理者に連絡してください。"))
    return path


def file_present(rec: Recording) -> bool:
    try:
        recording_path(rec)
    except PlaybackError:
        return False
    return True


def stored_extension(rec: Recording) -> str:
    suffix = Path(rec.storage_key).suffix.lstrip(".").lower()
    return suffix if suffix in CONTENT_TYPES else rec.format


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """One builder per cache entry across processes; the others wait and then reuse its result."""
    with lock_path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _safe_sha(rec: Recording) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", rec.sha256 or ""):
        raise PlaybackError(_("録音のハッシュ値が不正です。管理者に連絡してください。"))
    return rec.sha256


# -- AAC for Safari --------------------------------------------------------------------------


def m4a_path(rec: Recording) -> Path:
    """The cached AAC copy of a recording, made now if there is none yet."""
    dest = cache_dir("audio") / f"{_safe_sha(rec)}.m4a"
    if dest.is_file():
        return dest
    with _locked(dest.with_suffix(".lock")):
        if dest.is_file():  # another request made it while we waited
            return dest
        source = recording_path(rec)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=".m4a")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            transcode_to_m4a(source, tmp)
            os.replace(tmp, dest)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            log.exception("x m4a transcode failed call=%s", rec.call_id)
            raise PlaybackError(
                _("Safari 用の音声 (AAC) を作成できませんでした。管理者に連絡してください。")
            ) from exc
        log.info("= m4a cached call=%s (%d bytes)", rec.call_id, dest.stat().st_size)
    return dest


def transcode_to_m4a(source: Path, dest: Path) -> None:
    """Decode ``source`` and encode it as AAC-LC in MP4 (moov first, so playback can start at once).

    Channels stay as they are (left = caller, right = callee). Narrowband 8 kHz recordings are
    encoded at 16 kHz, the lowest rate every Apple decoder takes without complaint. Frames carry
    continuous timestamps so that the encoder's priming samples go into the MP4 edit list: the
    copy starts exactly where the original does (comment and DTMF times stay true on Safari).
    """
    from fractions import Fraction

    import av

    with av.open(str(source)) as inp:
        if not inp.streams.audio:
            raise PlaybackError(_("録音ファイルに音声がありません。"))
        in_stream = inp.streams.audio[0]
        channels = int(in_stream.codec_context.channels)
        layout = "stereo" if channels == 2 else "mono"
        rate = min(48000, max(16000, _original_rate(in_stream)))
        time_base = Fraction(1, rate)
        with av.open(str(dest), "w", format="ipod", options={"movflags": "+faststart"}) as out:
            out_stream: Any = out.add_stream("aac", rate=rate, layout=layout)
            out_stream.bit_rate = AAC_BITRATE_PER_CHANNEL * channels
            out_stream.codec_context.options = {"aac_coder": "fast"}
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            written = 0

            def put(frames: list[Any]) -> None:
                nonlocal written
                for frame in frames:
                    frame.pts = written
                    frame.time_base = time_base
                    written += frame.samples
                    out.mux(out_stream.encode(frame))

            for frame in inp.decode(in_stream):
                put(resampler.resample(frame))
            put(resampler.resample(None))
            out.mux(out_stream.encode(None))


def _original_rate(stream: Any) -> int:
    """Opus decodes at 48 kHz but its header keeps the rate the audio had before encoding."""
    ctx = stream.codec_context
    head = bytes(ctx.extradata or b"")
    if ctx.name == "opus" and len(head) >= 16 and head.startswith(b"OpusHead"):
        original = int.from_bytes(head[12:16], "little")
        if 8000 <= original <= 48000:
            return original
    return int(ctx.sample_rate or 48000)


# -- waveform peaks --------------------------------------------------------------------------


def peaks_for(rec: Recording) -> dict[str, Any]:
    """Peaks per channel (0..1) for drawing the waveform, from the cache or computed now."""
    dest = cache_dir("peaks") / f"{_safe_sha(rec)}.v{PEAKS_VERSION}.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        cached: dict[str, Any] = json.loads(dest.read_text(encoding="utf-8"))
        return cached
    with _locked(dest.with_suffix(".lock")):
        with contextlib.suppress(FileNotFoundError, ValueError):
            again: dict[str, Any] = json.loads(dest.read_text(encoding="utf-8"))
            return again
        try:
            data = compute_peaks(recording_path(rec), rec.duration)
        except PlaybackError:
            raise
        except Exception as exc:
            log.exception("x peaks failed call=%s", rec.call_id)
            raise PlaybackError(_("波形を作成できませんでした。録音ファイルを確認してください。")) from exc
        data["channel_map"] = rec.channel_map or {}
        _write_peaks(dest, data)
    return data


def _write_peaks(dest: Path, data: dict[str, Any]) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp_name, dest)


def store_peaks_from_pcm(rec: Recording, pcm: Any) -> None:
    """Cache the peaks of a recording from the int16 samples it was encoded from.

    Finalize has them in memory: this spares the worker decoding the file again just to
    draw the waveform (the drawing cannot tell the source peaks from the decoded ones).
    """
    data = peaks_of_pcm(pcm, rec.duration)
    data["channel_map"] = rec.channel_map or {}
    dest = cache_dir("peaks") / f"{_safe_sha(rec)}.v{PEAKS_VERSION}.json"
    with _locked(dest.with_suffix(".lock")):
        _write_peaks(dest, data)


def store_peaks_from_envelope(rec: Recording, envelope: Any, step: int, samples: int) -> None:
    """As :func:`store_peaks_from_pcm`, from the largest absolute sample of each ``step`` samples."""
    import numpy as np

    env = np.asarray(envelope)
    buckets = bucket_count(rec.duration)
    peaks = np.zeros((env.shape[1], buckets), dtype=np.float32)
    if len(env) and samples > 0:
        idx = np.minimum((np.arange(len(env), dtype=np.int64) * step * buckets) // samples, buckets - 1)
        starts = np.flatnonzero(np.diff(idx, prepend=-1))
        for ch in range(env.shape[1]):
            top = np.maximum.reduceat(env[:, ch].astype(np.int32), starts)
            peaks[ch, idx[starts]] = top.astype(np.float32) / 32768.0
    data = _peaks_doc(np.clip(peaks, 0.0, 1.0), rec.duration)
    data["channel_map"] = rec.channel_map or {}
    dest = cache_dir("peaks") / f"{_safe_sha(rec)}.v{PEAKS_VERSION}.json"
    with _locked(dest.with_suffix(".lock")):
        _write_peaks(dest, data)


def peaks_of_pcm(pcm: Any, duration: float) -> dict[str, Any]:
    """The same peaks as :func:`compute_peaks`, from int16 samples of shape (n,) or (n, channels)."""
    import numpy as np

    samples = np.asarray(pcm)
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    channels = samples.shape[1]
    buckets = bucket_count(duration)
    peaks = np.zeros((channels, buckets), dtype=np.float32)
    n = samples.shape[0]
    if n:
        idx = np.minimum((np.arange(n, dtype=np.int64) * buckets) // n, buckets - 1)
        starts = np.flatnonzero(np.diff(idx, prepend=-1))
        for ch in range(channels):
            top = np.maximum.reduceat(np.abs(samples[:, ch].astype(np.int32)), starts)
            peaks[ch, idx[starts]] = top.astype(np.float32) / 32768.0
    return _peaks_doc(np.clip(peaks, 0.0, 1.0), duration)


def _peaks_doc(peaks: Any, duration: float) -> dict[str, Any]:
    return {
        "version": PEAKS_VERSION,
        "duration": round(duration, 3),
        "channels": int(peaks.shape[0]),
        "buckets": int(peaks.shape[1]),
        "peaks": [[round(float(v), 3) for v in row] for row in peaks],
    }


def bucket_count(duration: float) -> int:
    return int(min(MAX_BUCKETS, max(MIN_BUCKETS, round(duration * BUCKETS_PER_SECOND))))


def compute_peaks(path: Path, duration: float) -> dict[str, Any]:
    """Decode once, streaming, and keep the largest absolute sample of each bucket per channel."""
    import av
    import numpy as np

    buckets = bucket_count(duration)
    with av.open(str(path)) as inp:
        if not inp.streams.audio:
            raise PlaybackError(_("録音ファイルに音声がありません。"))
        stream = inp.streams.audio[0]
        channels = int(stream.codec_context.channels)
        rate = int(stream.codec_context.sample_rate or 48000)
        total = max(1, round(duration * rate))
        peaks = np.zeros((channels, buckets), dtype=np.float32)
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
        pos = 0

        def take(samples: Any) -> None:
            nonlocal pos
            n = samples.shape[1]
            if n == 0:
                return
            idx = np.minimum((np.arange(pos, pos + n, dtype=np.int64) * buckets) // total, buckets - 1)
            starts = np.flatnonzero(np.diff(idx, prepend=-1))
            where = idx[starts]
            for ch in range(channels):
                top = np.maximum.reduceat(np.abs(samples[ch]), starts)
                peaks[ch, where] = np.maximum(peaks[ch, where], top)
            pos += n

        for frame in inp.decode(stream):
            for out in resampler.resample(frame):
                take(out.to_ndarray().reshape(channels, -1))
        for out in resampler.resample(None):
            take(out.to_ndarray().reshape(channels, -1))
    return _peaks_doc(np.clip(peaks, 0.0, 1.0), duration)


def warm_cache(call: Call) -> None:
    """Compute the peaks ahead of the first visit (meant for the ``recording_ready`` signal)."""
    rec = Recording.objects.filter(call=call).first()
    if rec is not None:
        try:
            peaks_for(rec)
        except PlaybackError as exc:
            log.warning("x could not warm the waveform cache of call %s: %s", call.pk, exc)


def prune_cache(max_bytes: int) -> int:
    """Delete the least recently used cache files until the cache fits; returns bytes freed."""
    root = Path(settings.DATA_DIR) / "cache"
    files = [p for p in root.glob("*/*") if p.is_file() and p.suffix in (".m4a", ".json")]
    stats = [(p, p.stat()) for p in files]
    used = sum(st.st_size for _p, st in stats)
    freed = 0
    for path, st in sorted(stats, key=lambda item: max(item[1].st_atime, item[1].st_mtime)):
        if used - freed <= max_bytes:
            break
        path.unlink(missing_ok=True)
        freed += st.st_size
    return freed


# -- listening sessions and audit ----------------------------------------------------------------


def issue_listen_token(user: Any, call: Call) -> str:
    """A signed, single-page-load token naming the user, the call and a fresh nonce."""
    payload = {"c": str(call.pk), "u": user.pk, "n": secrets.token_urlsafe(12)}
    return signing.dumps(payload, salt=LISTEN_SALT)


def listen_nonce(token: str | None, user: Any, call: Call) -> str | None:
    """The nonce of a valid token for this user and call; None for anything else."""
    if not token or len(token) > 300:
        return None
    try:
        data = signing.loads(token, salt=LISTEN_SALT, max_age=LISTEN_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("c") != str(call.pk) or data.get("u") != user.pk:
        return None
    nonce = data.get("n")
    return nonce if isinstance(nonce, str) and nonce else None


def audit_playback(user: Any, call: Call, *, token: str | None, ip: str | None, fmt: str) -> bool:
    """Record ``playback`` once per listening session (every time without one). True if recorded."""
    nonce = listen_nonce(token, user, call)
    if nonce is None:
        record(str(Action.PLAYBACK), user=user, obj=call, ip=ip, format=fmt, listen="")
        return True

    def seen() -> bool:
        return AuditEntry.objects.filter(
            action=Action.PLAYBACK, object_type="call", object_id=str(call.pk), detail__listen=nonce
        ).exists()

    if seen():
        return False
    with transaction.atomic():
        # The audit head's lock serialises appends: two first requests cannot both record.
        AuditHead.objects.select_for_update().get_or_create(pk=1)
        if seen():
            return False
        record(str(Action.PLAYBACK), user=user, obj=call, ip=ip, format=fmt, listen=nonce)
    return True


# -- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


_RANGE = re.compile(r"bytes[ \t]*=[ \t]*(\d{0,19})[ \t]*-[ \t]*(\d{0,19})[ \t]*", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One byte range of a ``Range`` header, or None to send the whole file.

    Malformed headers, other units and multiple ranges are ignored (RFC 9110 §14.2 lets a
    server send the full representation instead); RangeNotSatisfiable for a range that lies
    wholly beyond the end (answered with 416).
    """
    if not header or len(header) > MAX_RANGE_HEADER:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size - 1))


def _read_sync(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            block = fh.read(min(CHUNK, left))
            if not block:
                return
            left -= len(block)
            yield block


async def _read_async(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    import asyncio

    fh = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(fh.seek, start)
        left = length
        while left > 0:
            block = await asyncio.to_thread(fh.read, min(CHUNK, left))
            if not block:
                return
            left -= len(block)
            yield block
    finally:
        fh.close()


def sha_digest_header(sha256_hex: str) -> str | None:
    try:
        raw = binascii.unhexlify(sha256_hex)
    except (binascii.Error, ValueError):
        return None
    return f"sha-256=:{base64.b64encode(raw).decode()}:"


def file_response(
    request: HttpRequest,
    path: Path,
    *,
    content_type: str,
    etag: str,
    filename: str | None = None,
    digest: str | None = None,
) -> HttpResponse:
    """Serve a file with range support; an attachment when ``filename`` is given.

    Under ASGI the body is an async iterator (Django would otherwise read a sync iterator into
    memory first), under WSGI and the test client a sync one.
    """
    stat = path.stat()
    size = stat.st_size
    tag = f'"{etag}"'
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "ETag": tag,
        "Last-Modified": http_date(stat.st_mtime),
        "X-Content-Type-Options": "nosniff",
    }
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if digest:
        headers["Repr-Digest"] = digest
    if_range = request.headers.get("If-Range")
    try:
        wanted = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        response = HttpResponse(
            _("要求された範囲は音声ファイルの外です。"), status=416, content_type="text/plain; charset=utf-8"
        )
        for key, value in headers.items():
            response[key] = value
        response["Content-Range"] = f"bytes */{size}"
        return response
    if wanted is not None and if_range and if_range.strip() not in (tag, headers["Last-Modified"]):
        wanted = None  # the client's copy is outdated: send everything
    start, length = (wanted.start, wanted.length) if wanted else (0, size)
    if request.method == "HEAD":
        response = HttpResponse(status=206 if wanted else 200, content_type=content_type)
    else:
        body: Any = (
            _read_async(path, start, length)
            if isinstance(request, ASGIRequest)
            else _read_sync(path, start, length)
        )
        response = StreamingHttpResponse(body, status=206 if wanted else 200, content_type=content_type)
    for key, value in headers.items():
        response[key] = value
    response["Content-Length"] = str(length)
    if wanted:
        response["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    return response
