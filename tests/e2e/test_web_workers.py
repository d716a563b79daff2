"""`callvault web --workers N`: several processes on one port, live events reach every one of them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import REPO, cli, free_port

pytestmark = pytest.mark.e2e

SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
u = get_user_model().objects.create_superuser("boss", password="workers-Passw0rd")
s = SessionStore()
s[SESSION_KEY] = str(u.pk)
s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
s[HASH_SESSION_KEY] = u.get_session_auth_hash()
s.create()
print(s.session_key)
"""

HANG_UP = """
from datetime import UTC, datetime
from callvault.apps.calls.models import Call
from callvault.apps.web import live
call = Call.objects.create(
    started_at=datetime.now(UTC), caller_number="+81312345678", callee_number="201", state="completed"
)
live.deliver("call.ended", call)
print(call.pk)
"""


def owners(port: int) -> dict[int, int]:
    """Established connections to ``port`` per owning process id (from ``ss``)."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    found: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        found[int(pid)] = found.get(int(pid), 0) + 1
    return found


def children(pid: int) -> list[int]:
    """The worker processes uvicorn started (not multiprocessing's resource tracker)."""
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                out.append(int(child))
    return out


def test_several_web_processes_share_the_port_and_all_get_live_events(tmp_path: Path) -> None:
    cli(tmp_path, "manage", "migrate", "--noinput")
    session = cli(tmp_path, "manage", "shell", "-c", SESSION).stdout.strip().splitlines()[-1]
    port = free_port()
    log = (tmp_path / "web.log").open("ab")
    web = subprocess.Popen(
        [sys.executable, "-m", "callvault.cli", "web", "--http-port", str(port), "--workers", "2"],
        env={**os.environ, "CALLVAULT_DATA_DIR": str(tmp_path)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200 and len(children(web.pid)) >= 2:
                        break
            except OSError:
                pass
            assert web.poll() is None, (tmp_path / "web.log").read_text()
            assert time.monotonic() < deadline, "web --workers 2 did not come up"
            time.sleep(0.2)
        workers = set(children(web.pid))
        assert len(workers) == 2

        async def scenario() -> None:
            headers = {"Cookie": f"sessionid={session}"}
            sockets: list[ClientConnection] = []
            try:
                # open connections until both processes hold some (the kernel picks the process)
                while len(sockets) < 40 and len(set(owners(port)) & workers) < 2:
                    ws = await connect(
                        f"ws://127.0.0.1:{port}/ws/events/",
                        additional_headers=headers,
                        origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
                    )
                    await ws.send("ping")  # answered once the consumer (and its event tailer) runs
                    assert "pong" in str(await asyncio.wait_for(ws.recv(), 10))
                    sockets.append(ws)
                held = owners(port)
                assert len(set(held) & workers) == 2, held
                call_id = await asyncio.to_thread(
                    lambda: cli(tmp_path, "manage", "shell", "-c", HANG_UP).stdout.strip().splitlines()[-1]
                )
                for ws in sockets:
                    while True:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if event.get("call", {}).get("id") == call_id:
                            assert event["type"] == "call.ended"
                            break
            finally:
                for ws in sockets:
                    await ws.close()

        asyncio.run(scenario())
        # a page through either process
        for _ in range(4):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/", headers={"Cookie": f"sessionid={session}"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200 and b'id="calls-body"' in r.read()
    finally:
        web.terminate()
        try:
            web.wait(20)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
        log.close()
    assert web.returncode is not None
