"""End-to-end harness: real `callvault` processes on loopback, driven by real peers."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callvault.tools.siprec_client import sip_ping

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = Path(__file__).parent / "sipp"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        port = random.randint(20000, 59000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def rtp_block(size: int = 200) -> tuple[int, int]:
    low = random.randrange(30000, 60000 - size, 2)
    return low, low + size - 1


def cli(
    data_dir: Path, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLVAULT_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "callvault.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@dataclass
class Server:
    """A recorder and a worker sharing one data directory."""

    data_dir: Path
    sip_port: int
    rtp_range: tuple[int, int]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CALLVAULT_DATA_DIR": str(self.data_dir), **self.extra_env}

    def start(self, *names: str) -> None:
        for name in names or ("recorder", "worker"):
            args = [sys.executable, "-m", "callvault.cli", name]
            if name == "recorder":
                args += [
                    "--sip-host",
                    "127.0.0.1",
                    "--sip-port",
                    str(self.sip_port),
                    "--rtp-ports",
                    f"{self.rtp_range[0]}-{self.rtp_range[1]}",
                ]
            log = (self.data_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        if "recorder" in (names or ("recorder",)):
            self.wait(lambda: sip_ping(self.sip_port), 20, "recorder answering OPTIONS")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def calls(self) -> list[dict[str, Any]]:
        out = cli(self.data_dir, "calls", "--json", "--limit", "1000").stdout
        return json.loads(out)

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\n--- recorder log ---\n"
            f"{self.log('recorder')[-4000:]}\n--- worker log ---\n{self.log('worker')[-4000:]}"
        )

    def wait_calls(self, n: int, *, states: tuple[str, ...] = ("ready",), timeout: float = 30) -> list[dict]:
        def done() -> list[dict[str, Any]] | None:
            calls = self.calls()
            finished = [c for c in calls if c["recording_state"] in states]
            return calls if len(finished) >= n else None

        return self.wait(done, timeout, f"{n} call(s) with recording in {states}")  # type: ignore[no-any-return]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a recorder + worker on a fresh data directory, with extra environment settings."""
    started: list[Server] = []

    def make(**env: str) -> Server:
        data = tmp_path / f"data{len(started)}"
        data.mkdir()
        cli(data, "manage", "migrate", "--noinput", "-v", "0")
        srv = Server(data_dir=data, sip_port=free_port(), rtp_range=rtp_block(), extra_env=env)
        started.append(srv)
        srv.start()
        return srv

    try:
        yield make
    finally:
        for srv in started:
            srv.stop_all()


@pytest.fixture
def server(server_factory: Callable[..., Server]) -> Server:
    return server_factory()


def run_sipp(
    scenario: str, server: Server, *, transport: str = "u1", extra: tuple[str, ...] = (), timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run one sipp scenario from tests/e2e/sipp against the server; fails the test on sipp failure."""
    media_port = random.randrange(40000, 50000, 4)
    args = [
        "sipp",
        "-sf",
        str(SIPP_DIR / scenario),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-mp",
        str(media_port),
        "-t",
        transport,
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        *extra,
        f"127.0.0.1:{server.sip_port}",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10, cwd=server.data_dir)
    assert proc.returncode == 0, (
        f"sipp {scenario} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}"
    )
    return proc
