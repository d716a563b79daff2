"""Browser end-to-end harness: one real `callvault serve`, Debian's headless Chromium driven by Playwright.

- ``callvault`` (session): a migrated temp data dir with the accounts of :data:`ACCOUNTS`, then
  ``callvault serve`` on free loopback ports; ready once ``/healthz`` answers and the recorder
  answers SIP OPTIONS. Stopped at the end of the session, also after failures.
- ``browser`` (session): ``/usr/bin/chromium`` headless (never a downloaded browser).
- ``open_page(user, device=...)``: a page in a new context, logged in as ``user`` through the
  real login form (once per user; the storage state is reused), or anonymous with ``user=None``.
- ``sales_call``: a finished, recorded sipp call for 営業部/yamamoto (extension 201).

A failing test gets the tail of the server log, the browser's uncaught errors, console errors and
failed requests appended to its report, and a screenshot of each open page in
``test-artifacts/failures/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.e2e.conftest import REPO, SIPP_DIR, free_port, rtp_block, sip_ping

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=ja",  # the browser's own language, as at a Japanese office
    "--autoplay-policy=no-user-gesture-required",
    # loopback only: no proxy from the environment, no name resolution
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]

DEVICES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1366, "height": 900}, "device_scale_factor": 1},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}

DEFAULT_TIMEOUT_MS = 15_000
NAVIGATION_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    display_name: str
    team: str = ""
    team_role: str = ""
    extension: str = ""
    admin: bool = False


ACCOUNTS: dict[str, Account] = {
    a.username: a
    for a in (
        Account("admin", "admin-Browser-Test-1", "管理者", admin=True),
        Account("sato", "sato-Browser-Test-1", "佐藤 花子", "営業部", "supervisor"),
        Account("yamamoto", "yamamoto-Browser-Test-1", "山本 健太", "営業部", "agent", "201"),
        Account("suzuki", "suzuki-Browser-Test-1", "鈴木 一郎", "サポート部", "agent", "301"),
    )
}

# Run by `callvault manage shell -c`; the accounts come in the environment as JSON.
SETUP_ACCOUNTS = """
import json, os
from django.contrib.auth import get_user_model
from callvault.apps.accounts.models import Line, Membership, Profile, Team
User = get_user_model()
for a in json.loads(os.environ["BROWSER_TEST_ACCOUNTS"]):
    if a["admin"]:
        user = User.objects.create_superuser(a["username"], "", a["password"])
    else:
        user = User.objects.create_user(a["username"], password=a["password"])
    Profile.objects.filter(user=user).update(display_name=a["display_name"], extension=a["extension"])
    if a["team"]:
        team, _ = Team.objects.get_or_create(name=a["team"])
        Membership.objects.create(user=user, team=team, role=a["team_role"])
        if a["extension"]:
            Line.objects.create(number=a["extension"], label=a["display_name"], team=team, user=user)
