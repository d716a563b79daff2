"""Helpers for the passive-capture end-to-end tests: sipp calls on loopback, dumpcap, RTP pcaps."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callvault.codecs.g711 import decode as g711_decode
from callvault.codecs.g711 import encode as g711_encode
from callvault.pcap.build import pcap_bytes, udp_frame
from callvault.pcap.net import Datagram, NetDecoder
from callvault.pcap.reader import PcapReader
from tests.e2e.conftest import SIPP_DIR, cli, free_port

SIPP_PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def rtp_pcap(path: Path, pcm: np.ndarray, *, law: str = "ulaw", pt: int = 0, ssrc: int = 0x5EED) -> Path:
    """A pcap of one RTP stream (20 ms packets) that sipp's play_pcap_audio can send."""
    pcm = pcm.astype(np.int16)
    frames = []
    for n, start in enumerate(range(0, len(pcm) - 159, 160)):
        payload = g711_encode(pcm[start : start + 160], law)  # type: ignore[arg-type]
        header = bytes([0x80, pt]) + (n & 0xFFFF).to_bytes(2, "big") + (n * 160).to_bytes(4, "big")
        frames.append(
            (
                1000.0 + n * 0.02,
                udp_frame("10.0.0.1", 6000, "10.0.0.2", 7000, header + ssrc.to_bytes(4, "big") + payload),
            )
        )
    path.write_bytes(pcap_bytes(frames))
    return path


def pcap_audio(path: Path, law: str = "alaw") -> np.ndarray:
    """Decode the RTP payloads of a one-stream pcap (what sipp sends) to PCM."""
    reader = PcapReader()
    reader.feed(path.read_bytes())
    dec = NetDecoder()
    out = []
    for ts, lt, frame in reader.records():
        pkt = dec.decode(ts, lt, frame)
        if isinstance(pkt, Datagram) and len(pkt.payload) > 12 and pkt.payload[1] & 0x7F in (0, 8):
            out.append(g711_decode(pkt.payload[12:], law))  # type: ignore[arg-type]
    return np.concatenate(out)


@dataclass
class Ports:
    uac: int
    uas: int
    uac_media: int
    uas_media: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(
            free_port(), free_port(), random.randrange(30000, 40000, 20), random.randrange(40000, 50000, 20)
        )

    def bpf(self) -> str:
        return (
            f"port {self.uac} or port {self.uas} or portrange {self.uac_media}-{self.uac_media + 7} "
            f"or portrange {self.uas_media}-{self.uas_media + 7}"
        )


@contextmanager
def dumpcap(path: Path, bpf: str, *, fmt: str = "pcapng") -> Iterator[Path]:
    """Capture loopback traffic to ``path`` while the block runs."""
    args = ["dumpcap", "-q", "-i", "lo", "-f", bpf, "-w", str(path)]
    if fmt == "pcap":
        args.insert(1, "-P")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not (path.exists() and path.stat().st_size > 0):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"dumpcap did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        time.sleep(0.05)
    time.sleep(0.3)
    try:
        yield path
    finally:
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def scenario(tmp: Path, name: str, **values: Any) -> Path:
    text = (SIPP_DIR / name).read_text()
    for key, value in values.items():
        text = text.replace(key, str(value))
    out = tmp / name
    out.write_text(text)
    return out


def sipp_call(
    tmp: Path, ports: Ports, uac: str, uas: str, *, transport: str = "u1", timeout: float = 60, **values: Any
) -> None:
    """Run one call from a sipp UAC to a sipp UAS; fail the test if either side fails."""
    uas_file, uac_file = scenario(tmp, uas, **values), scenario(tmp, uac, **values)
    common = [
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-t",
        transport,
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
    ]
    server = subprocess.Popen(
        ["sipp", "-sf", str(uas_file), "-p", str(ports.uas), "-mp", str(ports.uas_media), *common],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(0.5)
    try:
        client = subprocess.run(
            [
                "sipp",
                "-sf",
                str(uac_file),
                "-p",
                str(ports.uac),
                "-mp",
                str(ports.uac_media),
                *common,
                f"127.0.0.1:{ports.uas}",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout + 10,
        )
        assert client.returncode == 0, f"sipp UAC failed:\n{client.stdout[-3000:]}\n{client.stderr[-2000:]}"
        server.wait(timeout)
        assert server.returncode == 0, (
            f"sipp UAS failed:\n{(server.stdout.read() if server.stdout else '')[-3000:]}"
        )
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def callvault(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI on a data directory; the caller checks the exit code."""
    return cli(data_dir, *args, check=False, timeout=timeout)


def import_capture(data_dir: Path, *files: Path, finalize: bool = True) -> dict[str, Any]:
    proc = callvault(data_dir, "import", *map(str, files), *(["--finalize"] if finalize else []), "--json")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    result["returncode"] = proc.returncode
    result["stderr"] = proc.stderr
    return result


def calls(data_dir: Path) -> list[dict[str, Any]]:
    proc = callvault(data_dir, "calls", "--json", "--limit", "1000")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]
