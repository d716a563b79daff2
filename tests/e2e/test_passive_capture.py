"""Passive capture end to end: sipp calls on loopback, captured by dumpcap and imported, or sniffed live."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callvault.media.audio_compare import envelope_correlation, find_silence
from callvault.media.encode import decode_recording
from tests import audio_fixtures
from tests.e2e.capture_harness import (
    SIPP_PCAP,
    Ports,
    calls,
    callvault,
    dumpcap,
    import_capture,
    pcap_audio,
    rtp_pcap,
    sipp_call,
)
from tests.e2e.conftest import REPO

# sipp and dumpcap are installed by `make test` (sip-tester, tshark): missing, the tests fail
pytestmark = pytest.mark.e2e

audio_cache_dir = audio_fixtures.audio_cache_dir
TALK_MS = 7500  # g711a.pcap lasts 7.08 s


@pytest.fixture(scope="module")
def callee_audio(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The callee's speech (espeak-ng, made at test time) as an RTP pcap sipp can play."""
    cache = tmp_path_factory.mktemp("speech")
    pcm = np.concatenate(audio_fixtures.callee_speech("ja", cache_dir=cache)[:2])
    path = rtp_pcap(tmp_path_factory.mktemp("pcaps") / "callee.pcap", pcm, law="ulaw", pt=0)
    return path, audio_fixtures.ulaw_roundtrip(pcm)


def values(callee: Path, **extra: Any) -> dict[str, Any]:
    return {
        "CALLER_PCAP": SIPP_PCAP,
        "CALLEE_PCAP": callee,
        "TALK_MS": TALK_MS,
        "RING_MS": 1500,
        "HOLD_MS": 3000,
        **extra,
    }


def check_two_party_audio(call: dict[str, Any], callee_pcm: np.ndarray) -> None:
    rec = call["recording"]
    assert rec["channels"] == 2 and rec["channel_map"] == {"left": "caller", "right": "callee"}
    pcm, rate = decode_recording(rec["path"])
    caller_ref = pcap_audio(SIPP_PCAP, "alaw")
    left, right = pcm[:, 0].astype(np.float64), pcm[:, 1].astype(np.float64)
    assert envelope_correlation(caller_ref, 8000, left, rate, max_lag_ms=300) > 0.8
    assert envelope_correlation(callee_pcm, 8000, right, rate, max_lag_ms=300) > 0.8
    assert envelope_correlation(caller_ref, 8000, right, rate, max_lag_ms=300) < 0.5, (
        "channels are not swapped"
    )


def test_an_imported_capture_of_a_sipp_call_becomes_a_recorded_call(
    tmp_path: Path, callee_audio: tuple[Path, np.ndarray]
) -> None:
    ports = Ports.pick()
    with dumpcap(tmp_path / "call.pcapng", ports.bpf()) as capture:
        sipp_call(tmp_path, ports, "capture_uac.xml", "capture_uas.xml", **values(callee_audio[0]))
    result = import_capture(tmp_path / "data", capture)
    assert result["returncode"] == 0 and result["calls_found"] == 1 and result["calls_created"] == 1
    [call] = calls(tmp_path / "data")
    assert call["source"] == "capture" and call["state"] == "completed" and call["end_reason"] == "bye"
    assert (call["caller_number"], call["caller_name"]) == ("+81312345678", "山田 太郎")
    assert (call["callee_number"], call["callee_name"]) == ("201", "受付 佐藤")
    assert call["recording_state"] == "ready"
    assert abs(call["duration"] - TALK_MS / 1000) < 0.6
    assert abs(call["recording"]["duration"] - call["duration"]) < 0.2
    caller_stream, callee_stream = call["streams"]
    assert (
        caller_stream["codec"] == "PCMA" and caller_stream["received"] == 236 and caller_stream["lost"] == 0
    )
    assert callee_stream["codec"] == "PCMU" and callee_stream["received"] > 200
    check_two_party_audio(call, callee_audio[1])

    again = import_capture(tmp_path / "data", capture)
    assert (again["calls_found"], again["calls_created"], again["duplicates_skipped"]) == (1, 0, 1)
    assert len(calls(tmp_path / "data")) == 1


