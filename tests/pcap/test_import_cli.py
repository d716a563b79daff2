"""`callvault import` on crafted captures: VLAN, IPv6, SSRC change, capture loss from pcapng statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callvault.codecs.g711 import encode as g711_encode
from callvault.media.encode import decode_recording
from callvault.pcap.build import PcapngWriter, ethernet, ip, rtp, udp
from tests.e2e.capture_harness import calls, import_capture
from tests.pcap.traffic import Dialog, sdp

pytestmark = pytest.mark.e2e  # runs the real CLI in a subprocess

RATE = 8000


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


def crafted_call(
    w: PcapngWriter, d: Dialog, a_media: tuple[str, int], b_media: tuple[str, int], *, start: float,
    vlans: tuple[int, ...] = (), skip: frozenset[int] = frozenset(), ssrc_change_at: int | None = None,
) -> None:  # fmt: skip
    def send(ts: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        w.packet(ts, ethernet(ip(src[0], dst[0], 17, udp(src[1], dst[1], payload)), vlans=vlans))

    send(start, d.a, d.b, d.invite(sdp(*a_media, codecs="0 101")))
    send(start + 1.0, d.b, d.a, d.response(200, sdp(*b_media, codecs="0 101")))
    send(start + 1.01, d.a, d.b, d.request("ACK", cseq=1))
    caller, callee = tone(440, 4.0), tone(880, 4.0)
    for n in range(200):
        ts = start + 1.02 + n * 0.02
        ssrc, seq, rtp_ts = 0xCA11, 500 + n, 160 * n
        if ssrc_change_at is not None and n >= ssrc_change_at:
            ssrc, seq, rtp_ts = 0xBEEF, 9000 + n, 777777 + 160 * n  # a new source after a transfer
        if n not in skip:
            send(
                ts,
                a_media,
                b_media,
                rtp(seq, rtp_ts, ssrc, g711_encode(caller[n * 160 : (n + 1) * 160], "ulaw"), pt=0),
            )
        send(
            ts + 0.005,
            b_media,
            a_media,
            rtp(n, 160 * n, 0xCA1EE, g711_encode(callee[n * 160 : (n + 1) * 160], "ulaw"), pt=0),
        )
    send(start + 5.1, d.a, d.b, d.request("BYE"))


def test_vlan_ipv6_ssrc_change_and_capture_loss_from_a_crafted_pcapng(tmp_path: Path) -> None:
    w = PcapngWriter(big=True)
    w.interface(tsresol=9)
    v4 = Dialog(call_id="vlan-call@pbx", a=("10.1.0.10", 5060), b=("10.1.0.20", 5060))
    crafted_call(
        w, v4, ("10.1.0.10", 16000), ("10.1.0.20", 17000), start=1795000000.0, vlans=(100, 7),
        skip=frozenset({50, 51, 52, 150, 151}), ssrc_change_at=100,
    )  # fmt: skip
    v6 = Dialog(call_id="v6-call@pbx", a=("2001:db8::10", 5060), b=("2001:db8::20", 5060), from_tag="six")
    crafted_call(w, v6, ("2001:db8::10", 16002), ("2001:db8::20", 17002), start=1795000010.0)
    w.statistics(1795000020.0, ifdrop=3)  # the capture says it dropped 3 packets during the first call
    capture = tmp_path / "crafted.pcapng"
    capture.write_bytes(w.getvalue())

    result = import_capture(tmp_path / "data", capture)
    assert result["returncode"] == 0 and result["calls_created"] == 2
    by_id = {c["sip_call_id"]: c for c in calls(tmp_path / "data")}
    vlan, six = by_id["vlan-call@pbx"], by_id["v6-call@pbx"]
    for call in (vlan, six):
        assert call["state"] == "completed" and call["recording_state"] == "ready"
        assert call["caller_name"] == "山田 太郎" and call["callee_number"] == "201"
        assert abs(call["duration"] - 4.1) < 0.05
        pcm, rate = decode_recording(call["recording"]["path"])
        assert abs(dominant(pcm[int(0.5 * rate) : int(3.5 * rate), 0], rate) - 440) < 10
        assert abs(dominant(pcm[int(0.5 * rate) : int(3.5 * rate), 1], rate) - 880) < 10
    caller_stream = vlan["streams"][0]
    assert caller_stream["ssrc_changes"] == 1 and caller_stream["received"] == 195
    # 5 packets missing: the capture reported 3 drops while the call was alive, so 3 are capture
    # loss and only 2 count against the network
    assert caller_stream["capture_lost"] == 3 and caller_stream["lost"] == 2
    assert vlan["packets"]["capture_lost"] == 3 and vlan["packets"]["lost"] == 2
    assert six["packets"]["capture_lost"] == 0 and six["packets"]["lost"] == 0