print("accounts:", User.objects.count(), "teams:", Team.objects.count(), "lines:", Line.objects.count())
"""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- the server ------------------------------------------------------------------------------------


@dataclass
class CallvaultServer:
    data_dir: Path
    http_port: int = field(default_factory=free_port)
    sip_port: int = field(default_factory=free_port)
    rtp_range: tuple[int, int] = field(default_factory=rtp_block)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "serve.log"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "CALLVAULT_DATA_DIR": str(self.data_dir), **extra}

    def log_tail(self, chars: int = 6000) -> str:
        if not self.log_path.exists():
            return "(no server log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "callvault.cli", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        assert proc.returncode == 0, f"callvault {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def prepare(self) -> None:
        self.cli("manage", "migrate", "--noinput", "-v", "0", timeout=120)
        accounts = json.dumps([a.__dict__ for a in ACCOUNTS.values()], ensure_ascii=False)
        self.cli("manage", "shell", "-c", SETUP_ACCOUNTS, BROWSER_TEST_ACCOUNTS=accounts)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callvault.cli",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--sip-host",
                "127.0.0.1",
                "--sip-port",
                str(self.sip_port),
                "--rtp-ports",
                f"{self.rtp_range[0]}-{self.rtp_range[1]}",
                "--http-host",
                "127.0.0.1",
                "--http-port",
                str(self.http_port),
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,  # its own process group: nothing is left behind on teardown
        )
        log.close()
        self.wait(self._http_ready, 40, f"the web server on {self.base_url}/healthz")
        self.wait(lambda: sip_ping(self.sip_port), 30, f"the recorder answering OPTIONS on {self.sip_port}")

    def _http_ready(self) -> bool:
        try:
            with _NO_PROXY.open(f"{self.base_url}/healthz", timeout=1) as res:
                return bool(res.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # `serve` stops its recorder, worker and web server
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this fixture created, by its id
            proc.wait(5)

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"callvault serve exited ({self.proc.returncode}) while waiting for {what}\n"
                    f"--- server log ---\n{self.log_tail()}"
                )
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}\n--- server log ---\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def calls(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("calls", "--json", "--limit", "100").stdout))

    def wait_recorded(self, call_id: str, timeout: float = 60) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            call = next((c for c in self.calls() if c["id"] == call_id), None)
            if call and call["recording_state"] == "failed":
                raise AssertionError(f"recording of {call_id} failed: {call['recording_error']}")
            return call if call and call["recording_state"] == "ready" else None

        return self.wait(ready, timeout, f"the recording of call {call_id} to be ready")


_SERVER: CallvaultServer | None = None


@pytest.fixture(scope="package")
def callvault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CallvaultServer]:
    global _SERVER
    shutil.rmtree(ARTIFACTS / "failures", ignore_errors=True)  # screenshots of an earlier run's failures
    server = CallvaultServer(tmp_path_factory.mktemp("callvault-browser"))
    server.prepare()
    _SERVER = server
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- sipp --------------------------------------------------------------------------------------------


class SippCall:
    """sipp running a SIPREC scenario in the background; records when it sent BYE."""

    def __init__(self, server: CallvaultServer, scenario: str = "siprec_basic.xml") -> None:
        self.scenario = scenario
        self.dir = server.data_dir / f"sipp-{int(time.time() * 1000)}"
        self.dir.mkdir()
        self.trace = self.dir / "messages.log"
        self.output = self.dir / "sipp.out"
        self.exited_at: float | None = None
        out = self.output.open("wb")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [
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
                str(_media_port()),
                "-t",
                "u1",
                "-nostdin",
                "-timeout",
                "60s",
                "-timeout_error",
                "-trace_msg",
                "-message_file",
                str(self.trace),
                f"127.0.0.1:{server.sip_port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        out.close()
        self._waiter = threading.Thread(target=self._wait_exit, daemon=True)
        self._waiter.start()

    def __enter__(self) -> SippCall:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # the test failed before the call ended: leave nothing running
            self.proc.kill()
            self.proc.wait()

    def _wait_exit(self) -> None:
        self.proc.wait()
        self.exited_at = time.time()

    def finish(self, timeout: float = 60) -> None:
        self._waiter.join(timeout)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sipp {self.scenario} did not finish in {timeout}s:\n{self.describe()}")
        assert self.proc.returncode == 0, (
            f"sipp {self.scenario} failed ({self.proc.returncode}):\n{self.describe()}"
        )

    def describe(self) -> str:
        out = self.output.read_text(errors="replace")[-3000:] if self.output.exists() else ""
        return out

    def bye_sent_at(self) -> float:
        """Wall-clock time sipp sent the BYE (from its message trace; else when it exited)."""
        text = self.trace.read_text(errors="replace") if self.trace.exists() else ""
        stamp = r"(\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+)"
        for m in re.finditer(stamp + r"[^\n]*\n[^\n]*message sent[^\n]*\n\s*\n\s*BYE ", text):
            return datetime.strptime(re.sub(r"\s+", " ", m.group(1)), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        assert self.exited_at is not None, "sipp has not finished"
        return self.exited_at


def _media_port() -> int:
    import random

    return random.randrange(40000, 50000, 4)


@dataclass
class PlacedCall:
    id: str
    data: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/calls/{self.id}/"


@pytest.fixture(scope="package")
def call_registry() -> dict[str, str]:
    """Calls placed during the session, by name (the live-list test registers the one it places)."""
    return {}


@pytest.fixture
def sales_call(callvault: CallvaultServer, call_registry: dict[str, str]) -> PlacedCall:
    """The sipp call to extension 201 (営業部, yamamoto), recorded; placed here if no test did yet."""
    call_id = call_registry.get("sales")
    if call_id is None:
        before = {c["id"] for c in callvault.calls()}
        with SippCall(callvault) as sipp:
            sipp.finish()
        new = callvault.wait(
            lambda: [c for c in callvault.calls() if c["id"] not in before],
            30,
            "the sipp call in `callvault calls`",
        )
        call_id = str(new[0]["id"])
        call_registry["sales"] = call_id
    return PlacedCall(call_id, callvault.wait_recorded(call_id))


# --- the browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: apt-get install -y chromium (see Makefile TEST_APT)"
    )
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
    )
    try:
        yield browser
    finally:
        browser.close()


@dataclass
class BrowserLog:
    """What went wrong in the browser during one test (reported with a failure)."""

    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    off_host_requests: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = []
        for name in ("page_errors", "console_errors", "failed_requests", "off_host_requests"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}:\n  " + "\n  ".join(items[-30:]))
        return "\n".join(parts) or "(nothing)"


def context_options(server: CallvaultServer, device: str, storage_state: Any = None) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "locale": "ja-JP",
        "timezone_id": "Asia/Tokyo",
        "service_workers": "block",
        "storage_state": storage_state,
        **DEVICES[device],
    }


def log_in(page: Page, account: Account) -> None:
    """Log in through the real (Japanese) login form."""
    page.goto("/login/")
    page.get_by_label("ユーザー名", exact=True).fill(account.username)
    page.get_by_label("パスワード", exact=True).fill(account.password)
    page.get_by_role("button", name="ログイン", exact=True).click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/", timeout=NAVIGATION_TIMEOUT_MS)


@pytest.fixture(scope="package")
def login_states(browser: Browser, callvault: CallvaultServer) -> Callable[[str], Any]:
    """The logged-in storage state of a user: logged in through the form once, then reused."""
    states: dict[str, Any] = {}

    def state_of(username: str) -> Any:
        if username not in states:
            context = browser.new_context(**context_options(callvault, "desktop"))
            try:
                page = context.new_page()
                page.set_default_timeout(DEFAULT_TIMEOUT_MS)
                try:
                    log_in(page, ACCOUNTS[username])
                except Exception as exc:
                    raise AssertionError(
                        f"could not log in as {username} (now at {page.url}): {exc}\n"
                        f"--- server log ---\n{callvault.log_tail()}"
                    ) from exc
                states[username] = context.storage_state()
            finally:
                context.close()
        return states[username]

    return state_of


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest,
    browser: Browser,
    callvault: CallvaultServer,
    login_states: Callable[[str], Any],
) -> Iterator[OpenPage]:
    """``open_page("yamamoto", device="phone")``: a new page in its own context (``None``: logged out)."""
    contexts: list[BrowserContext] = []
    log = BrowserLog()
    request.node.browser_log = log
    host = urlsplit(callvault.base_url).netloc

    def watch(page: Page) -> None:
        page.on("pageerror", lambda exc: log.page_errors.append(f"{page.url}: {exc}"))
        page.on(
            "console",
            lambda msg: log.console_errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None,
        )
        page.on(
            "response",
            lambda res: (
                log.failed_requests.append(f"{res.status} {res.request.method} {res.url}")
                if res.status >= 400
                else None
            ),
        )
        page.on("requestfailed", lambda req: log.failed_requests.append(f"failed {req.method} {req.url}"))

        def check_host(req: Any) -> None:
            parts = urlsplit(req.url)
            if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != host:
                log.off_host_requests.append(req.url)

        page.on("request", check_host)

    def open_(user: str | None, *, device: str = "desktop") -> Page:
        state = login_states(user) if user else None
        context = browser.new_context(**context_options(callvault, device, state))
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        context.on("page", watch)
        contexts.append(context)
        return context.new_page()

    try:
        yield open_
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            shots = ARTIFACTS / "failures"
            shots.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            for i, page in enumerate(p for c in contexts for p in c.pages):
                try:
                    page.screenshot(path=str(shots / f"{name}-{i}.png"), full_page=True, timeout=5000)
                except Exception:  # a screenshot must not hide the failure
                    continue
        for context in contexts:
            context.close()
    assert not log.off_host_requests, f"the browser tried to leave loopback: {log.off_host_requests}"
    assert not log.page_errors, f"uncaught JavaScript errors: {log.page_errors}"


# --- reporting -----------------------------------------------------------------------------------------

TIMINGS: list[tuple[str, float]] = []


def record_timing(name: str, seconds: float) -> None:
    TIMINGS.append((name, seconds))
    print(f"timing: {name}: {seconds:.3f} s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
    if report.failed and _SERVER is not None and "callvault" in getattr(item, "fixturenames", ()):
        log = getattr(item, "browser_log", None)
        if log is not None:
            report.sections.append(("browser", log.text()))
        report.sections.append(("callvault serve log (tail)", _SERVER.log_tail()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("browser e2e timings")
    for name, seconds in TIMINGS:
        terminalreporter.write_line(f"{name}: {seconds:.3f} s")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-timings.json").write_text(
        json.dumps(dict(TIMINGS), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
