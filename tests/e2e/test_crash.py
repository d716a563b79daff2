"""kill -9 the recorder during ten active calls: every call must come back, interrupted, with its audio."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from callvault.media.audio_compare import envelope_correlation
from callvault.media.encode import decode_recording
from callvault.tools.siprec_client import Leg, SiprecClient
from tests import audio_fixtures
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

audio_cache_dir = audio_fixtures.audio_cache_dir
CALLS = 10


def test_calls_survive_kill_9_of_the_recorder_as_interrupted_recordings(
    server: Server, audio_cache_dir
) -> None:
    caller = np.concatenate(audio_fixtures.caller_speech("ja", cache_dir=audio_cache_dir))[: 8000 * 12]
    callee = np.concatenate(audio_fixtures.callee_speech("ja", cache_dir=audio_cache_dir))[: 8000 * 12]
    client = SiprecClient(("127.0.0.1", server.sip_port))

    async def place_calls() -> None:
        calls = [
            client.call(Leg(f"0312345{i:03d}", "", caller), Leg(f"2{i:02d}", "", callee))
            for i in range(CALLS)
        ]
        await asyncio.gather(*calls, return_exceptions=True)  # the BYEs fail: the recorder is dead

    thread = threading.Thread(target=asyncio.run, args=(place_calls(),), daemon=True)
    thread.start()
    server.wait(
        lambda: len([c for c in server.calls() if c["state"] == "active"]) == CALLS,
        15,
        f"{CALLS} active calls",
    )
    time.sleep(3.0)
    killed_at = time.time()
    server.stop("recorder", signal.SIGKILL)

    server.start("recorder")  # start-up recovers the spools left behind
    calls = server.wait_calls(CALLS, timeout=60)
    assert len(calls) == CALLS
    for call in calls:
        assert call["state"] == "interrupted", call
        assert call["end_reason"] == "crash"
        assert call["recording_state"] == "ready"
        answered = datetime.fromisoformat(call["answered_at"]).timestamp()
        kept = call["recording"]["duration"]
        # audio up to one second before the crash survives
        assert kept >= killed_at - answered - 1.0, (kept, killed_at - answered)
        assert kept <= killed_at - answered + 0.5
        pcm, rate = decode_recording(call["recording"]["path"])
        n = int((kept - 0.2) * rate)
        # The recording is placed on the time the packets arrived. Ten calls share one client
        # thread: on a busy 2-core machine its first packets leave up to ~250 ms after the
        # answer, and the recording (correctly) shows that, so allow that much lag.
        lag = 400
        assert envelope_correlation(pcm[:n, 0], rate, caller[:n], 8000, max_lag_ms=lag) >= 0.9
        assert envelope_correlation(pcm[:n, 1], rate, callee[:n], 8000, max_lag_ms=lag) >= 0.9
    assert not any((server.data_dir / "spool").iterdir()), "every recovered spool was finalized and removed"


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children of children included), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_nothing_of_a_worker_killed_with_sigkill_lives_on(server_factory: Callable[..., Server]) -> None:
    """Job workers, huey's periodic scheduler and the pre-encoders are forked: after a SIGKILL of
    the worker (the OOM killer's way) none may stay behind, taking jobs or queueing the periodic
    sweeps for ever beside the worker that replaces it."""
    srv = server_factory(CALLVAULT_JOB_WORKERS="2")
    worker = srv.procs["worker"]
    srv.wait(lambda: "worker started" in srv.log("worker"), 30, "worker started")

    # job workers (2), the scheduler and the pre-encoders (2)
    def forked() -> set[int] | None:
        kids = _descendants(worker.pid)
        return kids if len(kids) >= 5 else None

    kids = srv.wait(forked, 30, "5 forked processes")
    srv.stop("worker", signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], "forked processes outlived the killed worker"
