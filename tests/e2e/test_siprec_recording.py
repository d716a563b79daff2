"""A two-stream SIPREC client streams different speech on each leg; the recording must keep them apart."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from callvault.media.audio_compare import envelope_correlation, find_silence
from callvault.media.encode import decode_recording
from callvault.tools.siprec_client import Leg, SiprecClient
from tests import audio_fixtures
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

audio_cache_dir = audio_fixtures.audio_cache_dir


def _speech(cache: object) -> tuple[np.ndarray, np.ndarray]:
    caller = np.concatenate(audio_fixtures.caller_speech("ja", cache_dir=cache))  # type: ignore[arg-type]
    callee = np.concatenate(audio_fixtures.callee_speech("en", cache_dir=cache))  # type: ignore[arg-type]
    return caller[: 8000 * 8], callee[: 8000 * 8]


def test_each_party_is_recorded_on_its_own_channel_with_gaps_in_place(
    server: Server, audio_cache_dir
) -> None:
    caller_pcm, callee_pcm = _speech(audio_cache_dir)
    n = min(len(caller_pcm), len(callee_pcm)) // 160 * 160
    caller_pcm, callee_pcm = caller_pcm[:n], callee_pcm[:n]
    dropped = frozenset(range(100, 125))  # 2.00 s - 2.50 s of the callee's audio never arrives
    client = SiprecClient(("127.0.0.1", server.sip_port))
    result = asyncio.run(
        client.call(
            Leg("0312345678", "山田 太郎", caller_pcm),
            Leg("201", "受付 佐藤", callee_pcm, drop=dropped, swap=frozenset({200, 260})),
        )
    )
    assert result.invite_status == 200 and result.bye_status == 200

    [call] = server.wait_calls(1)
    assert call["state"] == "completed"
    assert call["caller_number"] == "+81312345678" and call["caller_name"] == "山田 太郎"
    assert call["callee_number"] == "201"
    assert [p["role"] for p in call["participants"]] == ["caller", "callee"]
    callee_stream = next(s for s in call["streams"] if s["role"] == "callee")
    caller_stream = next(s for s in call["streams"] if s["role"] == "caller")
    # every packet sent is in the recording, the very last ones (in flight when the BYE came) too
    assert [caller_stream["received"], callee_stream["received"]] == result.packets_sent
    assert callee_stream["lost"] == len(dropped)
    assert call["packets"]["lost"] == len(dropped)

    pcm, rate = decode_recording(call["recording"]["path"])
    assert pcm.shape[1] == 2 and rate == 8000
    sent = n / 8000
    assert abs(len(pcm) / rate - sent) <= 0.060, (len(pcm) / rate, sent)

    expected_callee = callee_pcm.copy()
    expected_callee[100 * 160 : 125 * 160] = 0
    left, right = pcm[:, 0], pcm[:, 1]
    assert envelope_correlation(left, rate, caller_pcm, 8000) >= 0.9
    assert envelope_correlation(right, rate, expected_callee, 8000) >= 0.9
    assert envelope_correlation(left, rate, callee_pcm, 8000) < 0.5
    assert envelope_correlation(right, rate, caller_pcm, 8000) < 0.5

    # the dropped half second is silence at its true place, and audio after it is not shifted
    gaps = find_silence(right, rate, 300)
    assert any(abs(start - 2.0) <= 0.04 and abs(end - 2.5) <= 0.04 for start, end in gaps), gaps


def test_a_call_that_starts_late_on_one_leg_keeps_its_silence(server: Server, audio_cache_dir) -> None:
    caller_pcm, callee_pcm = _speech(audio_cache_dir)
    caller_pcm, callee_pcm = caller_pcm[: 8000 * 4], callee_pcm[: 8000 * 3]
    client = SiprecClient(("127.0.0.1", server.sip_port), codec="PCMA")
    asyncio.run(client.call(Leg("09012345678", "", caller_pcm), Leg("202", "", callee_pcm, start_delay=1.0)))
    [call] = server.wait_calls(1)
    pcm, rate = decode_recording(call["recording"]["path"])
    right = pcm[:, 1]
    # nothing from the callee during its first second; its speech then lines up with what was sent
    assert np.abs(right[: int(0.95 * rate)].astype(np.int32)).max() < 300
    assert envelope_correlation(right[rate:], rate, callee_pcm, 8000) >= 0.9