def test_a_call_over_tcp_is_imported(tmp_path: Path, callee_audio: tuple[Path, np.ndarray]) -> None:
    ports = Ports.pick()
    with dumpcap(tmp_path / "tcp.pcap", ports.bpf(), fmt="pcap") as capture:
        sipp_call(
            tmp_path, ports, "capture_uac.xml", "capture_uas.xml", transport="t1", **values(callee_audio[0])
        )
    result = import_capture(tmp_path / "data", capture)
    assert result["calls_created"] == 1
    [call] = calls(tmp_path / "data")
    assert call["caller_number"] == "+81312345678" and call["end_reason"] == "bye"
    check_two_party_audio(call, callee_audio[1])


def test_hold_and_resume_by_reinvite_keep_the_timeline(
    tmp_path: Path, callee_audio: tuple[Path, np.ndarray]
) -> None:
    ports = Ports.pick()
    with dumpcap(tmp_path / "hold.pcapng", ports.bpf()) as capture:
        sipp_call(tmp_path, ports, "capture_uac_hold.xml", "capture_uas_hold.xml", **values(callee_audio[0]))
    import_capture(tmp_path / "data", capture)
    [call] = calls(tmp_path / "data")
    assert call["recording_state"] == "ready"
    [hold] = call["holds"]
    assert 7.3 < hold["start"] < 8.3 and 10.3 < hold["end"] < 11.5, hold
    assert 17.5 < call["recording"]["duration"] < 19.5
    pcm, rate = decode_recording(call["recording"]["path"])
    # the caller's pcap plays twice: loud at the start and again after the resume, silent on hold
    silences = find_silence(pcm[:, 0], rate, 1500)
    assert any(s < hold["start"] + 0.3 and e > hold["end"] - 0.3 for s, e in silences), silences
    assert (
        np.abs(pcm[int((hold["end"] + 0.5) * rate) : int((hold["end"] + 3) * rate), 0].astype(np.int32)).max()
        > 1000
    )
    assert call["streams"][0]["received"] == 2 * 236


def test_a_cancelled_call_is_a_missed_call_without_recording(tmp_path: Path) -> None:
    ports = Ports.pick()
    with dumpcap(tmp_path / "missed.pcapng", ports.bpf()) as capture:
        sipp_call(tmp_path, ports, "capture_uac_cancel.xml", "capture_uas_cancel.xml")
    result = import_capture(tmp_path / "data", capture)
    assert result["calls_created"] == 1
    [call] = calls(tmp_path / "data")
    assert call["state"] == "cancelled" and call["end_reason"] == "cancel"
    assert call["recording_state"] == "none" and call["recording"] is None
    assert call["caller_number"] == "+819012345678"


def test_a_cut_off_capture_imports_what_was_captured_and_says_so(
    tmp_path: Path, callee_audio: tuple[Path, np.ndarray]
) -> None:
    ports = Ports.pick()
    with dumpcap(tmp_path / "call.pcap", ports.bpf(), fmt="pcap") as capture:
        sipp_call(tmp_path, ports, "capture_uac.xml", "capture_uas.xml", **values(callee_audio[0]))
    data = capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    result = import_capture(tmp_path / "data", cut)
    assert result["returncode"] == 1
    [f] = result["files"]
    assert "capture is cut off" in f["error"] and f["packets"] > 100
    [call] = calls(tmp_path / "data")
    assert call["end_reason"] == "capture_end" and call["recording_state"] == "ready"
    assert 2.0 < call["recording"]["duration"] < TALK_MS / 1000
    proc = callvault(tmp_path / "data", "import", str(cut))
    assert (
        proc.returncode == 1
        and "エラー: capture is cut off" in proc.stdout
        and "Traceback" not in proc.stderr
    )


