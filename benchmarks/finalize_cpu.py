"""CPU cost of finalizing one two-stream G.711 call, stage by stage.

Builds a real spool (two PCMU streams, 20 ms packets, espeak-ng speech in turns,
a little arrival jitter) of each requested length, then finalizes it and reports
CPU time (``time.process_time``: this process only, so other work on a shared
machine does not count) per stage and per recorded second:

* decode + align + mix (``build_audio``),
* encode (libopus, Ogg, fsync), verify (probe the file), the rest of finalize_call
  (database, storage, spool removal);
* ``total``: one ``finalize_call`` as the worker runs it.

With ``--incremental`` the call is also written to a spool bit by bit and followed
by the pre-encoder (``callvault.apps.recordings.preencode``), ticked every 0.5 s of
call time: its CPU while the call goes on, and from the hang-up to a ready recording.

Run: ``.venv/bin/python benchmarks/finalize_cpu.py --seconds 20,600 [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PCMU = {"0": ["PCMU", 8000, 1, None], "101": ["telephone-event", 8000, 1, "0-16"]}


def _speech(seconds: float) -> np.ndarray:
    from tests.audio_fixtures import two_party_call

    call = two_party_call("en", rate=8000)
    reps = int(np.ceil(seconds * 8000 / len(call.pcm)))
    return np.tile(call.pcm, (reps, 1))[: int(seconds * 8000)]


class LiveSpool:
    """A two-stream call written to a spool little by little, as the recorder does."""

    def __init__(self, root: Path, seconds: float, *, t0: float, jitter_ms: float = 3.0) -> None:
        from callvault.codecs import g711
        from callvault.spool.writer import CallSpool

        self.call_id = str(uuid.uuid4())
        key = self.call_id.replace("-", "")
        self.spool = CallSpool(root, key)
        self.dir = root / key
        self.t0 = t0
        self.end_t = t0 + seconds + 0.01
        streams = [
            {"index": i, "label": str(i + 1), "role": role, "participant_id": f"p{i}", "payload_types": PCMU}
            for i, role in enumerate(("caller", "callee"))
        ]
        participants = [
            {"participant_id": "p0", "aor": "sip:0312345678@x", "number": "0312345678", "role": "caller"},
            {"participant_id": "p1", "aor": "sip:201@x", "number": "201", "role": "callee"},
        ]
        self.spool.journal(
            {
                "type": "invite",
                "t": t0,
                "call_id": self.call_id,
                "source": "siprec",
                "sip_call_id": f"sip-{key}",
                "session_id": "s1",
                "direction": "in",
                "streams": streams,
                "participants": participants,
            }
        )
        self.spool.journal({"type": "answered", "t": t0})
        pcm = _speech(seconds)
        rng = np.random.default_rng(7)
        self.records: list[tuple[float, int, bytes]] = []
        for index in (0, 1):
            payload = g711.encode(np.ascontiguousarray(pcm[:, index]), "ulaw")
            delays = rng.uniform(0, jitter_ms / 1000, size=len(payload) // 160)
            for k in range(len(payload) // 160):
                header = struct.pack(
                    "!BBHII", 0x80, 0, (100 + k) & 0xFFFF, (1000 + k * 160) & 0xFFFFFFFF, 0x1000 + index
                )
                self.records.append(
                    (t0 + 0.01 + k * 0.02 + delays[k], index, header + payload[k * 160 : (k + 1) * 160])
                )
        self.records.sort()
        self.streams = {i: self.spool.open_stream(i) for i in (0, 1)}
        self.written = 0

    def write_until(self, t: float) -> None:
        while self.written < len(self.records) and self.records[self.written][0] <= t:
            arrival, index, packet = self.records[self.written]
            self.streams[index].append(arrival, packet)
            self.written += 1
        self.spool.flush()

    def hang_up(self) -> None:
        self.write_until(float("inf"))
        self.spool.journal({"type": "ended", "t": self.end_t, "reason": "bye"})
        self.spool.mark_complete()


def make_spool(root: Path, seconds: float, *, t0: float, jitter_ms: float = 3.0) -> tuple[str, Path]:
    live = LiveSpool(root, seconds, t0=t0, jitter_ms=jitter_ms)
    live.hang_up()
    return live.call_id, live.dir


def measure_preencoded(seconds: float) -> tuple[float, float]:
    """CPU of the pre-encoder while the call goes on, and from hang-up to a ready recording."""
    from django.conf import settings

    from callvault.apps.calls.models import Call
    from callvault.apps.recordings import finalize
    from callvault.apps.recordings.preencode import PreEncoder

    t0 = time.time() - seconds - 1
    live = LiveSpool(settings.SPOOL_DIR, seconds, t0=t0)
    finalize.ingest_spool(live.dir, interrupted=False)
    encoder = PreEncoder(settings.SPOOL_DIR)
    during = 0.0
    t = t0
    while t < live.end_t - 0.1:
        t = min(t + 0.5, live.end_t - 0.1)
        live.write_until(t)
        c = time.process_time()
        encoder.tick(t)
        during += time.process_time() - c
    live.hang_up()
    finalize.ingest_spool(live.dir, interrupted=False)
    c = time.process_time()
    encoder.tick(live.end_t + 0.1)
    after = time.process_time() - c
    assert Call.objects.get(pk=live.call_id).recording_state == "ready"
    return during, after


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", default="20,600", help="call lengths (comma-separated)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per length (the minimum is shown)")
    parser.add_argument("--incremental", action="store_true", help="pre-encode during the call first")
    parser.add_argument("--profile", help="write a cProfile of the last total run to this file")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cv-finalize-cpu-"))
    os.environ["CALLVAULT_DATA_DIR"] = str(tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")
    os.environ.pop("CALLVAULT_REDIS_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from callvault.apps.calls.journal import JournalState
    from callvault.apps.recordings import finalize
    from callvault.media.encode import encode_recording, verify_recording
    from callvault.spool.reader import read_journal

    print(f"CPU time (process_time) of one finalize, minimum of {args.repeat} runs\n")
    print(f"{'call s':>7} {'decode+mix':>11} {'encode':>9} {'verify':>9} {'total':>9} {'ms/rec s':>9}")
    for seconds in (float(v) for v in args.seconds.split(",")):
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            t0 = time.time() - seconds - 1
            call_id, spool_dir = make_spool(settings.SPOOL_DIR, seconds, t0=t0)
            stages: dict[str, float] = {}
            state = JournalState.fold(read_journal(spool_dir))
            c = time.process_time()
            audio = finalize.build_audio(spool_dir, state)
            stages["decode"] = time.process_time() - c
            out = tmp / "stage.opus"
            c = time.process_time()
            encode_recording(audio["pcm"], audio["rate"], "opus", out, bitrate=settings.OPUS_BITRATE)
            stages["encode"] = time.process_time() - c
            c = time.process_time()
            verify_recording(out, "opus", channels=2, sample_rate=audio["rate"])
            stages["verify"] = time.process_time() - c
            del audio
            finalize.ingest_spool(spool_dir, interrupted=False)
            c = time.process_time()
            if args.profile:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            state_out = finalize.finalize_call(call_id)
            if args.profile:
                prof.disable()
                prof.dump_stats(args.profile)
            stages["total"] = time.process_time() - c
            assert state_out == "ready", state_out
            if args.incremental:
                stages["pre_during"], stages["pre_after"] = measure_preencoded(seconds)
            for k, v in stages.items():
                best[k] = min(best.get(k, v), v)
        print(
            f"{seconds:7.0f} {best['decode'] * 1000:9.0f}ms {best['encode'] * 1000:7.0f}ms "
            f"{best['verify'] * 1000:7.0f}ms {best['total'] * 1000:7.0f}ms "
            f"{best['total'] * 1000 / seconds:9.2f}"
        )
        if args.incremental:
            print(
                f"{'':7} pre-encoder: {best['pre_during'] * 1000:.0f} ms during the call "
                f"({best['pre_during'] * 1000 / seconds:.2f} ms/rec s), "
                f"{best['pre_after'] * 1000:.0f} ms after the hang-up"
            )


if __name__ == "__main__":
    main()
