"""The web app at 1,000,000 calls: calls list, call page, BYE -> visible in the open list.

What it does:

1. **Seeds** a realistic dataset per backend and caches it (``--reseed`` to rebuild):
   SQLite in ``<cache>/<scale>-sqlite/callvault.sqlite3``, PostgreSQL in the database
   ``callvault_bench_<scale>`` (files under ``<cache>/<scale>-postgres/``). 1,000,000 calls over
   ~2 years (weekday business hours, JST) across 20 teams and 200 agents; customers with +81
   3/6/4x/90/80/70 numbers (repeat callers), withheld numbers, extensions, Japanese names;
   mostly completed calls, some cancelled (missed), interrupted and failed; two participants
   and two streams per call; a Recording row for every call with a recording; tags on ~5 %
   and comments on ~1 % of calls, DTMF on some. A few hundred calls point at one real Opus
   file (``callvault.media.encode.encode_recording``, hard-linked under distinct keys) for the
   call page. Rows are written with executemany (SQLite) or COPY (PostgreSQL) with the
   secondary indexes dropped and rebuilt afterwards. PostgreSQL gets VACUUM ANALYZE (what
   autovacuum does anyway); SQLite gets no ANALYZE, as in production (callvault never runs it).
2. **Load**: ``callvault web`` (uvicorn; ``--web-workers N`` processes, default 1 as ``callvault
   serve`` runs it) pinned to ``--web-cpus`` (``taskset``, default core 0); this script drives it
   from core 1 with 20 virtual users (asyncio, a minimal HTTP/1.1 keep-alive client; each user
   logs in once and keeps its
   session cookie). Every scenario runs twice: one user alone (the service time), then 20 users
   without think time (closed loop, the issue's "20 concurrent users") for a fixed number of
   requests (with a time cap). Scenarios: first page as admin / supervisor / agent (team shares
   calls) / agent (own calls only); a team + date-range filtered page 50 pages deep (the keyset
   cursor followed page by page beforehand); number search, full (``03-1234-5678``) and partial
   (``1234-5678``); the call page of a call with a playable recording.
   Reported: p50/p95/p99/max, throughput, the web process's CPU per request and, for
   PostgreSQL, the CPU of all postgres processes per request (the server is not pinned).
3. **BYE -> visible**: ``callvault serve`` (recorder + worker + web) on a copy of the seeded
   SQLite data directory; an admin session opens the list page and ``/ws/events/`` (cookie,
   Origin, as calls.js does); calls are placed with ``callvault.tools.siprec_client`` and the
   time from sending BYE to the ``call.ended`` event, the row fetch ``/calls/<id>/row`` (after
   calls.js's 120 ms debounce) and ``call.completed`` (recording ready) are measured.

Run: ``.venv/bin/python benchmarks/web_list.py`` (1,000,000 calls, both backends),
``--quick`` (50,000 calls, a few minutes), ``--backends sqlite``, ``--reseed``,
``--json-out FILE``. Loopback only; every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from callvault.tools.siprec_client import sip_ping

REPO = Path(__file__).resolve().parents[1]
CODE = [REPO]  # the callvault package the servers and the seeding run (see snapshot_code)
NICE = [0]  # --nice: priority of the servers and the load generator

SEED_VERSION = 4  # bump when the generated data changes: cached datasets are rebuilt
SERVER_CPUS = [0]  # --web-cpus: the cores the web server is pinned to
CLIENT_CPU = 1
WEB_WORKERS = [1]  # --web-workers
TARGET_P95_MS = 150.0
TARGET_BYE_S = 2.0
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-Passw0rd-web-list"
SPAN_DAYS = 730
N_TEAMS = 20
AGENTS_PER_TEAM = 10
OWN_ONLY_TEAMS = 5  # the last 5 teams do not share calls with their agents
SEARCH_FULL = "03-1234-5678"
SEARCH_PARTIAL = "1234-5678"
JS_DEBOUNCE_S = 0.120  # calls.js waits this long after an event before fetching the row
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ------------------------------------------------------------------------------------------------
# helpers shared by both sides


def scale_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def pg_url(dbname: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{dbname}"


def _nice() -> list[str]:
    return ["nice", "-n", str(NICE[0])] if NICE[0] else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(data_dir: Path, database_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        CALLVAULT_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(CODE[0]),
        CALLVAULT_LOG_LEVEL="WARNING",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def snapshot_code(root: Path, source: str) -> Path:
    """Copy the callvault package that servers and seeding run, so edits during a run don't mix in.

    ``head``: the committed package (``git archive HEAD``, read-only); ``worktree``: as on disk.
    """
    src = root / "src"
    src.mkdir()
    if source == "head":
        archive = subprocess.run(
            ["git", "archive", "HEAD", "callvault"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    else:
        shutil.copytree(REPO / "callvault", src / "callvault", ignore=shutil.ignore_patterns("__pycache__"))
    CODE[0] = src
    sys.path.insert(0, str(src))
    return src


def code_version(source: str) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "callvault"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if source == "head":
        return f"{head} (HEAD)"
    n = len(dirty.splitlines())
    return head + (f" + {n} uncommitted file(s) under callvault/" if n else "")


# ------------------------------------------------------------------------------------------------
# seeding (runs in a child process with Django set up on the chosen backend)

SURNAMES = (
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 清水 "
    "山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 村上 遠藤 青木 坂本"
).split()
GIVEN = (
    "太郎 花子 大輔 美咲 翔太 陽菜 健一 由美 直樹 さくら 拓也 愛 誠 恵 亮 彩 和也 真由美 健太 優子 "
    "浩 明美 悠斗 結衣 剛 千尋"
).split()
COMPANIES = (
    "株式会社サンプル商事 有限会社山田工務店 株式会社みらいテック 合同会社さくらデザイン 株式会社東京物流 "
    "医療法人健康会 株式会社大阪食品 株式会社グリーン不動産 株式会社北斗システム 株式会社なにわ運輸"
).split()
TEAM_NAMES = (
    "東京第1営業部 東京第2営業部 大阪営業部 名古屋営業部 福岡営業所 札幌営業所 カスタマーサポート1課 "
    "カスタマーサポート2課 テクニカルサポート 法人窓口 解約受付 請求・支払窓口 新規受付 予約センター "
    "品質管理室 コールバック班 夜間窓口 VIP窓口 代理店サポート 採用窓口"
).split()
TAGS = [
    ("クレーム", "#dc2626"),
    ("要折り返し", "#f59e0b"),
    ("研修用", "#2563eb"),
    ("契約", "#16a34a"),
    ("解約", "#7c3aed"),
    ("VIP", "#db2777"),
    ("見積もり", "#0891b2"),
    ("確認済み", "#4b5563"),
    ("エスカレーション", "#b91c1c"),
    ("新規", "#059669"),
]
COMMENTS = [
    "お客様から折り返しの希望あり。明日午前中に連絡すること。",
    "請求金額についての問い合わせ。説明済み。",
    "ここで保留の案内が長すぎる。研修で共有。",
    "解約理由：料金。引き止めオファー提示済み。",
    "担当者変更の依頼。上長に確認中。",
    "声が聞き取りにくいとのこと。回線品質を確認。",
]
REAL_RECORDING_SECONDS = 45.0


def _seed_child(opts: dict[str, Any]) -> None:
    """Entry point of the seeding process: ``web_list.py --seed-child '<json>'``."""
    from callvault.cli import _setup_django

    _setup_django(opts["data_dir"])
    started = time.monotonic()
    Seeder(opts).run()
    print(f"seeded in {time.monotonic() - started:.1f} s", flush=True)


class Seeder:
    def __init__(self, opts: dict[str, Any]) -> None:
        from django.db import connection

        self.opts = opts
        self.n = int(opts["calls"])
        self.batch = int(opts.get("batch", 50_000))
        self.real_calls = int(opts["real_calls"])
        self.rng = np.random.default_rng(int(opts.get("seed", 20261127)))
        self.vendor = connection.vendor
        self.data_dir = Path(opts["data_dir"])
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.timings: dict[str, float] = {}

    # --- small tables through the ORM ------------------------------------------------------
    def accounts(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password

        from callvault.apps.accounts.models import Line, Membership, Profile, Team
        from callvault.apps.calls.models import Tag

        User = get_user_model()
        pw = make_password(PASSWORD)  # one Argon2 hash for everybody: hashing 221 times takes a while
        teams = Team.objects.bulk_create(
            [Team(name=name, share_calls=i < N_TEAMS - OWN_ONLY_TEAMS) for i, name in enumerate(TEAM_NAMES)]
        )
        teams = list(Team.objects.order_by("id"))
        users = [User(username="bench-admin", is_superuser=True, is_staff=True, password=pw)]
        for t in range(N_TEAMS):
            users.append(User(username=f"sv{t + 1:02d}", password=pw))
        for t in range(N_TEAMS):
            for k in range(AGENTS_PER_TEAM):
                users.append(User(username=f"ag{t + 1:02d}{k}", password=pw))
        User.objects.bulk_create(users)
        by_name = {u.username: u for u in User.objects.all()}
        profiles, memberships, lines = [], [], []
        rng = random.Random(7)
        self.agent_names: list[str] = []
        self.agent_ext: list[str] = []
        self.agent_ids: list[int] = []
        self.agent_team: list[int] = []
        self.supervisor_ids: list[int] = []
        admin = by_name["bench-admin"]
        self.admin_id = admin.pk
        profiles.append(Profile(user=admin, role="admin", display_name="管理者 ベンチ"))
        for t, team in enumerate(teams):
            sv = by_name[f"sv{t + 1:02d}"]
            self.supervisor_ids.append(sv.pk)
            name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"
            profiles.append(Profile(user=sv, role="member", display_name=name, extension=f"19{t + 1:02d}"))
            memberships.append(Membership(user=sv, team=team, role="supervisor"))
            lines.append(Line(number=f"+813{5000 + t + 1:04d}0000", label=team.name, team=team))
            for k in range(AGENTS_PER_TEAM):
                ag = by_name[f"ag{t + 1:02d}{k}"]
                name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"
                ext = f"2{t + 1:02d}{k}"
                profiles.append(Profile(user=ag, role="member", display_name=name, extension=ext))
                memberships.append(Membership(user=ag, team=team, role="agent"))
                lines.append(Line(number=ext, label=name, team=team, user=ag))
                self.agent_names.append(name)
                self.agent_ext.append(ext)
                self.agent_ids.append(ag.pk)
                self.agent_team.append(t)
        Profile.objects.bulk_create(profiles)
        Membership.objects.bulk_create(memberships)
        Line.objects.bulk_create(lines)
        Tag.objects.bulk_create([Tag(name=n, color=c) for n, c in TAGS])
        self.tag_ids = list(Tag.objects.order_by("id").values_list("id", flat=True))
        self.team_ids = [t.pk for t in teams]
        self.team_names = [t.name for t in teams]
        self.teams_meta = [
            {"id": t.pk, "name": t.name, "share_calls": t.share_calls, "index": i}
            for i, t in enumerate(teams)
        ]

    # --- the customer numbers ---------------------------------------------------------------
    def numbers(self) -> None:
        rng = self.rng
        size = max(20_000, int(self.n * 0.3))
        kind = rng.choice(7, size=size, p=[0.30, 0.13, 0.22, 0.12, 0.08, 0.12, 0.03])
        sub = rng.integers(0, 100_000_000, size=size)
        pool: list[str] = []
        for k, s in zip(kind.tolist(), sub.tolist(), strict=True):
            if k == 0:
                pool.append(f"+813{s:08d}")  # Tokyo 03-xxxx-xxxx
            elif k == 1:
                pool.append(f"+816{s:08d}")  # Osaka 06-xxxx-xxxx
            elif k == 2:
                pool.append(f"+8190{s:08d}")  # 090
            elif k == 3:
                pool.append(f"+8180{s:08d}")  # 080
            elif k == 4:
                pool.append(f"+8170{s:08d}")  # 070
            elif k == 5:
                area = ("45", "52", "11", "92", "75", "78")[s % 6]
                pool.append(f"+81{area}{s % 10_000_000:07d}")  # 045/052/011/092/075/078
            else:
                pool.append("anonymous")
        # repeat callers that the searches look for (a regular customer and two near-misses)
        pool[500] = "+81312345678"
        pool[4000] = "+81612345678"
        pool[9000] = "+819012345678"
        names: list[str] = []
        nk = rng.random(size)
        for i in range(size):
            if pool[i] == "anonymous" or nk[i] > 0.5:
                names.append("")
            elif nk[i] < 0.12:
                names.append(COMPANIES[i % len(COMPANIES)])
            else:
                names.append(f"{SURNAMES[(i * 7) % len(SURNAMES)]} {GIVEN[(i * 13) % len(GIVEN)]}")
        names[500] = "株式会社サンプル商事"
        self.pool, self.pool_names = pool, names

    def national(self, e164: str) -> str:
        return "0" + e164[3:] if e164.startswith("+81") else e164

    # --- when calls happen ------------------------------------------------------------------
    def timestamps(self) -> np.ndarray:
        """Start times (µs since the epoch, UTC, ascending): weekdays 9-18 JST, quieter weekends."""
        rng = self.rng
        end = int(self.now.timestamp() // 86400) * 86400  # today 00:00 UTC
        day0 = end - SPAN_DAYS * 86400
        days = np.arange(SPAN_DAYS + 1)
        weekday = (days + (day0 // 86400 + 3)) % 7  # 1970-01-01 was a Thursday: 0 = Monday
        w = np.where(weekday < 5, 1.0, np.where(weekday == 5, 0.3, 0.1))
        w *= np.linspace(0.8, 1.2, len(days))  # a growing business
        hour_w = np.array(
            [0, 0, 0, 0, 0, 0, 0, 0.1, 0.6, 2.5, 4, 4, 2.6, 3.2, 4, 4, 3.6, 3, 1.2, 0.6, 0.3, 0.15, 0.05, 0.0]
        )
        d = rng.choice(len(days), size=self.n, p=w / w.sum())
        h = rng.choice(24, size=self.n, p=hour_w / hour_w.sum())
        within = rng.integers(0, 3_600_000_000, size=self.n)
        us = (day0 + d * 86400 + h * 3600 - 9 * 3600).astype(np.int64) * 1_000_000 + within
        us = np.minimum(
            us, int(self.now.timestamp() * 1e6) - 3_600_000_000
        )  # the last call ended an hour ago
        us[us % 1_000_000 == 0] += 1  # Django's SQLite format drops ".000000": keep one format
        us.sort()
        return us

    def stamp(self, us: np.ndarray) -> list[str]:
        """Timestamps as the database stores them (text, UTC)."""
        text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
        if self.vendor == "sqlite":
            return [s[:10] + " " + s[11:] for s in text.tolist()]
        return [s[:10] + " " + s[11:] + "+00:00" for s in text.tolist()]

    # --- writing ------------------------------------------------------------------------------
    def writer(self) -> Writer:
        return Writer(self.vendor)

    def run(self) -> None:
        from callvault.apps.calls.models import Call, CallTag, Comment, DtmfEvent, Participant, Stream
        from callvault.apps.recordings.models import Recording

        t = time.monotonic()
        self.accounts()
        self.numbers()
        us = self.timestamps()
        real = self.real_recording()
        self.timings["prepare_s"] = time.monotonic() - t
        w = self.writer()
        models = [Call, Participant, Stream, Recording, CallTag, Comment, DtmfEvent]
        t = time.monotonic()
        w.drop_indexes(models)
        self.timings["drop_indexes_s"] = time.monotonic() - t
        rng = self.rng
        n = self.n
        ready_pick = set(np.linspace(n * 0.02, n - 1, self.real_calls).astype(int).tolist())
        ids = {"rec": 0, "tag": 0, "comment": 0, "dtmf": 0}
        self.page_calls: list[str] = []
        counts: Counter[str] = Counter()
        t_insert = time.monotonic()
        for start in range(0, n, self.batch):
            stop = min(n, start + self.batch)
            rows = self.batch_rows(start, stop, us[start:stop], ready_pick, real, ids, counts, rng)
            for model, attnames, data in rows:
                w.write(model, attnames, data)
            w.commit()
            done = stop
            if done == n or (done // self.batch) % 4 == 0:
                rate = done / max(1e-9, time.monotonic() - t_insert)
                print(f"  {done:,}/{n:,} calls ({rate:,.0f} calls/s)", flush=True)
        self.timings["insert_s"] = time.monotonic() - t_insert
        t = time.monotonic()
        w.create_indexes()
        self.timings["create_indexes_s"] = time.monotonic() - t
        t = time.monotonic()
        w.finish(models)
        self.timings["finish_s"] = time.monotonic() - t
        newest = datetime.fromtimestamp(int(us[-1]) / 1e6, UTC)
        oldest = datetime.fromtimestamp(int(us[0]) / 1e6, UTC)
        manifest = {
            "version": SEED_VERSION,
            "calls": n,
            "backend": self.vendor,
            "seeded_at": datetime.now(UTC).isoformat(),
            "newest": newest.isoformat(),
            "oldest": oldest.isoformat(),
            "teams": self.teams_meta,
            "admin": "bench-admin",
            "supervisors": [f"sv{t + 1:02d}" for t in range(N_TEAMS)],
            "agents_shared": [f"ag{t + 1:02d}0" for t in range(N_TEAMS - OWN_ONLY_TEAMS)],
            "agents_own": [f"ag{t + 1:02d}0" for t in range(N_TEAMS - OWN_ONLY_TEAMS, N_TEAMS)],
            "call_page_ids": self.page_calls,
            "counts": dict(counts),
            "timings": self.timings,
        }
        (self.data_dir / "bench-seed.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))

    def real_recording(self) -> dict[str, Any]:
        """One real stereo Opus file (two tones, beeping), hard-linked under ``real_calls`` keys."""
        from django.conf import settings

        from callvault.media.encode import encode_recording

        rate = 8000
        t = np.arange(int(REAL_RECORDING_SECONDS * rate)) / rate
        beep = (np.sin(2 * np.pi * 0.5 * t) > 0).astype(np.float64)
        left = np.sin(2 * np.pi * 440 * t) * 6000 * beep
        right = np.sin(2 * np.pi * 880 * t) * 6000 * (1 - beep)
        pcm = np.stack([left, right], axis=1).astype(np.int16)
        root = Path(settings.RECORDINGS_DIR) / "bench"
        root.mkdir(parents=True, exist_ok=True)
        master = root / "master.opus"
        info = encode_recording(pcm, rate, "opus", master)
        keys = []
        for j in range(self.real_calls):
            key = f"bench/real-{j:05d}.opus"
            path = Path(settings.RECORDINGS_DIR) / key
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.link(master, path)
            keys.append(key)
        return {"keys": keys, "bytes": info.bytes, "sha256": info.sha256, "duration": info.duration}

    def batch_rows(
        self,
        start: int,
        stop: int,
        us: np.ndarray,
        ready_pick: set[int],
        real: dict[str, Any],
        ids: dict[str, int],
        counts: Counter[str],
        rng: np.random.Generator,
    ) -> list[tuple[Any, list[str], list[tuple[Any, ...]]]]:
        from callvault.apps.calls.models import Call, CallTag, Comment, DtmfEvent, Participant, Stream
        from callvault.apps.recordings.models import Recording

        m = stop - start
        pool, pool_names = self.pool, self.pool_names
        P = len(pool)
        cust = (P * rng.random(m) ** 2.5).astype(np.int64)  # repeat callers: low indexes are frequent
        team_w = np.linspace(1.6, 0.5, N_TEAMS)
        team = rng.choice(N_TEAMS, size=m, p=team_w / team_w.sum())
        agent_k = rng.integers(0, AGENTS_PER_TEAM, size=m)
        other_k = (agent_k + rng.integers(1, AGENTS_PER_TEAM, size=m)) % AGENTS_PER_TEAM
        assign = rng.random(m)  # < 0.01: no team (unknown line); < 0.05: team only (nobody answered)
        direction = rng.choice(3, size=m, p=[0.60, 0.35, 0.05])
        st = rng.random(m)
        ring = rng.uniform(2, 25, size=m)
        dur = np.clip(rng.lognormal(np.log(150), 0.9, size=m), 8, 3 * 3600)
        extra = rng.random((m, 6))
        uuids = os.urandom(16 * m)
        ports = rng.integers(20000, 30000, size=(m, 2))
        jitter = rng.gamma(2.0, 1.5, size=(m, 2))
        base_us = us
        ans_us = base_us + (ring * 1e6).astype(np.int64)
        started = self.stamp(base_us)
        answered = self.stamp(ans_us)
        end_ans = self.stamp(ans_us + (dur * 1e6).astype(np.int64))
        end_ring = self.stamp(base_us + (ring * 1e6).astype(np.int64))
        created = self.stamp(ans_us + (dur * 1e6).astype(np.int64) + 3_000_000)

        call_cols = [
            "id", "source", "direction", "state", "recording_state", "started_at", "answered_at",
            "ended_at", "duration", "end_reason", "sip_call_id", "siprec_session_id", "spool_key",
            "caller_number", "caller_name", "callee_number", "callee_name", "packets_received",
            "packets_lost", "team_id", "agent_id", "metadata", "created_at", "updated_at",
        ]  # fmt: skip
        part_cols = ["id", "call_id", "role", "participant_id", "number", "number_raw", "display_name", "aor"]
        stream_cols = [
            "id", "call_id", "index", "label", "stream_id", "role", "participant_id", "codec", "local_port",
            "remote_addr", "packets_received", "packets_lost", "jitter_ms",
        ]  # fmt: skip
        rec_cols = [
            "id", "call_id", "storage_key", "format", "codec", "channels", "sample_rate", "bytes", "sha256",
            "duration", "channel_map", "created_at", "verified_at",
        ]  # fmt: skip
        tag_cols = ["id", "call_id", "tag_id", "added_by_id", "added_at"]
        comment_cols = ["id", "call_id", "author_id", "offset", "text", "created_at"]
        dtmf_cols = ["id", "call_id", "stream_index", "digit", "offset", "duration_ms"]
        calls: list[tuple[Any, ...]] = []
        parts: list[tuple[Any, ...]] = []
        streams: list[tuple[Any, ...]] = []
        recs: list[tuple[Any, ...]] = []
        tags: list[tuple[Any, ...]] = []
        comments: list[tuple[Any, ...]] = []
        dtmfs: list[tuple[Any, ...]] = []
        dirs = ("in", "out", "internal")
        channel_map = json.dumps({"left": "caller", "right": "callee"})
        for j in range(m):
            g = start + j
            cid = uuids[16 * j : 16 * j + 16].hex()
            cid = cid[:12] + "4" + cid[13:16] + "89ab"[int(cid[16], 16) & 3] + cid[17:]  # a v4 UUID
            t = int(team[j])
            a = t * AGENTS_PER_TEAM + int(agent_k[j])
            d = dirs[int(direction[j])]
            cnum, cname = pool[int(cust[j])], pool_names[int(cust[j])]
            team_id: int | None = self.team_ids[t]
            agent_id: int | None = self.agent_ids[a]
            own_num, own_name = self.agent_ext[a], self.agent_names[a]
            if assign[j] < 0.01:
                team_id = agent_id = None
                own_num, own_name = "+81359990000", ""
            elif assign[j] < 0.05:
                agent_id = None
                own_num, own_name = f"+813{5000 + t + 1:04d}0000", self.team_names[t]
            if d == "in":
                caller, caller_name, callee, callee_name = cnum, cname, own_num, own_name
            elif d == "out":
                caller, caller_name = own_num, own_name
                callee, callee_name = (cnum if cnum != "anonymous" else "+819011112222"), ""
            else:
                b = t * AGENTS_PER_TEAM + int(other_k[j])
                caller, caller_name = own_num, own_name
                callee, callee_name = self.agent_ext[b], self.agent_names[b]
            real_idx = -1
            if g in ready_pick:
                real_idx = len(self.page_calls)
                self.page_calls.append(str(uuid.UUID(cid)))
                s = 0.5
            else:
                s = st[j]
            if s < 0.87:
                state, rstate, reason = "completed", "ready", "bye"
                if extra[j, 0] < 0.004 and real_idx < 0:
                    rstate = "failed"
            elif s < 0.975:
                state, rstate, reason = "cancelled", "none", "cancel"
            elif s < 0.992:
                state, rstate, reason = "interrupted", "ready", "rtp_timeout"
            else:
                state, rstate, reason = "failed", "none", ""
            answered_at = answered[j] if state in ("completed", "interrupted") else None
            seconds = float(dur[j]) if answered_at else float(ring[j])
            if real_idx >= 0:
                seconds = real["duration"]
            ended_at = end_ans[j] if answered_at else end_ring[j]
            pkts = int(seconds * 50) * 2 if answered_at else 0
            lost = int(pkts * extra[j, 1] * 0.004) if extra[j, 2] < 0.2 else 0
            meta = "{}"
            if answered_at and extra[j, 3] < 0.1 and seconds > 60:
                hold = round(seconds * 0.3, 1)
                meta = json.dumps(
                    {"holds": [{"start": hold, "end": round(hold + min(45.0, seconds * 0.2), 1)}]}
                )
            calls.append(
                (
                    cid, "siprec", d, state, rstate, started[j], answered_at, ended_at, round(seconds, 3),
                    reason, f"{cid[:16]}@sbc.example.jp", f"{cid[16:]}", cid, caller, caller_name, callee,
                    callee_name, pkts, lost, team_id, agent_id, meta, started[j], created[j],
                )
            )  # fmt: skip
            p1, p2 = 2 * g + 1, 2 * g + 2
            parts.append(
                (p1, cid, "caller", f"p{g}a", caller, self.national(caller), caller_name,
                 f"sip:{self.national(caller)}@pbx.example.jp")
            )  # fmt: skip
            parts.append(
                (p2, cid, "callee", f"p{g}b", callee, self.national(callee), callee_name,
                 f"sip:{self.national(callee)}@pbx.example.jp")
            )  # fmt: skip
            for k, (pid, role) in enumerate(((p1, "caller"), (p2, "callee"))):
                streams.append(
                    (2 * g + 1 + k, cid, k, str(k + 1), f"s{g}{k}", role, pid, "PCMU", int(ports[j, k]),
                     f"192.0.2.{1 + g % 250}:{40000 + k}", pkts // 2, lost // 2,
                     round(float(jitter[j, k]), 2))
                )  # fmt: skip
            if rstate == "ready":
                ids["rec"] += 1
                if real_idx >= 0:
                    key, size, sha = real["keys"][real_idx], real["bytes"], real["sha256"]
                else:
                    day = started[j][:10].replace("-", "/")
                    key, size, sha = f"{day}/{cid}.opus", int(seconds * 2125) + 4000, os.urandom(32).hex()
                recs.append(
                    (ids["rec"], cid, key, "opus", "opus", 2, 8000, size, sha, round(seconds, 3), channel_map,
                     created[j], created[j] if extra[j, 4] < 0.3 else None)
                )  # fmt: skip
            who = self.supervisor_ids[t] if team_id else self.admin_id
            n_tags = 2 if real_idx >= 0 else (1 + (extra[j, 5] < 0.01) if extra[j, 5] < 0.05 else 0)
            for k in range(int(n_tags)):
                ids["tag"] += 1
                tags.append((ids["tag"], cid, self.tag_ids[(g + 3 * k) % len(self.tag_ids)], who, created[j]))
            n_comments = 2 if real_idx >= 0 else (1 if 0.05 <= extra[j, 5] < 0.06 else 0)
            for k in range(n_comments):
                ids["comment"] += 1
                offset = round(seconds * (0.2 + 0.5 * k), 1) if answered_at and k == 0 else None
                comments.append(
                    (ids["comment"], cid, who, offset, COMMENTS[(g + k) % len(COMMENTS)], created[j])
                )
            if d == "in" and answered_at and (0.2 <= extra[j, 4] < 0.23 or real_idx >= 0):
                for k in range(1 + g % 4):
                    ids["dtmf"] += 1
                    dtmfs.append((ids["dtmf"], cid, 0, "0123456789*#"[(g + k) % 12], 2.0 + 0.8 * k, 120))
        counts.update(
            calls=len(calls), participants=len(parts), streams=len(streams), recordings=len(recs),
            call_tags=len(tags), comments=len(comments), dtmf=len(dtmfs),
        )  # fmt: skip
        return [
            (Call, call_cols, calls),
            (Participant, part_cols, parts),
            (Stream, stream_cols, streams),
            (Recording, rec_cols, recs),
            (CallTag, tag_cols, tags),
            (Comment, comment_cols, comments),
            (DtmfEvent, dtmf_cols, dtmfs),
        ]


class Writer:
    """Bulk rows into the tables: executemany on SQLite, COPY on PostgreSQL.

    Secondary indexes are dropped first and rebuilt at the end (much faster than maintaining
    them row by row); unique/primary indexes stay. Columns a row does not give get the field's
    default, so that fields added by later migrations do not break the seeding.
    """

    def __init__(self, vendor: str) -> None:
        from django.db import connection

        self.vendor = vendor
        self.saved: list[tuple[str, str]] = []
        connection.ensure_connection()
        if vendor == "sqlite":
            self.raw = connection.connection
            self.raw.execute("PRAGMA foreign_keys=OFF")
            self.raw.execute("PRAGMA journal_mode=OFF")
            self.raw.execute("PRAGMA synchronous=OFF")
            self.raw.execute("PRAGMA cache_size=-1000000")  # 1 GB while loading
            self.raw.execute("BEGIN")
        else:
            import psycopg
            from django.conf import settings

            db = settings.DATABASES["default"]
            self.raw = psycopg.connect(
                host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=False
            )
            with self.raw.cursor() as cur:
                cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
                cur.execute("SET synchronous_commit = off")
                cur.execute("SET maintenance_work_mem = '1GB'")
        self._meta_cache: dict[Any, tuple[str, list[str], tuple[Any, ...]]] = {}

    def _columns(self, model: Any, attnames: list[str]) -> tuple[str, list[str], tuple[Any, ...]]:
        key = (model, tuple(attnames))
        if key in self._meta_cache:
            return self._meta_cache[key]
        from django.db import models as djm
        from django.db.models.fields import NOT_PROVIDED

        given = set(attnames)
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        columns = [by_attname[a].column for a in attnames]
        extra_cols, extra_vals = [], []
        for f in model._meta.concrete_fields:
            if f.attname in given:
                continue
            if isinstance(f, djm.DateTimeField) and (f.auto_now or f.auto_now_add):
                value: Any = datetime.now(UTC)
            elif f.default is NOT_PROVIDED:
                if f.null:
                    value = None
                else:
                    raise RuntimeError(
                        f"seeding: {model.__name__}.{f.name} has no default; add it to the seed"
                    )
            else:
                value = f.get_default()
            if isinstance(f, djm.JSONField):
                value = json.dumps(value)
            elif isinstance(value, datetime):
                value = value.isoformat(" ") if self.vendor != "sqlite" else str(value.replace(tzinfo=None))
            extra_cols.append(f.column)
            extra_vals.append(value)
        result = (model._meta.db_table, columns + extra_cols, tuple(extra_vals))
        self._meta_cache[key] = result
        return result

    def write(self, model: Any, attnames: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        table, columns, extra = self._columns(model, attnames)
        if extra:
            rows = [r + extra for r in rows]
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.vendor == "sqlite":
            marks = ", ".join("?" * len(columns))
            self.raw.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)
        else:
            with self.raw.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as cp:
                for r in rows:
                    cp.write_row(r)

    def commit(self) -> None:
        if self.vendor == "sqlite":
            self.raw.execute("COMMIT")
            self.raw.execute("BEGIN")
        else:
            self.raw.commit()

    def drop_indexes(self, models: list[Any]) -> None:
        tables = [m._meta.db_table for m in models]
        if self.vendor == "sqlite":
            marks = ",".join("?" * len(tables))
            rows = self.raw.execute(
                f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                f"AND tbl_name IN ({marks})",
                tables,
            ).fetchall()
            for name, sql in rows:
                self.saved.append((name, sql))
                self.raw.execute(f'DROP INDEX "{name}"')
        else:
            with self.raw.cursor() as cur:
                cur.execute(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) "
                    "AND i.schemaname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                    "WHERE c.conindid = "
                    "(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
                    (tables,),
                )
                for name, sql in cur.fetchall():
                    self.saved.append((name, sql))
                    cur.execute(f'DROP INDEX "{name}"')
        self.commit()

    def create_indexes(self) -> None:
        for name, sql in self.saved:
            t = time.monotonic()
            if self.vendor == "sqlite":
                self.raw.execute(sql)
            else:
                with self.raw.cursor() as cur:
                    cur.execute(sql)
            print(f"  index {name}: {time.monotonic() - t:.1f} s", flush=True)
        self.commit()

    def finish(self, models: list[Any]) -> None:
        if self.vendor == "sqlite":
            self.raw.execute("COMMIT")
            self.raw.execute("PRAGMA journal_mode=WAL")
            self.raw.execute("PRAGMA foreign_keys=ON")
            bad = self.raw.execute("PRAGMA foreign_key_check").fetchmany(5)
            if bad:
                raise RuntimeError(f"seeding broke foreign keys: {bad}")
            self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        from django.core.management.color import no_style
        from django.db import connection

        with self.raw.cursor() as cur:
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cur.execute(sql)
        self.raw.commit()
        self.raw.autocommit = True
        with self.raw.cursor() as cur:
            for m in models:
                cur.execute(f'VACUUM ANALYZE "{m._meta.db_table}"')
        self.raw.close()


# ------------------------------------------------------------------------------------------------
# processes


class Procs:
    """Processes started by this script; each runs in its own session and is stopped by its id."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        fh = log.open("ab")
        p = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=CODE[0], start_new_session=True
        )
        fh.close()
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 20) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # children of a stopped `serve` that outlived it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            self.stop(p)


