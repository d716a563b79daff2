"""SIPREC calls placed by sipp (a real, independent SIP implementation) against `callvault recorder`."""

from __future__ import annotations

import numpy as np
import pytest

from callvault.media.audio_compare import find_silence
from callvault.media.encode import decode_recording
from tests.e2e.conftest import Server, run_sipp

pytestmark = pytest.mark.e2e

PCAP_PACKETS = 236  # /usr/share/sip-tester/g711a.pcap
DTMF_PACKETS = 10  # /usr/share/sip-tester/dtmf_2833_1.pcap (start, updates, 3 end packets)


def test_sipp_call_with_pcap_audio_and_dtmf_is_recorded(server: Server) -> None:
    run_sipp("siprec_basic.xml", server)
    [call] = server.wait_calls(1)
    assert call["state"] == "completed" and call["end_reason"] == "bye"
    assert call["caller_number"] == "+81312345678" and call["callee_number"] == "201"
    assert call["callee_name"] == "受付 佐藤"
    caller_stream = call["streams"][0]
    assert caller_stream["role"] == "caller" and caller_stream["codec"] == "PCMA"
    assert caller_stream["received"] == PCAP_PACKETS + DTMF_PACKETS and caller_stream["lost"] == 0
    # RFC 4733 events are stored as DTMF, never as audio
    assert [d["digit"] for d in call["dtmf"]] == ["1"]
    assert 7.0 < call["dtmf"][0]["offset"] < 8.5
    rec = call["recording"]
    assert rec["channels"] == 2 and rec["channel_map"] == {"left": "caller", "right": "callee"}
    assert abs(rec["duration"] - call["duration"]) < 0.1
    pcm, rate = decode_recording(rec["path"])
    left = pcm[:, 0].astype(np.int32)
    assert np.abs(left[: 4 * rate]).max() > 1000, "the pcap's audio is on the caller channel"
    assert np.abs(pcm[:, 1]).max() < 50, "nothing was sent on the callee stream"


def test_sipp_hold_and_resume_by_reinvite_keeps_the_timeline(server: Server) -> None:
    run_sipp("siprec_hold.xml", server)
    [call] = server.wait_calls(1)
    stream = call["streams"][0]
    assert stream["received"] == 2 * PCAP_PACKETS
    assert stream["duplicate"] == 0, "the audio replayed after resume must not be taken for duplicates"
    rec = call["recording"]
    assert 17.0 < rec["duration"] < 19.5
    pcm, rate = decode_recording(rec["path"])
    silences = find_silence(pcm[:, 0], rate, 2000)
    # about 7.5 s of audio, then ~3 s on hold (silent), then the audio again
    assert any(s < 8.0 and e > 10.0 for s, e in silences), silences
    assert np.abs(pcm[int(11.5 * rate) : int(14 * rate), 0].astype(np.int32)).max() > 1000
    [hold] = call["holds"]
    assert 7.0 < hold["start"] < 8.5 and 10.0 < hold["end"] < 11.5, hold


def test_sipp_options_keepalive_is_answered(server: Server) -> None:
    run_sipp("options.xml", server)


def test_sipp_call_over_tcp_is_recorded(server: Server) -> None:
    run_sipp("siprec_basic.xml", server, transport="t1")
    [call] = server.wait_calls(1)
    assert call["streams"][0]["received"] == PCAP_PACKETS + DTMF_PACKETS
    assert [d["digit"] for d in call["dtmf"]] == ["1"]
