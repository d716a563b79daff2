"""Screen-pop latency: from the SIPREC INVITE leaving the client to the card rendered in a browser.

What it does, per channel layer (``--layers embedded,redis``):

1. A fresh data directory: one team (営業部, shares its calls) with 50 users, line 201 (the team,
   user bench01), ``--customers`` customers of the team (default 2,000; Japanese names, a note
   each, a warning tag on every fifth), created with the customers app's services.
2. ``callvault serve`` (recorder + worker + web, as installed). ``redis``: with
   ``REDIS_URL=redis://127.0.0.1:6379/9`` (job queue and Channels layer on Redis; DB 9 is emptied
   first), else the embedded default (SQLite event table, tailed by the web process).
3. 50 WebSocket clients on ``/ws/events/``: 49 lightweight clients (``websockets``, one per user
   bench02..bench50, ``Authorization: Bearer`` API tokens) and one real browser (Debian's
   headless Chromium through Playwright, logged in as bench01 through the login form, on the
   calls list). A MutationObserver in the page notes ``Date.now()`` when each card is inserted.
4. ``--calls`` SIPREC calls (default 100), one after another, placed with
   ``callvault.tools.siprec_client`` (INVITE + metadata + two RTP streams for ``--media`` s, BYE);
   each caller number is distinct, 80 % are customers, 20 % unknown. The INVITE send time
   (``time.time()`` just before ``sendto``) starts every measurement. Same machine, same clock.

Reported per layer (p50 / p95 / max, ms): INVITE -> ``call.ringing`` written to the event table
(embedded only: the recorder's publishing; also ``call.answered``, written by the database
thread after the spool and the 200 OK, the first event a screen could see before), -> the
message at each lightweight client (all 49 per call; and the last of the 49 per call), -> the
card inserted in the browser page. Also the CPU (user+system, from /proc) of the
``callvault serve`` process tree per call.

Run: ``.venv/bin/python benchmarks/screenpop.py`` (both layers, 100 calls each),
``--calls 20`` for a quick look, ``--json-out FILE``. Loopback only; everything started here is
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from callvault.tools.siprec_client import Leg, SiprecClient, sip_ping  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
REDIS_URL = "redis://127.0.0.1:6379/9"
PASSWORD = "bench-Screenpop-1"
USERS = 50
TARGET_MS = 300

SETUP = """
import json, os, random
from django.contrib.auth import get_user_model
from callvault.apps.accounts.models import ApiToken, Line, Membership, Profile, Team
from callvault.apps.customers.models import CustomerTag
from callvault.apps.customers import services as cs
random.seed(5)
n_users, n_customers = int(os.environ["BENCH_USERS"]), int(os.environ["BENCH_CUSTOMERS"])
User = get_user_model()
team = Team.objects.create(name="営業部", share_calls=True)
tokens = {}
users = []
for i in range(1, n_users + 1):
    user = User.objects.create_user(f"bench{i:02d}", password=os.environ["BENCH_PASSWORD"])
    Profile.objects.filter(user=user).update(display_name=f"担当 {i:02d}")
    Membership.objects.create(user=user, team=team, role="agent")
    users.append(user)
    if i > 1:
        tokens[user.username] = ApiToken.issue(user, "benchmark")[1]
Line.objects.create(number="201", team=team, user=users[0], label="代表")
CustomerTag.objects.get_or_create(name="クレーム注意", defaults={"warning": True})
family = "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤".split()
given = "花子 太郎 一郎 美咲 健太 陽子 大輔 直子".split()
for i in range(n_customers):
    c = cs.create_customer(
        cs.CustomerInput(
            data={"name": random.choice(family) + " " + random.choice(given), "company": f"商事{i:04d}"},
            phones=[cs.PhoneInput(f"03-5555-{1000 + i:04d}")],
            tags=["クレーム注意"] if i % 5 == 0 else [],
            owner_team_id=team.pk,
        ),
        user=users[0],
        audit=False,
    )
    cs.add_note(c, f"前回は請求書の件 (No.{i})。折り返し希望。", user=users[0])
print("TOKENS " + json.dumps(tokens))
"""

WATCH = """() => {
  window.__cards = {};
  const root = document.getElementById("screenpop");
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) for (const n of r.addedNodes)
      if (n.classList && n.classList.contains("screenpop-card")) window.__cards[n.dataset.number] ??= now;
  }).observe(root, {childList: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 1),
        "p95": round(pct(ms, 95), 1),
        "max": round(max(ms), 1) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 1) if ms else float("nan"),
    }