PROCS = Procs()


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants (``callvault web --workers N``)."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += proc_cpu(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
    return total


def cpu_busy(cpus: list[int]) -> tuple[int, int]:
    """(busy, total) jiffies of some CPUs from /proc/stat."""
    busy = total = 0
    with open("/proc/stat") as fh:
        for line in fh:
            name = line.split(" ", 1)[0]
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                busy += sum(v) - idle
                total += sum(v)
    return busy, total


def postgres_pids() -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as fh:
                if fh.read().strip() == "postgres":
                    out.append(int(d))
        except OSError:
            continue
    return out


class PgCpu:
    """CPU of all postgres processes during a run, sampled every 0.2 s.

    Backends come and go (Django reconnects after CONN_MAX_AGE), so each process is counted from
    its first sample (0 if it started during the run) to its last. Other users of the same
    PostgreSQL server are counted too.
    """

    def __init__(self) -> None:
        self.first: dict[int, float] = {pid: proc_cpu(pid) for pid in postgres_pids()}
        self.last: dict[int, float] = dict(self.first)
        self.task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for pid in postgres_pids():
            v = proc_cpu(pid)
            if v:
                self.first.setdefault(pid, 0.0)
                self.last[pid] = v

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.sample()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> float:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.sample()
        return sum(max(0.0, self.last[p] - self.first[p]) for p in self.last)


