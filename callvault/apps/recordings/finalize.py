"""Finalize: turn a call's spool into a verified stereo recording.

decode every stream -> align on RTP time (gaps become silence) -> caller left,
callee right -> encode -> verify by decoding -> hash -> store -> database ->
remove the spool. Idempotent: the job claims the call with a conditional
update; a retry after a crash at any step converges on one recording.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from callvault.apps.calls.journal import JournalState, end_call, upsert_call
from callvault.apps.calls.models import Call, CallState, DtmfEvent, RecordingState, Stream
from callvault.apps.recordings.models import Recording
from callvault.storage import get_storage

log = logging.getLogger("callvault.finalize")

# A claim older than this is considered abandoned by a crashed worker.
STALE_CLAIM = timedelta(minutes=10)
# The recording must decode to the expected length within this tolerance.
DURATION_TOLERANCE = 0.06
MAX_ATTEMPTS = 5


class FinalizeError(Exception):
    pass


def calls_needing_finalize() -> list[str]:
    stale = timezone.now() - STALE_CLAIM
    qs = Call.objects.filter(
        Q(recording_state=RecordingState.PENDING)
        | Q(recording_state=RecordingState.PROCESSING, updated_at__lt=stale)
    ).filter(finalize_attempts__lt=MAX_ATTEMPTS)
    return [str(pk) for pk in qs.values_list("id", flat=True)[:1000]]


def request_retry(call_id: str) -> str:
    """Put a failed (or stuck) recording back in the queue; the operator's "retry" button."""
    from callvault.apps.recordings.tasks import enqueue_finalize

    try:
        call = Call.objects.get(pk=call_id)
    except (Call.DoesNotExist, ValueError, Exception) as exc:
        if isinstance(exc, Call.DoesNotExist | ValueError) or "UUID" in str(exc):
            raise LookupError(f"no call with id {call_id}") from None
        raise
    if call.recording_state == RecordingState.READY:
        return "この通話の録音はすでに完成しています。"
    Call.objects.filter(pk=call.pk).update(
        recording_state=RecordingState.PENDING, recording_error="", finalize_attempts=0
    )
    enqueue_finalize(str(call.pk))
    return f"通話 {call.pk} の録音処理を再実行キューに入れました。"


def _claim(call_id: str) -> bool:
    stale = timezone.now() - STALE_CLAIM
    n = (
        Call.objects.filter(pk=call_id)
        .filter(
            Q(recording_state=RecordingState.PENDING)
            | Q(recording_state=RecordingState.PROCESSING, updated_at__lt=stale)
        )
        .update(
            recording_state=RecordingState.PROCESSING,
            finalize_attempts=F("finalize_attempts") + 1,
            finalize_owner=worker_identity(),
            updated_at=timezone.now(),
        )
    )
    return n == 1


def worker_identity() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def release_dead_claims() -> int:
    """At worker start: claims held by workers of this host that no longer run go back to the queue.

    Without this, a call whose worker was killed mid-finalize would wait for STALE_CLAIM.
    Claims of other hosts are left to the stale-claim rule.
    """
    import os
    import socket

    host = socket.gethostname()
    released = 0
    processing = Call.objects.filter(recording_state=RecordingState.PROCESSING)
    for pk, owner in processing.values_list("id", "finalize_owner"):
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that worker is still alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        released += Call.objects.filter(
            pk=pk, recording_state=RecordingState.PROCESSING, finalize_owner=owner
        ).update(recording_state=RecordingState.PENDING, finalize_owner="")
    if released:
        log.warning("released %d recording(s) claimed by a worker that died", released)
    return released


def _payload_types(spec: dict[str, Any]) -> dict[int, Any]:
    from callvault.rtp.stream import PayloadType

    out: dict[int, Any] = {}
    for pt, (enc, rate, ch, fmtp) in (spec or {}).items():
        out[int(pt)] = PayloadType(encoding=enc, clock_rate=int(rate), channels=int(ch or 1), fmtp=fmtp)
    return out