def test_files_that_are_not_captures_get_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("これはキャプチャではありません\n")
    proc = callvault(tmp_path / "data", "import", str(text))
    assert proc.returncode == 1 and "not a pcap or pcapng file" in proc.stdout
    assert "Traceback" not in proc.stderr
    proc = callvault(tmp_path / "data", "import", str(tmp_path / "missing.pcap"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def _poll_states(db: Path, seen: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                for (state,) in conn.execute("select state from calls_call"):
                    if not seen or seen[-1] != state:
                        seen.append(state)
        except sqlite3.Error:
            pass
        time.sleep(0.05)


def test_sniffing_loopback_records_a_sipp_call_live(
    tmp_path: Path, callee_audio: tuple[Path, np.ndarray]
) -> None:
    data = tmp_path / "data"
    assert callvault(data, "manage", "migrate", "--noinput", "-v", "0").returncode == 0
    ports = Ports.pick()
    env_cmd = [sys.executable, "-m", "callvault.cli"]
    log = (tmp_path / "sniff.log").open("wb")
    import os

    env = {**os.environ, "CALLVAULT_DATA_DIR": str(data)}
    sniff = subprocess.Popen(
        [*env_cmd, "sniff", "-i", "lo", "-f", ports.bpf()],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    worker = subprocess.Popen([*env_cmd, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    seen: list[str] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 20
        while b"capturing on lo" not in (tmp_path / "sniff.log").read_bytes():
            assert sniff.poll() is None and time.monotonic() < deadline, (tmp_path / "sniff.log").read_text()
            time.sleep(0.1)
        poller = threading.Thread(
            target=_poll_states, args=(data / "callvault.sqlite3", seen, stop), daemon=True
        )
        poller.start()
        sipp_call(
            tmp_path, ports, "capture_uac.xml", "capture_uas.xml", **values(callee_audio[0], RING_MS=2000)
        )
        deadline = time.monotonic() + 30
        while True:
            found = calls(data)
            if found and found[0]["recording_state"] == "ready":
                break
            assert time.monotonic() < deadline, f"{found}\n{(tmp_path / 'sniff.log').read_text()[-3000:]}"
            time.sleep(0.3)
    finally:
        stop.set()
        for proc in (sniff, worker):
            proc.terminate()
        for proc in (sniff, worker):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    [call] = calls(data)
    assert seen[:3] == ["ringing", "active", "completed"], seen
    assert call["source"] == "capture" and call["caller_number"] == "+81312345678"
    assert call["streams"][0]["received"] == 236
    assert call["packets"]["capture_lost"] == 0
    check_two_party_audio(call, callee_audio[1])


def test_sniffing_without_cap_net_raw_fails_clearly() -> None:
    # an unprivileged user without capabilities; the data directory must be reachable for it
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        Path(tmp).chmod(0o777)
        proc = subprocess.run(
            [
                "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", sys.executable, "-m", "callvault.cli", "sniff", "-i", "lo",
                "--data-dir", f"{tmp}/data",
            ],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "permission denied" in proc.stderr and "CAP_NET_RAW" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_capture_filter_is_refused(tmp_path: Path) -> None:
    proc = callvault(tmp_path / "data", "sniff", "-i", "lo", "-f", "port nonsense and")
    assert proc.returncode == 2 and "invalid capture filter" in proc.stderr
    proc = callvault(tmp_path / "data", "sniff", "-i", "no-such-if0")
    assert proc.returncode == 2 and "cannot capture on no-such-if0" in proc.stderr
    proc = callvault(tmp_path / "data", "sniff", "-i", "lo", "--buffer-mb", "0")
    assert proc.returncode == 2 and "--buffer-mb must be between 1 and 4096" in proc.stderr