# ------------------------------------------------------------------------------------------------
# a minimal HTTP/1.1 client (keep-alive, cookies), light enough to share a core with nothing else


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), "")


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cookies: dict[str, str] = {}

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                return await self._exchange(method, path, body, headers or {})
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Accept: text/html"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *raw_headers = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        hdrs = []
        for line in raw_headers:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs.append((k.strip().lower(), v.strip()))
        resp = Response(status, hdrs, b"")
        if resp.header("transfer-encoding").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            resp.body = b"".join(chunks)
        elif resp.header("content-length"):
            resp.body = await self.reader.readexactly(int(resp.header("content-length")))
        elif status not in (204, 304) and method != "HEAD":
            resp.body = await self.reader.read()
            await self.close()
        for k, v in hdrs:
            if k == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";", 1)[0]
                if value in ('""', "") or "max-age=0" in v.lower():
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        if resp.header("connection").lower() == "close":
            await self.close()
        return resp

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def login(self, username: str, password: str) -> None:
        page = await self.get("/login/")
        m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        if page.status != 200 or m is None:
            raise RuntimeError(f"login page: {page.status}")
        form = urllib.parse.urlencode(
            {
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": m.group(1).decode(),
                "next": "/",
            }
        ).encode()
        r = await self.request("POST", "/login/", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if r.status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login as {username} failed: HTTP {r.status}")


async def wait_http(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"web server exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            c = Http(port)
            r = await c.get("/healthz")
            await c.close()
            if r.status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"web server did not answer /healthz within {timeout:.0f} s")


# ------------------------------------------------------------------------------------------------
# load scenarios


@dataclass
class Scenario:
    key: str
    title: str
    users: str  # which sessions: admin, supervisor, agent_shared, agent_own
    path: Callable[[int, int], str]  # (virtual user, request number) -> path
    kind: str = "list"  # list | call


@dataclass
class RunStats:
    requests: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    rps: float | None = None
    server_cpu_ms: float | None = None  # per request
    db_cpu_ms: float | None = None  # per request (postgres processes)
    client_cpu_ms: float | None = None
    web_cpu_pct: float | None = None  # the web processes' CPU over the run (100 = one whole core)
    core_busy_pct: float | None = (
        None  # all of the web server's core: more than web_cpu_pct = others ran there
    )
    rows: float | None = None  # mean rows on a list page
    capped: bool = False


@dataclass
class ScenarioResult:
    backend: str
    key: str
    title: str
    single: RunStats
    loaded: RunStats
    concurrency: int

    @property
    def ok(self) -> bool:
        p95 = self.loaded.p95_ms
        return p95 is not None and p95 <= TARGET_P95_MS and self.loaded.errors == 0


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def run_load(
    sc: Scenario,
    sessions: list[Http],
    *,
    requests: int,
    cap_s: float,
    server_pid: int,
    pg: bool,
    think_s: float = 0.0,
) -> RunStats:
    lat: list[float] = []
    rows: list[int] = []
    statuses: Counter[str] = Counter()
    errors = 0
    issued = 0
    deadline = time.monotonic() + cap_s
    capped = False

    think = random.Random(11)

    async def user(vu: int, http: Http) -> None:
        nonlocal issued, errors, capped
        if think_s:
            await asyncio.sleep(think.uniform(0, think_s))  # users do not all start at once
        while issued < requests:
            if time.monotonic() > deadline:
                capped = True
                return
            i = issued
            issued += 1
            path = sc.path(vu, i)
            t0 = time.perf_counter()
            try:
                r = await asyncio.wait_for(http.get(path), timeout=300)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                errors += 1
                statuses[type(exc).__name__] += 1
                await http.close()
                continue
            dt = time.perf_counter() - t0
            statuses[str(r.status)] += 1
            good = r.status == 200
            if good and sc.kind == "list":
                good = b'id="calls-body"' in r.body
                rows.append(r.body.count(b"data-call-id="))
            elif good and sc.kind == "call":
                good = b"cv-player-data" in r.body
            if not good:
                errors += 1
            lat.append(dt * 1000)
            if think_s:
                await asyncio.sleep(think.expovariate(1 / think_s))

    pgcpu = PgCpu() if pg else None
    if pgcpu is not None:
        pgcpu.start()
    cpu0, me0 = tree_cpu(server_pid), sum(os.times()[:2])
    core0 = cpu_busy(SERVER_CPUS)
    t0 = time.perf_counter()
    await asyncio.gather(*(user(i, s) for i, s in enumerate(sessions)))
    wall = time.perf_counter() - t0
    cpu1, me1 = tree_cpu(server_pid), sum(os.times()[:2])
    core1 = cpu_busy(SERVER_CPUS)
    db_s = await pgcpu.stop() if pgcpu is not None else 0.0
    n = len(lat)
    return RunStats(
        requests=n,
        errors=errors,
        statuses=dict(statuses),
        wall_s=wall,
        p50_ms=_pct(lat, 50),
        p95_ms=_pct(lat, 95),
        p99_ms=_pct(lat, 99),
        max_ms=max(lat) if lat else None,
        mean_ms=float(np.mean(lat)) if lat else None,
        rps=n / wall if wall > 0 else None,
        server_cpu_ms=(cpu1 - cpu0) * 1000 / n if n else None,
        db_cpu_ms=db_s * 1000 / n if n and pg else None,
        client_cpu_ms=(me1 - me0) * 1000 / n if n else None,
        rows=float(np.mean(rows)) if rows else None,
        capped=capped,
        web_cpu_pct=(cpu1 - cpu0) * 100 / wall if wall > 0 else None,
        core_busy_pct=(core1[0] - core0[0]) * 100 / (core1[1] - core0[1]) if core1[1] > core0[1] else None,
    )


def older_link(body: bytes) -> str | None:
    m = re.search(rb'href="([^"]+)" rel="next"', body)
    return html.unescape(m.group(1).decode()) if m else None


async def follow_cursor(http: Http, first: str, pages: int) -> tuple[str, list[float], int]:
    """Walk ``pages`` pages down from ``first`` by the list's own "older" links; the last URL and timings."""
    url, times, depth = first, [], 1
    for _ in range(pages - 1):
        t0 = time.perf_counter()
        r = await http.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        nxt = older_link(r.body) if r.status == 200 else None
        if nxt is None:
            break
        url, depth = nxt, depth + 1
    return url, times, depth


def build_scenarios(manifest: dict[str, Any], deep_urls: list[str]) -> list[Scenario]:
    page_ids = manifest["call_page_ids"]
    full = "/?" + urllib.parse.urlencode({"q": SEARCH_FULL})
    partial = "/?" + urllib.parse.urlencode({"q": SEARCH_PARTIAL})
    rng = random.Random(5)
    order = list(range(len(page_ids)))
    rng.shuffle(order)
    return [
        Scenario("list_admin", "list p1, admin", "admin", lambda vu, i: "/"),
        Scenario("list_supervisor", "list p1, supervisor (1 team)", "supervisor", lambda vu, i: "/"),
        Scenario("list_agent_shared", "list p1, agent (team shares)", "agent_shared", lambda vu, i: "/"),
        Scenario("list_agent_own", "list p1, agent (own calls)", "agent_own", lambda vu, i: "/"),
        Scenario(
            "list_deep_filtered",
            "list team+dates, page 50",
            "admin",
            lambda vu, i: deep_urls[(vu + i) % len(deep_urls)],
        ),
        Scenario("search_full", f"search q={SEARCH_FULL}", "admin", lambda vu, i: full),
        Scenario("search_partial", f"search q={SEARCH_PARTIAL}", "admin", lambda vu, i: partial),
        Scenario(
            "call_page",
            "call page (recording)",
            "admin",
            lambda vu, i: f"/calls/{page_ids[order[(vu * 7919 + i) % len(order)]]}/",
            kind="call",
        ),
    ]


async def bench_backend(
    backend: str,
    data_dir: Path,
    database_url: str,
    manifest: dict[str, Any],
    args: argparse.Namespace,
    log_dir: Path,
) -> tuple[list[ScenarioResult], dict[str, Any]]:
    port = free_port()
    log = log_dir / f"web-{backend}.log"
    cmd = [
        *_nice(), "taskset", "-c", ",".join(map(str, SERVER_CPUS)), sys.executable, "-m", "callvault.cli",
        "web", "--data-dir", str(data_dir), "--http-host", "127.0.0.1", "--http-port", str(port),
        "--workers", str(WEB_WORKERS[0]),
    ]  # fmt: skip
    proc = PROCS.start(cmd, cli_env(data_dir, database_url), log)
    info: dict[str, Any] = {"port": port, "web_pid": proc.pid}
    results: list[ScenarioResult] = []
    try:
        await wait_http(port, proc, log)
        users = args.users
        t = time.monotonic()
        sessions: dict[str, list[Http]] = {}
        names = {
            "admin": [manifest["admin"]] * users,
            "supervisor": manifest["supervisors"],
            "agent_shared": manifest["agents_shared"],
            "agent_own": manifest["agents_own"],
        }
        for kind, who in names.items():
            sessions[kind] = []
            for i in range(users):
                h = Http(port)
                await h.login(who[i % len(who)], PASSWORD)
                sessions[kind].append(h)
        info["login_s"] = time.monotonic() - t
        # deep pages: a team + one-year date range, the cursor followed page by page from page 1
        newest = datetime.fromisoformat(manifest["newest"]) + timedelta(hours=9)
        date_to = newest.date()
        date_from = (newest - timedelta(days=365)).date()
        deep_urls: list[str] = []
        walk: list[float] = []
        depths: list[int] = []
        t = time.monotonic()
        teams = manifest["teams"][: args.deep_teams]
        for team in teams:
            first = "/?" + urllib.parse.urlencode(
                {"team": team["id"], "date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
            )
            url, times, depth = await follow_cursor(sessions["admin"][0], first, args.deep_pages)
            deep_urls.append(url)
            walk += times
            depths.append(depth)
        info["deep_walk"] = {
            "teams": len(teams),
            "pages": depths,
            "p50_ms": _pct(walk, 50),
            "p95_ms": _pct(walk, 95),
            "seconds": time.monotonic() - t,
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
        }
        print(
            f"    followed the cursor {min(depths)}-{max(depths)} pages deep for {len(teams)} teams "
            f"(per page p50 {_fmt(_pct(walk, 50))} ms, p95 {_fmt(_pct(walk, 95))} ms)",
            flush=True,
        )
        for sc in build_scenarios(manifest, deep_urls):
            if args.scenarios and sc.key not in args.scenarios:
                continue
            pool = sessions[sc.users]
            single = await run_load(
                sc, pool[:1], requests=args.single_requests, cap_s=args.cap_seconds / 3,
                server_pid=proc.pid, pg=backend == "postgres",
            )  # fmt: skip
            loaded = await run_load(
                sc, pool[: args.users], requests=args.requests, cap_s=args.cap_seconds,
                server_pid=proc.pid, pg=backend == "postgres", think_s=args.think,
            )  # fmt: skip
            r = ScenarioResult(backend, sc.key, sc.title, single, loaded, args.users)
            results.append(r)
            print(
                f"    {sc.title:<30} 1 user p50 {_fmt(single.p50_ms):>7} ms | {args.users} users "
                f"p50 {_fmt(loaded.p50_ms):>7} p95 {_fmt(loaded.p95_ms):>7} ms, "
                f"{_fmt(loaded.rps, 1):>6} req/s, "
                f"n={loaded.requests}{' (capped)' if loaded.capped else ''} err={loaded.errors}",
                flush=True,
            )
        for group in sessions.values():
            for h in group:
                await h.close()
    finally:
        PROCS.stop(proc)
    return results, info


# ------------------------------------------------------------------------------------------------
# datasets


def sqlite_ok(data_dir: Path) -> bool:
    return (data_dir / "callvault.sqlite3").is_file()


def pg_exec(sql: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname, autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else []


def pg_db_ok(dbname: str, calls: int) -> bool:
    try:
        if not pg_exec(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'"):
            return False
        return pg_exec("SELECT count(*) FROM calls_call", dbname)[0][0] == calls
    except Exception:
        return False


def db_size(backend: str, data_dir: Path, dbname: str) -> int:
    if backend == "sqlite":
        return sum(p.stat().st_size for p in data_dir.glob("callvault.sqlite3*"))
    return int(pg_exec(f"SELECT pg_database_size('{dbname}')")[0][0])


def ensure_dataset(backend: str, args: argparse.Namespace, log_dir: Path) -> tuple[Path, str, dict[str, Any]]:
    label = scale_label(args.calls)
    data_dir = Path(args.cache_dir) / f"{label}-{backend}"
    dbname = f"callvault_bench_{label}"
    url = pg_url(dbname) if backend == "postgres" else ""
    manifest_path = data_dir / "bench-seed.json"
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        with contextlib.suppress(ValueError):
            manifest = json.loads(manifest_path.read_text())
    valid = (
        manifest.get("version") == SEED_VERSION
        and manifest.get("calls") == args.calls
        and (sqlite_ok(data_dir) if backend == "sqlite" else pg_db_ok(dbname, args.calls))
    )
    env = cli_env(data_dir, url)
    if valid and not args.reseed:
        t = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "callvault.cli", "manage", "migrate", "--noinput", "-v", "0"],
            env=env, cwd=CODE[0], check=True,
        )  # fmt: skip
        manifest["cached"] = True
        manifest["migrate_s"] = time.monotonic() - t
        print(f"  {backend}: cached dataset {data_dir} (seeded {manifest['seeded_at'][:19]}Z)", flush=True)
        return data_dir, url, manifest
    print(
        f"  {backend}: seeding {args.calls:,} calls into {data_dir}" + (f" / {dbname}" if url else ""),
        flush=True,
    )
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    if backend == "postgres":
        pg_exec(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        pg_exec(f'CREATE DATABASE "{dbname}"')
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "callvault.cli", "manage", "migrate", "--noinput", "-v", "0"],
        env=env, cwd=CODE[0], check=True,
    )  # fmt: skip
    t_migrate = time.monotonic() - t0
    opts = {
        "data_dir": str(data_dir),
        "calls": args.calls,
        "real_calls": args.real_calls,
        "batch": 50_000,
    }
    t1 = time.monotonic()
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--seed-child", json.dumps(opts)],
        env=env, cwd=CODE[0], check=True,
    )  # fmt: skip
    seed_s = time.monotonic() - t1
    manifest = json.loads(manifest_path.read_text())
    manifest["seed_s"] = seed_s
    manifest["migrate_fresh_s"] = t_migrate
    manifest["db_bytes"] = db_size(backend, data_dir, dbname)
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    manifest["cached"] = False
    print(f"  {backend}: seeded in {seed_s:.0f} s ({manifest['db_bytes'] / 1e9:.2f} GB)", flush=True)
    return data_dir, url, manifest