def timeline_start(state: JournalState, first_arrivals: list[float]) -> float:
    """The time of sample 0: the answer, or the first packet of any stream if earlier.

    The recording's timeline runs from there to the end of the call, so that its length
    is the call's length and silence stays silence.
    """
    starts = [t for t in (state.answered_t, *first_arrivals) if t is not None]
    return min(starts) if starts else float(state.invite.get("t", 0.0))


def timeline_rate(state: JournalState) -> int:
    """The recording's sample rate from the codecs the streams offer."""
    from callvault.codecs import is_supported
    from callvault.media.mix import choose_out_rate

    rates: list[int] = []
    for s in state.streams.values():
        for enc, rate, _ch, _f in (s.get("payload_types") or {}).values():
            if is_supported(enc, int(rate)) and enc.lower() not in ("telephone-event", "cn"):
                rates.append(16000 if enc.lower() == "g722" else int(rate))
    return choose_out_rate(rates or [8000])


def stream_payload_types(state: JournalState) -> dict[int, tuple[str, dict[int, Any]]]:
    """Per stream index: its role and payload types, as the mix needs them."""
    return {
        i: (s.get("role") or "unknown", _payload_types(s.get("payload_types") or {}))
        for i, s in sorted(state.streams.items())
    }


def build_audio(spool_dir: Path, state: JournalState) -> dict[str, Any]:
    """Decode and mix the spool. Returns pcm, rate, channel map and per-stream results."""
    from callvault.media.mix import mix_mono
    from callvault.media.track import decode_track
    from callvault.spool.reader import read_stream

    stream_files = {i: spool_dir / f"stream-{i}.rtp" for i in state.streams}
    first_arrivals: list[float] = []
    for path in stream_files.values():
        if path.exists():
            for arrival, _pkt in read_stream(path):
                first_arrivals.append(arrival)
                break
    t0 = timeline_start(state, first_arrivals)
    out_rate = timeline_rate(state)

    tracks: dict[int, Any] = {}
    for i, s in sorted(state.streams.items()):
        path = stream_files[i]
        records = read_stream(path) if path.exists() else iter(())
        tracks[i] = decode_track(
            records, _payload_types(s.get("payload_types") or {}), t0=t0, out_rate=out_rate
        )

    roles = {i: (s.get("role") or "unknown") for i, s in state.streams.items()}
    left = [tracks[i] for i in sorted(tracks) if roles[i] == "caller"]
    mixed = [tracks[i] for i in sorted(tracks) if roles[i] == "mixed"]
    # Extra streams (a third party after a transfer or conference) go with the callee side.
    right = [tracks[i] for i in sorted(tracks) if roles[i] not in ("caller", "mixed")]
    if mixed and not left and not right:
        pcm = mix_mono(mixed, out_rate=out_rate)
        channel_map = {"mono": "mixed"}
    else:
        right += mixed
        pcm = _stereo(mix_mono(left, out_rate=out_rate), mix_mono(right, out_rate=out_rate))
        channel_map = {"left": "caller", "right": "callee"}
    if state.ended_t is not None:
        pcm = _pad_to(pcm, round((state.ended_t - t0) * out_rate))
    return {"pcm": pcm, "rate": out_rate, "channel_map": channel_map, "tracks": tracks, "t0": t0}


def _pad_to(pcm: Any, n: int) -> Any:
    import numpy as np

    if len(pcm) >= n:
        return pcm
    pad = np.zeros((n - len(pcm), *pcm.shape[1:]), dtype=pcm.dtype)
    return np.concatenate([pcm, pad])


def _stereo(left: Any, right: Any) -> Any:
    import numpy as np

    n = max(len(left), len(right))
    out = np.zeros((n, 2), dtype=np.int16)
    out[: len(left), 0] = left
    out[: len(right), 1] = right
    return out