def role_cpu(serve_pid: int) -> dict[str, float]:
    """CPU seconds of each part ``callvault serve`` runs (recorder, worker, web), with descendants."""
    out: dict[str, float] = {}
    for child in _children().get(serve_pid, []):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = argv[3].decode() if len(argv) > 3 else str(child)
        out[name] = out.get(name, 0.0) + tree_cpu(child)
    return out


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(raw[raw.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    return children


def tree_cpu(pid: int) -> float:
    """user+system CPU seconds of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        stats[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


@dataclass
class Run:
    layer: str
    data_dir: Path
    http_port: int = field(default_factory=free_port)
    sip_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {**os.environ, "CALLVAULT_DATA_DIR": str(self.data_dir)}
        env.pop("REDIS_URL", None)
        if self.layer == "redis":
            env["REDIS_URL"] = REDIS_URL
        return env

    def cli(self, *args: str, **extra: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "callvault.cli", *args],
            env={**self.env(), **extra},
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=1800,
        )
        if out.returncode:
            raise SystemExit(
                f"callvault {' '.join(args[:2])} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
            )
        return out.stdout

    def start(self) -> None:
        low = 30000 + (os.getpid() % 50) * 200
        log = (self.data_dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "callvault.cli", "serve", "--data-dir", str(self.data_dir),
                "--sip-host", "127.0.0.1", "--sip-port", str(self.sip_port),
                "--rtp-ports", f"{low}-{low + 199}",
                "--http-host", "127.0.0.1", "--http-port", str(self.http_port),
            ],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"callvault serve exited:\n{(self.data_dir / 'serve.log').read_text()[-3000:]}"
                )
            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1):
                    if sip_ping(self.sip_port):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit("callvault serve did not become ready")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class Listeners(threading.Thread):
    """The 49 lightweight clients (and the SIPREC calls), on an asyncio loop of their own."""

    def __init__(self, run: Run, tokens: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.run_, self.tokens = run, tokens
        self.loop = asyncio.new_event_loop()
        self.seen: dict[str, dict[str, float]] = {}  # user -> number -> time.time() of call.ringing
        self.connected = threading.Event()
        self.stop_event: asyncio.Event | None = None
        self.errors: list[str] = []
        self.start()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        self.stop_event = asyncio.Event()
        url = f"ws://127.0.0.1:{self.run_.http_port}/ws/events/"
        opened = 0

        async def client(user: str, token: str) -> None:
            nonlocal opened
            seen = self.seen.setdefault(user, {})
            try:
                async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                    opened += 1
                    if opened == len(self.tokens):
                        self.connected.set()
                    async for raw in ws:
                        now = time.time()
                        msg = json.loads(raw)
                        if msg.get("type") == "call.ringing":
                            seen.setdefault(msg["call"].get("caller_e164", ""), now)
            except Exception as exc:
                if not (self.stop_event and self.stop_event.is_set()):
                    self.errors.append(f"{user}: {exc!r}")

        tasks = [asyncio.ensure_future(client(u, t)) for u, t in self.tokens.items()]
        await self.stop_event.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def call(self, number: str, media: float) -> Any:
        pcm = np.zeros(int(media * 8000), dtype=np.int16)
        client = SiprecClient(("127.0.0.1", self.run_.sip_port))
        coro = client.call(Leg(number, "発信者", pcm), Leg("201", "代表", pcm))
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.join(10)


def published_at(data_dir: Path, kind: str = "call.ringing") -> dict[str, float]:
    """When the recorder wrote each event of ``kind`` (embedded layer), by caller number."""
    db = sqlite3.connect(data_dir / "callvault.sqlite3")
    try:
        rows = db.execute("SELECT payload, created_at FROM live_liveevent WHERE kind = ?", (kind,)).fetchall()
    finally:
        db.close()
    out: dict[str, float] = {}
    for payload, created in rows:
        number = json.loads(payload).get("caller_e164", "")
        stamp = datetime.fromisoformat(created if "+" in created[10:] else created + "+00:00")
        out.setdefault(number, stamp.timestamp())
    return out


def bench(layer: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    data = root / layer
    data.mkdir()
    run = Run(layer, data)
    if layer == "redis":
        subprocess.run(["redis-cli", "-n", "9", "flushdb"], check=True, capture_output=True)
    print(f"[{layer}] setting up {USERS} users and {args.customers} customers ...", flush=True)
    run.cli("manage", "migrate", "--noinput", "-v", "0")
    out = run.cli(
        "manage", "shell", "-c", SETUP,
        BENCH_USERS=str(USERS), BENCH_CUSTOMERS=str(args.customers), BENCH_PASSWORD=PASSWORD,
    )  # fmt: skip
    tokens = json.loads(next(line for line in out.splitlines() if line.startswith("TOKENS "))[7:])
    listeners: Listeners | None = None
    base_priority = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        if args.nice:  # the measured part only (inherited by callvault serve and Chromium)
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        run.start()
        listeners = Listeners(run, tokens)
        if not listeners.connected.wait(30):
            raise SystemExit(f"the 49 clients did not connect: {listeners.errors[:3]}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-proxy-server", "--lang=ja"],
            )  # fmt: skip
            page = browser.new_context(
                base_url=f"http://127.0.0.1:{run.http_port}", locale="ja-JP"
            ).new_page()
            page.goto("/login/")
            page.get_by_label("ユーザー名", exact=True).fill("bench01")
            page.get_by_label("パスワード", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="ログイン", exact=True).click()
            page.wait_for_url(lambda url: url.rstrip("/").endswith(str(run.http_port)))
            page.wait_for_selector("#screenpop[data-connected='1']", state="attached", timeout=15000)
            page.evaluate(WATCH)
            time.sleep(1.0)
            sent: dict[str, float] = {}
            assert run.proc is not None
            cpu0, roles0 = tree_cpu(run.proc.pid), role_cpu(run.proc.pid)
            for i in range(args.calls):
                known = i % 5 != 4
                index = i if known else 5000 + i
                number = f"+81355{55 if known else 56}{1000 + index % 8000:04d}"
                national = "0" + number[3:]
                result = listeners.call(national, args.media)
                if result.invite_status != 200:
                    print(f"  call {i}: INVITE answered {result.invite_status}", flush=True)
                    continue
                sent[number] = result.invite_sent_at
                page.wait_for_timeout(int(args.gap * 1000))  # lets the page's observer run meanwhile
                if (i + 1) % 20 == 0:
                    print(f"[{layer}] {i + 1}/{args.calls} calls", flush=True)
            page.wait_for_timeout(2000)
            cpu1, roles1 = tree_cpu(run.proc.pid), role_cpu(run.proc.pid)
            cards: dict[str, float] = page.evaluate("() => window.__cards")
            browser.close()
    finally:
        if listeners is not None:
            listeners.close()
        run.stop()
        if args.nice:
            os.setpriority(os.PRIO_PROCESS, 0, base_priority)
    assert listeners is not None
    browser_lat = [cards[n] / 1000 - t for n, t in sent.items() if n in cards]
    per_client = [seen[n] - t for seen in listeners.seen.values() for n, t in sent.items() if n in seen]
    last_client = []
    for n, t in sent.items():
        times = [seen[n] for seen in listeners.seen.values() if n in seen]
        if len(times) == len(listeners.seen):
            last_client.append(max(times) - t)
    result: dict[str, Any] = {
        "layer": layer,
        "calls": len(sent),
        "browser_cards": len(browser_lat),
        "clients_complete": len(last_client),
        "invite_to_browser_card_ms": summary(browser_lat),
        "invite_to_each_client_ms": summary(per_client),
        "invite_to_last_of_49_clients_ms": summary(last_client),
        "serve_cpu_ms_per_call": round((cpu1 - cpu0) * 1000 / max(1, len(sent)), 1),
        "cpu_ms_per_call_by_part": {
            k: round((roles1.get(k, 0.0) - v) * 1000 / max(1, len(sent)), 1) for k, v in roles0.items()
        },
        "client_errors": listeners.errors[:5],
        # per call, in the order placed: seconds after the first INVITE, and ms to the browser card
        "samples": [
            [round(t - min(sent.values()), 2), round((cards[n] / 1000 - t) * 1000, 1) if n in cards else None]
            for n, t in sent.items()
        ],
    }
    if layer == "embedded":
        pub = published_at(data)
        result["invite_to_event_written_ms"] = summary([pub[n] - t for n, t in sent.items() if n in pub])
        # the first event a screen could see before the ringing event went out from the INVITE:
        # call.answered, written by the database thread after the spool and the 200 OK
        answered = published_at(data, "call.answered")
        result["invite_to_db_thread_event_written_ms"] = summary(
            [answered[n] - t for n, t in sent.items() if n in answered]
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layers", default="embedded,redis", help="embedded, redis or both (comma-separated)"
    )
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--media", type=float, default=0.3, help="seconds of RTP per call")
    parser.add_argument("--gap", type=float, default=0.7, help="seconds between one call's end and the next")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="priority of the measured part (serve, Chromium, clients), e.g. -10 on a shared machine",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="callvault-screenpop-") as tmp:
        for layer in [x.strip() for x in args.layers.split(",") if x.strip()]:
            results.append(bench(layer, args, Path(tmp)))
            shown = {k: v for k, v in results[-1].items() if k != "samples"}
            print(json.dumps(shown, ensure_ascii=False, indent=2), flush=True)
    print("\nlayer      what                               n    p50 ms   p95 ms   max ms")
    for r in results:
        for key in (
            "invite_to_db_thread_event_written_ms",
            "invite_to_event_written_ms",
            "invite_to_each_client_ms",
            "invite_to_last_of_49_clients_ms",
            "invite_to_browser_card_ms",
        ):
            if key in r:
                s = r[key]
                name = key.removeprefix("invite_to_").removesuffix("_ms")
                cols = f"{s['n']:>4} {s['p50']:>8} {s['p95']:>8} {s['max']:>8}"
                print(f"{r['layer']:<10} INVITE -> {name:<24} {cols}")
        parts = ", ".join(f"{k} {v}" for k, v in r["cpu_ms_per_call_by_part"].items())
        print(f"{r['layer']:<10} callvault serve CPU per call: {r['serve_cpu_ms_per_call']} ms ({parts})")
    ok = all(r["invite_to_browser_card_ms"]["p95"] <= TARGET_MS for r in results)
    print(f"\ntarget p95 <= {TARGET_MS} ms (INVITE -> card in the browser): {'met' if ok else 'NOT met'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