# ------------------------------------------------------------------------------------------------
# BYE -> visible in the open list


@dataclass
class ByeResult:
    backend: str
    calls: int
    placed: int = 0
    ended_events: int = 0
    completed_events: int = 0
    bye_to_ended_s: list[float] = field(default_factory=list)
    row_fetch_ms: list[float] = field(default_factory=list)
    bye_to_row_s: list[float] = field(default_factory=list)  # event + 120 ms debounce + row fetch
    bye_to_completed_s: list[float] = field(default_factory=list)
    ws_rtt_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def s(v: list[float]) -> dict[str, float | None]:
            return {"n": len(v), "p50": _pct(v, 50), "p95": _pct(v, 95), "max": max(v) if v else None}

        return {
            "bye_to_ended_s": s(self.bye_to_ended_s),
            "row_fetch_ms": s(self.row_fetch_ms),
            "bye_to_row_s": s(self.bye_to_row_s),
            "bye_to_completed_s": s(self.bye_to_completed_s),
        }


async def bye_to_visible(
    template: Path, manifest: dict[str, Any], args: argparse.Namespace, work: Path, log_dir: Path
) -> ByeResult:
    from websockets.asyncio.client import connect

    from callvault.tools.siprec_client import Leg, SiprecClient

    res = ByeResult("sqlite", args.bye_calls)
    data = work / "bye-sqlite"
    data.mkdir()
    t = time.monotonic()
    for p in template.iterdir():
        if p.name.startswith("callvault.sqlite3") or p.name in ("secret_key", "bench-seed.json"):
            shutil.copy2(p, data / p.name)
    res.notes.append(f"copied the seeded SQLite data in {time.monotonic() - t:.1f} s")
    http_port, sip_port = free_port(), free_port()
    low = 12000 + 2 * random.randrange(0, 2000)
    log = log_dir / "serve-sqlite.log"
    cmd = [
        *_nice(), sys.executable, "-m", "callvault.cli", "serve", "--data-dir", str(data),
        "--sip-host", "127.0.0.1", "--sip-port", str(sip_port), "--rtp-ports", f"{low}-{low + 400}",
        "--http-host", "127.0.0.1", "--http-port", str(http_port),
    ]  # fmt: skip
    proc = PROCS.start(cmd, cli_env(data), log)
    try:
        await wait_http(http_port, proc, log, timeout=300)
        deadline = time.monotonic() + 60
        while not sip_ping(sip_port):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"recorder did not answer OPTIONS:\n{log.read_text(errors='replace')[-2000:]}"
                )
            await asyncio.sleep(0.2)
        http = Http(http_port)
        await http.login(manifest["admin"], PASSWORD)
        page = await http.get("/")
        if page.status != 200:
            raise RuntimeError(f"list page: HTTP {page.status}")
        row_http = Http(http_port)
        row_http.cookies = dict(http.cookies)
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        origin = f"http://127.0.0.1:{http_port}"
        bye_at: dict[str, float] = {}  # caller digits -> BYE sent (time.time())
        ended: dict[str, float] = {}
        completed: dict[str, float] = {}
        call_of: dict[str, str] = {}
        timers: dict[str, asyncio.TimerHandle] = {}
        fetches: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        row_lock = asyncio.Lock()

        rows_seen: dict[str, list[tuple[float, str]]] = {}  # caller digits -> (rendered at, row state)

        async def fetch_row(call_id: str, digits: str) -> None:
            async with row_lock:  # one connection, as a browser tab would mostly do
                t0 = time.perf_counter()
                r = await row_http.get(f"/calls/{call_id}/row")
                dt = time.perf_counter() - t0
            m = re.search(rb'data-state="([^"]*)"', r.body)
            if r.status == 200 and f'data-call-id="{call_id}"'.encode() in r.body and m:
                res.row_fetch_ms.append(dt * 1000)
                rows_seen.setdefault(digits, []).append((time.time(), m.group(1).decode()))
            else:
                res.notes.append(f"row {call_id}: HTTP {r.status}")

        def schedule(call_id: str, digits: str) -> None:
            if call_id in timers:
                timers[call_id].cancel()
            timers[call_id] = loop.call_later(
                JS_DEBOUNCE_S, lambda: fetches.append(loop.create_task(fetch_row(call_id, digits)))
            )

        async with connect(
            f"ws://127.0.0.1:{http_port}/ws/events/",
            additional_headers={"Cookie": cookie},
            origin=origin,  # type: ignore[arg-type]
            compression=None,
        ) as ws:
            for _ in range(3):
                t0 = time.perf_counter()
                await ws.send("ping")
                await asyncio.wait_for(ws.recv(), 5)
                res.ws_rtt_ms.append((time.perf_counter() - t0) * 1000)

            async def listen() -> None:
                async for raw in ws:
                    now = time.time()
                    msg = json.loads(raw)
                    call = msg.get("call") or {}
                    digits = re.sub(r"\D", "", str(call.get("caller_number") or ""))[-8:]
                    if not digits.startswith("5555") or "id" not in call:
                        continue
                    call_of[digits] = call["id"]
                    if msg.get("type") == "call.ended" and digits not in ended:
                        ended[digits] = now
                    if msg.get("type") == "call.completed" and digits not in completed:
                        completed[digits] = now
                    schedule(call["id"], digits)  # calls.js fetches the row on every event (debounced)

            listener = loop.create_task(listen())
            rate = 8000
            n = int(args.bye_seconds * rate)
            tt = np.arange(n) / rate
            client = SiprecClient(("127.0.0.1", sip_port), local_ip="127.0.0.1")
            sem = asyncio.Semaphore(args.bye_concurrency)

            async def place(i: int) -> None:
                async with sem:
                    digits = f"5555{i:04d}"
                    caller = Leg(
                        f"03{digits}",
                        f"ベンチ 発信者{i}",
                        (np.sin(2 * np.pi * 440 * tt) * 6000).astype(np.int16),
                    )
                    callee = Leg(
                        "2010", "ベンチ 着信者", (np.sin(2 * np.pi * 880 * tt) * 6000).astype(np.int16)
                    )
                    r = await client.call(caller, callee)
                    if r.invite_status == 200 and r.bye_sent_at is not None:
                        bye_at[digits] = r.bye_sent_at
                        res.placed += 1
                    else:
                        res.notes.append(f"call {i}: INVITE {r.invite_status} BYE {r.bye_status}")
                    await asyncio.sleep(0.3)

            await asyncio.gather(*(place(i) for i in range(args.bye_calls)))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(completed) < len(bye_at):
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            if fetches:
                await asyncio.gather(*fetches, return_exceptions=True)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        for digits, sent in bye_at.items():
            if digits in ended:
                res.bye_to_ended_s.append(ended[digits] - sent)
            shown = [at for at, state in rows_seen.get(digits, []) if state not in ("ringing", "active")]
            if shown:
                res.bye_to_row_s.append(min(shown) - sent)
            if digits in completed:
                res.bye_to_completed_s.append(completed[digits] - sent)
        res.ended_events, res.completed_events = len(ended), len(completed)
        await http.close()
        await row_http.close()
    finally:
        PROCS.stop(proc, timeout=30)
        shutil.rmtree(data, ignore_errors=True)  # the 1M-call copy; logs are in log_dir
    return res


