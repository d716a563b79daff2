"""kill -9 the recorder during ten active calls: every call must come back, interrupted, with its audio."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from datetime import datetime

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