def finalize_call(call_id: str, *, pre: Any = None) -> str:
    """Finalize one call. Returns the resulting recording state.

    ``pre`` is the worker's pre-encoder state of this call (see ``preencode``); its caller
    holds the spool's lock. Without it, the job takes the lock itself: while the
    pre-encoder follows a call the job answers ``deferred`` and leaves the call to it (if
    the pre-encoder dies, the kernel drops its lock and the sweep queues the call again).
    """
    from callvault.apps.recordings.preencode import lock_spool, unlock_spool

    lock: int | None = None
    if pre is None:
        call = Call.objects.filter(pk=call_id).only("spool_key").first()
        if call is not None and call.spool_key:
            lock = lock_spool(settings.SPOOL_DIR / call.spool_key)
            if lock is None:
                log.info("= finalize call=%s deferred: the pre-encoder is finishing it", call_id)
                return "deferred"
    try:
        return _finalize_locked(call_id, pre)
    finally:
        if lock is not None:
            unlock_spool(lock)


def _finalize_locked(call_id: str, pre: Any) -> str:
    from callvault.media.encode import sha256_file, verify_recording
    from callvault.spool.reader import read_journal
    from callvault.spool.recovery import remove_spool

    started = time.monotonic()
    if not _claim(call_id):
        call = Call.objects.filter(pk=call_id).first()
        return call.recording_state if call else "missing"
    call = Call.objects.get(pk=call_id)
    spool_dir = settings.SPOOL_DIR / (call.spool_key or "")
    try:
        if not call.spool_key or not spool_dir.is_dir():
            if Recording.objects.filter(call=call).exists():
                Call.objects.filter(pk=call.pk).update(
                    recording_state=RecordingState.READY, recording_error=""
                )
                return str(RecordingState.READY)
            raise FinalizeError("spool is missing and no recording exists")
        state = JournalState.fold(read_journal(spool_dir))
        if state.answered_t is None and not _has_packets(spool_dir):
            # never answered (CANCEL, refused): a missed call, there is nothing to record
            Call.objects.filter(pk=call.pk).update(recording_state=RecordingState.NONE, recording_error="")
            remove_spool(spool_dir, root=settings.SPOOL_DIR)
            return str(RecordingState.NONE)
        fmt = settings.RECORDING_FORMAT
        ext = {"opus": "opus", "flac": "flac", "wav": "wav"}[fmt]
        key = f"{timezone.localtime(call.started_at):%Y/%m/%d}/{call.pk}.{ext}"
        storage = get_storage()
        tmp_dir = settings.DATA_DIR / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_dir) as td:
            finished = pre.finish(state) if pre is not None and fmt == "opus" else None
            if finished is not None:
                audio, out, info = finished
            else:
                audio, out, info = _encode_one_shot(call, spool_dir, state, fmt, Path(td) / f"rec.{ext}")
            rate = audio["rate"]
            expected = audio["samples"] / rate
            probe = verify_recording(out, fmt, channels=info.channels, sample_rate=rate)
            if abs(probe.duration - expected) > DURATION_TOLERANCE:
                raise FinalizeError(
                    f"encoded recording lasts {probe.duration:.3f}s, expected {expected:.3f}s"
                )
            if storage.exists(key):
                # A previous attempt stored the file but crashed before the database commit.
                if _storage_sha256(storage, key) != info.sha256:
                    storage.delete(key)
            if not storage.exists(key):
                storage.put_file(key, out)
        local = storage.local_path(key)
        if local is not None and sha256_file(local) != info.sha256:
            raise FinalizeError("stored recording does not match its hash")
        _save(call, state, audio, key, fmt, info, probe)
        _store_peaks(call, audio)
        _announce(call.pk)
    except Exception as exc:
        log.exception("x finalize failed call=%s", call_id)
        final = call.finalize_attempts + 1 >= MAX_ATTEMPTS
        Call.objects.filter(pk=call.pk).update(
            recording_state=RecordingState.FAILED if final else RecordingState.PENDING,
            recording_error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        if final:
            return str(RecordingState.FAILED)
        raise
    finally:
        if pre is not None:
            pre.discard()
    remove_spool(spool_dir, root=settings.SPOOL_DIR)
    log.info(
        "= finalized call=%s in %.0f ms (%.1fs audio%s)",
        call_id,
        (time.monotonic() - started) * 1000,
        expected,
        ", pre-encoded" if finished is not None else "",
    )
    return str(RecordingState.READY)


def _encode_one_shot(
    call: Call, spool_dir: Path, state: JournalState, fmt: str, out: Path
) -> tuple[dict[str, Any], Path, Any]:
    """Decode and mix the whole spool, then encode it (the path without a pre-encoder)."""
    from callvault.media.encode import encode_recording

    audio = build_audio(spool_dir, state)
    pcm, rate = audio["pcm"], audio["rate"]
    audio["samples"] = len(pcm)
    info = encode_recording(
        pcm,
        rate,
        fmt,
        out,
        bitrate=settings.OPUS_BITRATE if fmt == "opus" else None,
        complexity=settings.OPUS_COMPLEXITY if fmt == "opus" else None,
        metadata=recording_tags(call),
    )
    return audio, out, info


def recording_tags(call: Call) -> dict[str, str]:
    return {"callvault_call_id": str(call.pk), "date": call.started_at.isoformat()}


def _store_peaks(call: Call, audio: dict[str, Any]) -> None:
    """Cache the waveform from the samples in hand (the call page would otherwise decode the file)."""
    from callvault.apps.recordings.playback import store_peaks_from_envelope, store_peaks_from_pcm

    try:
        rec = Recording.objects.get(call=call)
        if "envelope" in audio:
            envelope, step = audio["envelope"]
            store_peaks_from_envelope(rec, envelope, step, audio["samples"])
        else:
            store_peaks_from_pcm(rec, audio["pcm"])
    except Exception:  # the page computes them on demand: never fail a finalize for this
        log.exception("x could not cache the waveform of call=%s", call.pk)


def _announce(call_id: Any) -> None:
    """Tell browsers and webhook receivers that the recording is ready (after the commit)."""
    from callvault.apps.recordings.signals import recording_ready
    from callvault.live import CALL_COMPLETED, publish

    call = Call.objects.select_related("recording").get(pk=call_id)
    publish(CALL_COMPLETED, call)
    for receiver, response in recording_ready.send_robust(sender=Recording, call=call):
        if isinstance(response, Exception):
            log.error("x recording_ready receiver %s failed: %s", receiver, response)


def _storage_sha256(storage: Any, key: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with storage.open(key) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@transaction.atomic
def _save(
    call: Call, state: JournalState, audio: dict[str, Any], key: str, fmt: str, info: Any, probe: Any
) -> None:
    from callvault.pcap.follower import capture_loss

    totals = {"received": 0, "lost": 0, "late": 0, "dropped": 0, "capture_lost": 0}
    drops_left = state.capture_drops
    DtmfEvent.objects.filter(call=call).delete()
    for index, track in audio["tracks"].items():
        st = track.stats
        dropped = st.dropped_malformed + st.unknown_pt
        # passive capture: gaps the capture itself missed are not network loss
        captured_lost = capture_loss(st.lost, drops_left)
        drops_left -= captured_lost
        Stream.objects.filter(call=call, index=index).update(
            packets_received=st.received,
            packets_lost=st.lost - captured_lost,
            packets_capture_lost=captured_lost,
            packets_late=st.late,
            packets_duplicate=st.duplicates,
            packets_dropped=dropped,
            ssrc_changes=st.ssrc_changes,
            jitter_ms=float(st.jitter),
            codec=",".join(sorted(track.codecs))[:32],
            unsupported=bool(track.unsupported) or bool(state.streams.get(index, {}).get("unsupported")),
        )
        totals["received"] += st.received
        totals["lost"] += st.lost - captured_lost
        totals["capture_lost"] += captured_lost
        totals["late"] += st.late
        totals["dropped"] += dropped
        for d in track.dtmf:
            DtmfEvent.objects.create(
                call=call,
                stream_index=index,
                digit=d.digit,
                offset=d.time or 0.0,
                duration_ms=round(d.duration * 1000),
            )
    Recording.objects.update_or_create(
        call=call,
        defaults={
            "storage_key": key,
            "format": fmt,
            "codec": info.codec,
            "channels": info.channels,
            "sample_rate": info.sample_rate,
            "bytes": info.bytes,
            "sha256": info.sha256,
            "duration": probe.duration,
            "channel_map": audio["channel_map"],
            "verified_at": timezone.now(),
        },
    )
    metadata = dict(call.metadata or {})
    metadata["holds"] = _holds(state, audio["t0"])
    Call.objects.filter(pk=call.pk).update(
        metadata=metadata,
        recording_state=RecordingState.READY,
        recording_error="",
        packets_received=totals["received"],
        packets_lost=totals["lost"],
        packets_late=totals["late"],
        packets_dropped=totals["dropped"],
        packets_capture_lost=totals["capture_lost"],
    )


def _holds(state: JournalState, t0: float) -> list[dict[str, float | None]]:
    """Hold periods in seconds from the start of the recording (an unfinished hold ends with the call)."""
    out: list[dict[str, float | None]] = []
    for start, stop in state.holds:
        assert start is not None
        until = stop if stop is not None else state.ended_t
        out.append(
            {"start": round(start - t0, 3), "end": round(until - t0, 3) if until is not None else None}
        )
    return out


def ingest_spool(spool_dir: Path, *, interrupted: bool) -> str | None:
    """Make sure the database knows the call of a spool (recorder start-up and the live path)."""
    from callvault.spool.reader import read_journal

    events = read_journal(spool_dir)
    state = JournalState.fold(events)
    if not state.call_id:
        log.warning("x spool %s has no invite record; left for inspection", spool_dir)
        return None
    call = upsert_call(state, spool_key=spool_dir.name)
    if interrupted or state.ended_t is not None:
        if call.state in (CallState.RINGING, CallState.ACTIVE) or interrupted:
            end_call(call, state, interrupted=interrupted)
    return str(call.pk)


def _has_packets(spool_dir: Path) -> bool:
    from callvault.spool.reader import read_stream

    for path in spool_dir.glob("stream-*.rtp"):
        for _record in read_stream(path):
            return True
    return False


def _last_arrival(spool_dir: Path) -> float | None:
    from callvault.spool.reader import read_stream

    last: float | None = None
    for path in sorted(spool_dir.glob("stream-*.rtp")):
        for arrival, _pkt in read_stream(path):
            last = arrival if last is None else max(last, arrival)
    return last


def _append_journal(spool_dir: Path, events: list[dict[str, Any]]) -> None:
    """Append records to the journal of a spool no writer holds any more (recovery only)."""
    import json
    import os

    path = spool_dir / "journal.jsonl"
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        # a torn last line from the crash: drop it, it was never complete
        os.truncate(path, data.rfind(b"\n") + 1)
    with path.open("ab") as fh:
        for ev in events:
            fh.write(json.dumps(ev, ensure_ascii=False).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def recover_spool(spool_dir: Path) -> str | None:
    """A spool whose recorder died mid-call: close it at its last audio, mark the call interrupted."""
    from callvault.spool.reader import read_journal

    state = JournalState.fold(read_journal(spool_dir))
    last = _last_arrival(spool_dir)
    end_t = max(t for t in (last, state.last_t) if t is not None) if (last or state.last_t) else time.time()
    _append_journal(
        spool_dir,
        [
            {"type": "ended", "t": end_t, "reason": "crash"},
            {"type": "closed", "time": time.time(), "reason": "recovered"},
        ],
    )
    log.warning("recovered interrupted call spool %s (audio until %.3f)", spool_dir.name, end_t)
    return ingest_spool(spool_dir, interrupted=True)