# ------------------------------------------------------------------------------------------------
# report


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def print_report(
    env: dict[str, Any],
    seeds: dict[str, dict[str, Any]],
    results: list[ScenarioResult],
    infos: dict[str, dict[str, Any]],
    bye: ByeResult | None,
) -> None:
    print()
    print(f"callvault web benchmark  code {env['code']}  {env['cpus']} cores  python {env['python']}")
    print("Seeded data:")
    print(f"  {'backend':<9} {'calls':>10} {'seed s':>7} {'cached':>6} {'db GB':>6}  rows")
    for backend, m in seeds.items():
        c = m.get("counts", {})
        cached = "yes" if m.get("cached") else "no"
        print(
            f"  {backend:<9} {m['calls']:>10,} {_fmt(m.get('seed_s')):>7} {cached:>6} "
            f"{_fmt((m.get('db_bytes') or 0) / 1e9, 2):>6}  participants {c.get('participants', 0):,}, "
            f"streams {c.get('streams', 0):,}, recordings {c.get('recordings', 0):,}, "
            f"call tags {c.get('call_tags', 0):,}, comments {c.get('comments', 0):,}"
        )
    if results:
        conc = results[0].concurrency
        print()
        print(
            f"Load: one `callvault web --workers {env.get('web_workers', 1)}` (uvicorn) on core(s) "
            f"{env.get('web_cpus', '0')}; {conc} virtual users "
            + (
                f"(each thinks {env['think_s']:g} s on average between requests)"
                if env.get("think_s")
                else "(closed loop, no think time)"
            )
            + f" on core {CLIENT_CPU}."
        )
        print(
            f"Latency in ms; target p95 <= {TARGET_P95_MS:.0f} ms at {conc} users. '1 user' is the latency "
            "alone (the service time); CPU columns are per request; 'core' is all of the web core's use."
        )
        cols = (
            f"  {'backend':<8} {'scenario':<30} {'1 user':>6} {'n':>4} {'err':>3} {'p50':>6} {'p95':>6} "
            f"{'p99':>6} {'max':>6} {'req/s':>5} {'web':>5} {'pg':>5} {'web%':>4} {'core':>4} "
            f"{'rows':>4}  target"
        )
        print(cols)
        for r in results:
            L = r.loaded
            flag = "ok" if r.ok else "MISS"
            if L.capped:
                flag += " (capped)"
            print(
                f"  {r.backend:<8} {r.title:<30} {_fmt(r.single.p50_ms):>6} {L.requests:>4} {L.errors:>3} "
                f"{_fmt(L.p50_ms):>6} {_fmt(L.p95_ms):>6} {_fmt(L.p99_ms):>6} {_fmt(L.max_ms):>6} "
                f"{_fmt(L.rps, 1):>5} {_fmt(L.server_cpu_ms, 1):>5} {_fmt(L.db_cpu_ms, 1):>5} "
                f"{_fmt(L.web_cpu_pct):>4} {_fmt(L.core_busy_pct):>4} {_fmt(L.rows):>4}  {flag}"
            )
        for r in results:
            bad = {k: v for k, v in r.loaded.statuses.items() if k != "200"}
            if r.loaded.errors:
                what = ", ".join(f"{v} x {'HTTP ' if k.isdigit() else ''}{k}" for k, v in bad.items())
                print(
                    f"  {r.backend} {r.key}: {r.loaded.errors} failed "
                    f"({what or 'HTTP 200 without the expected content'}; see the web server log)"
                )
        for backend, info in infos.items():
            w = info.get("deep_walk") or {}
            if w:
                print(
                    f"  {backend}: deep pages reached by following the cursor "
                    f"{min(w['pages'])}-{max(w['pages'])} pages ({w['date_from']}..{w['date_to']}, "
                    f"{w['teams']} teams); the walk (1 user) took p50 {_fmt(w['p50_ms'])} ms, "
                    f"p95 {_fmt(w['p95_ms'])} ms per page"
                )
    if bye is not None:
        s = bye.summary()
        print()
        print(
            f"BYE -> visible (`callvault serve`, SQLite, {bye.calls} calls of {env.get('bye_seconds')} s, "
            f"{env.get('bye_concurrency')} at a time; target p95 <= {TARGET_BYE_S:.0f} s):"
        )
        print(f"  {'':<42} {'n':>3} {'p50':>8} {'p95':>8} {'max':>8}")
        for key, title, unit, mul in (
            ("bye_to_ended_s", "BYE -> call.ended on the WebSocket", "ms", 1000),
            ("row_fetch_ms", "/calls/<id>/row fetch", "ms", 1),
            ("bye_to_row_s", "BYE -> row rendered (+120 ms calls.js debounce)", "ms", 1000),
            ("bye_to_completed_s", "BYE -> call.completed (recording ready)", "ms", 1000),
        ):
            v = s[key]
            print(
                f"  {title:<42} {v['n']:>3} {_fmt(v['p50'] and v['p50'] * mul):>6}{unit} "
                f"{_fmt(v['p95'] and v['p95'] * mul):>6}{unit} {_fmt(v['max'] and v['max'] * mul):>6}{unit}"
            )
        p95 = s["bye_to_row_s"]["p95"]
        print(
            f"  placed {bye.placed}, call.ended {bye.ended_events}, call.completed {bye.completed_events}; "
            f"WebSocket ping RTT p50 {_fmt(_pct(bye.ws_rtt_ms, 50), 1)} ms; "
            f"BYE -> visible {'ok' if p95 is not None and p95 <= TARGET_BYE_S else 'MISS'}"
        )
        for note in bye.notes[:10]:
            print(f"  note: {note}")


# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="callvault-web-bench-"))
    try:
        yield root
    finally:
        if keep:
            print(f"(kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seed-child", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="50,000 calls and fewer requests: a few minutes")
    p.add_argument("--calls", type=int, default=1_000_000, help="calls to seed (default 1,000,000)")
    p.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres (default both)")
    p.add_argument("--reseed", action="store_true", help="rebuild the cached datasets")
    p.add_argument(
        "--cache-dir",
        default="/tmp/callvault-bench",
        help="where seeded data is kept (default /tmp/callvault-bench)",
    )
    p.add_argument("--users", type=int, default=20, help="concurrent virtual users (default 20)")
    p.add_argument(
        "--requests", type=int, default=400, help="requests per scenario with all users (default 400)"
    )
    p.add_argument(
        "--single-requests", type=int, default=30, help="requests per scenario with one user (default 30)"
    )
    p.add_argument("--cap-seconds", type=float, default=90, help="time cap per scenario run (default 90 s)")
    p.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean think time of each user between requests, seconds (default 0: closed loop, saturating)",
    )
    p.add_argument("--deep-pages", type=int, default=50, help="how deep the filtered page is (default 50)")
    p.add_argument("--deep-teams", type=int, default=20, help="teams whose deep page is used (default 20)")
    p.add_argument("--real-calls", type=int, default=300, help="calls pointing at the real recording file")
    p.add_argument("--scenarios", help="comma-separated scenario keys to run (default all)")
    p.add_argument("--bye-calls", type=int, default=20, help="calls for BYE -> visible (0: skip; default 20)")
    p.add_argument("--bye-seconds", type=float, default=3.0, help="length of those calls (default 3 s)")
    p.add_argument("--bye-concurrency", type=int, default=2, help="calls up at a time (default 2)")
    p.add_argument(
        "--code", choices=("head", "worktree"), default="head", help="callvault code to run (default HEAD)"
    )
    p.add_argument("--seed-only", action="store_true", help="prepare the datasets, measure nothing")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice level of the servers and this load generator (default 0; the machine may be shared)",
    )
    p.add_argument(
        "--web-workers", type=int, default=1, help="`callvault web --workers N` processes (default 1)"
    )
    p.add_argument(
        "--web-cpus",
        default="0",
        help="cores the web server is pinned to, e.g. 0,1 (default 0; the load generator runs on core 1)",
    )
    p.add_argument("--json-out", help="write all figures as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs)")
    args = p.parse_args()
    if args.seed_child:
        _seed_child(json.loads(args.seed_child))
        return 0
    if args.quick:  # smaller figures, unless given on the command line
        quick = {
            "calls": 50_000,
            "requests": 150,
            "single_requests": 15,
            "cap_seconds": 30,
            "deep_pages": 20,
            "deep_teams": 5,
            "real_calls": 50,
            "bye_calls": 6,
        }
        for name, value in quick.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    args.scenarios = [s for s in (args.scenarios or "").split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    if shutil.which("taskset") is None:
        print("taskset (util-linux) not found", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {CLIENT_CPU})
    SERVER_CPUS[:] = [int(c) for c in args.web_cpus.split(",") if c.strip()]
    WEB_WORKERS[0] = args.web_workers
    NICE[0] = args.nice
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    env: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "calls": args.calls,
        "users": args.users,
        "requests": args.requests,
        "single_requests": args.single_requests,
        "bye_seconds": args.bye_seconds,
        "bye_concurrency": args.bye_concurrency,
        "nice": args.nice,
        "think_s": args.think,
        "web_workers": args.web_workers,
        "web_cpus": args.web_cpus,
        "loadavg_start": os.getloadavg(),
        "started_at": datetime.now(UTC).isoformat(),
    }
    seeds: dict[str, dict[str, Any]] = {}
    infos: dict[str, dict[str, Any]] = {}
    results: list[ScenarioResult] = []
    bye: ByeResult | None = None
    with work_dir(args.keep) as root:
        log_dir = root / "logs"
        log_dir.mkdir()
        snapshot_code(root, args.code)
        env["code"] = code_version(args.code)
        Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
        try:
            for backend in backends:
                print(f"[{time.monotonic() - started:6.0f}s] {backend}: dataset", flush=True)
                data_dir, url, manifest = ensure_dataset(backend, args, log_dir)
                seeds[backend] = manifest
                if args.seed_only:
                    continue
                print(f"[{time.monotonic() - started:6.0f}s] {backend}: load", flush=True)
                res, info = asyncio.run(bench_backend(backend, data_dir, url, manifest, args, log_dir))
                results += res
                infos[backend] = info
            if args.bye_calls and "sqlite" in seeds and not args.seed_only:
                print(
                    f"[{time.monotonic() - started:6.0f}s] BYE -> visible (callvault serve, SQLite)",
                    flush=True,
                )
                label = scale_label(args.calls)
                bye = asyncio.run(
                    bye_to_visible(
                        Path(args.cache_dir) / f"{label}-sqlite", seeds["sqlite"], args, root, log_dir
                    )
                )
        except KeyboardInterrupt:
            print("interrupted; reporting what was measured", file=sys.stderr)
        except Exception:
            for log in sorted(log_dir.glob("*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                if tail.strip():
                    print(f"--- {log.name} (tail)\n{tail}", file=sys.stderr)
            raise
        finally:
            PROCS.stop_all()
        elapsed = time.monotonic() - started
        env["elapsed_s"] = elapsed
        env["loadavg_end"] = os.getloadavg()
        print_report(env, seeds, results, infos, bye)
        print(
            f"\ntotal wall time {elapsed:.0f} s; load average {env['loadavg_start'][0]:.2f} -> "
            f"{env['loadavg_end'][0]:.2f} (other processes on this machine disturb the figures)"
        )
        if args.json_out:
            doc = {
                "env": env,
                "targets": {"p95_ms": TARGET_P95_MS, "bye_to_visible_s": TARGET_BYE_S},
                "seeds": {
                    k: {kk: vv for kk, vv in v.items() if kk != "call_page_ids"} for k, v in seeds.items()
                },
                "scenarios": [asdict(r) | {"ok": r.ok} for r in results],
                "backend_info": infos,
                "bye": (asdict(bye) | {"summary": bye.summary()}) if bye else None,
            }
            Path(args.json_out).write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
