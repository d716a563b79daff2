"""End to end: a real recorder, worker and web server; PBX events over HTTP; SIPREC calls made by
the project's SIPREC client. The PBX's call and the recording become one call, and the
completeness check finds a short and a one-sided recording in real recorded audio."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from callvault.apps.webhooks.signing import sign_header
from callvault.tools.siprec_client import Leg, SiprecClient
from tests.e2e.conftest import REPO, Server, cli, free_port

pytestmark = pytest.mark.e2e

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SETUP = """
from callvault.apps.accounts.models import Line, Team
from callvault.apps.pbx.models import Integration
team = Team.objects.create(name="営業部")
Line.objects.create(number="201", team=team, label="営業 山本")
i = Integration.objects.create(name="本社 PBX")
print("KEYS", i.key, i.secret)
"""

QUERY = """
import json
from callvault.apps.calls.models import Call
print("JSON" + json.dumps([{"id": str(c.pk), "source": c.source, "state": c.state,
    "team": c.team.name if c.team else None,
    "metadata": c.metadata, "completeness": c.completeness, "reasons": c.completeness_reasons,
    "recording_state": c.recording_state} for c in Call.objects.order_by("started_at")], ensure_ascii=False))
"""


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


class PbxClient:
    def __init__(self, port: int, key: str, secret: str) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1/events"
        self.key, self.secret = key, secret

    def send(self, event: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            self.url,
            body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Callvault-Key": self.key,
                "X-Callvault-Signature": sign_header(self.secret, body),
            },
        )
        with _NO_PROXY.open(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


def now_iso(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).isoformat()


def start_web(server: Server) -> int:
    port = free_port()
    log = (server.data_dir / "web.log").open("ab")
    server.procs["web"] = subprocess.Popen(
        [sys.executable, "-m", "callvault.cli", "web", "--http-host", "127.0.0.1", "--http-port", str(port)],
        env=server.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )

    def up() -> bool:
        try:
            with _NO_PROXY.open(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    server.wait(up, 30, "web server")
    return port


def calls(server: Server) -> list[dict[str, Any]]:
    out = cli(server.data_dir, "manage", "shell", "-c", QUERY).stdout
    return json.loads(out[out.index("JSON") + 4 :].strip())  # type: ignore[no-any-return]


def test_pbx_events_and_siprec_recordings_become_one_call_each_and_are_checked(server: Server) -> None:
    port = start_web(server)
    out = cli(server.data_dir, "manage", "shell", "-c", SETUP).stdout
    key, secret = out[out.index("KEYS") :].split()[1:3]
    pbx = PbxClient(port, key, secret)
    client = SiprecClient(("127.0.0.1", server.sip_port))

    # Call 1: the PBX rings extension 201 and reports the answer 8 s before the SBC starts recording;
    # the recording (3 s) is therefore shorter than the call the PBX reports (about 11 s).
    first = pbx.send(
        {
            "event": "ringing",
            "call_id": "1732712345.1",
            "time": now_iso(-10),
            "caller": "03-1234-5678",
            "callee": "201",
            "direction": "in",
        }
    )
    assert first["state"] == "ringing" and first["linked"] is False
    pbx.send({"event": "answered", "call_id": "1732712345.1", "time": now_iso(-8), "extension": "201"})
    result = asyncio.run(
        client.call(Leg("0312345678", "山田 太郎", tone(440, 3)), Leg("201", "山本", tone(880, 3)))
    )
    assert result.bye_status == 200
    ended = pbx.send({"event": "ended", "call_id": "1732712345.1", "time": now_iso()})
    assert ended["linked"] is True  # the state stays the recorder's (it may not have seen the BYE yet)

    # Call 2: no PBX event at all, and the callee's phone sends no RTP: a one-sided recording.
    silent = frozenset(range(10_000))
    result = asyncio.run(
        client.call(Leg("0398765432", "佐藤", tone(440, 3)), Leg("202", "受付", tone(880, 3), drop=silent))
    )
    assert result.bye_status == 200

    # Call 3: the PBX reports a missed call; nothing is recorded.
    pbx.send(
        {
            "event": "ringing",
            "call_id": "1732712345.3",
            "time": now_iso(-20),
            "caller": "09011112222",
            "callee": "201",
        }
    )
    pbx.send({"event": "ended", "call_id": "1732712345.3", "time": now_iso(-5), "reason": "NOANSWER"})

    # Call 4: a phone fires its action URLs in parallel; the first events of one call arrive at once.
    burst = [
        {
            "event": kind,
            "call_id": "race-4",
            "time": now_iso(-30 + i),
            "caller": "0311112222",
            "callee": "201",
            "reason": "NOANSWER",
        }
        for i, kind in enumerate(["ringing", "ended"] * 3)
    ]
    with ThreadPoolExecutor(len(burst)) as pool:
        answers = list(pool.map(pbx.send, burst))
    assert {a["call_id"] for a in answers} == {answers[0]["call_id"]}  # one call, no error

    server.wait_calls(2, timeout=60)
    rows = calls(server)
    assert len(rows) == 4, rows  # one row per call: the PBX's call 1 was merged into its recording
    linked = next(r for r in rows if r["metadata"].get("pbx_link"))
    assert (linked["source"], linked["state"], linked["team"]) == ("siprec", "completed", "営業部")
    assert linked["metadata"]["pbx"]["call_id"] == "1732712345.1"
    missed = next(
        r for r in rows if r["source"] == "pbx" and r["metadata"]["pbx"]["call_id"] == "1732712345.3"
    )
    assert missed["state"] == "cancelled" and missed["recording_state"] == "none"
    raced = next(r for r in rows if r["source"] == "pbx" and r["metadata"]["pbx"]["call_id"] == "race-4")
    assert raced["state"] == "cancelled"

    env = {**server.env(), "CALLVAULT_COMPLETENESS_GRACE": "0"}
    check = subprocess.run(
        [sys.executable, "-m", "callvault.cli", "check-recordings", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    summary = json.loads(check.stdout)
    assert summary["checked"] == 4 and summary["flagged"] == 2, summary
    by_id = {r["id"]: r for r in calls(server)}
    assert [r["code"] for r in by_id[linked["id"]]["reasons"]] == ["short"]
    short = by_id[linked["id"]]["reasons"][0]["detail"]
    assert short["call"] == pytest.approx(11, abs=1.5) and short["recording"] == pytest.approx(3, abs=0.5)
    one_sided = next(r for r in by_id.values() if r["source"] == "siprec" and r["id"] != linked["id"])
    assert by_id[raced["id"]]["completeness"] == "ok"
    assert [r["code"] for r in one_sided["reasons"]] == ["one_sided"]
    assert "callee" in one_sided["reasons"][0]["detail"]["silent"]
    assert by_id[missed["id"]]["completeness"] == "ok"  # a missed call needs no recording

    human = subprocess.run(
        [sys.executable, "-m", "callvault.cli", "check-recordings", "--strict"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert human.returncode == 1
    # Nothing is due again (flagged calls are re-checked every 15 minutes); the summary still lists them.
    assert "チェックした通話: 0 件" in human.stdout and "問題のある通話 (全体): 2 件" in human.stdout
    assert (
        "録音が短い" in human.stdout and "片側のみ" in human.stdout and "03-1234-5678 → 201" in human.stdout
    )
    everything = subprocess.run(
        [sys.executable, "-m", "callvault.cli", "check-recordings", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    assert "問題あり 2 件" in everything.stdout and "片側のみ 1 件、録音が短い 1 件" in everything.stdout
