"""Caller lookup (``caller_card``) against 1,000,000 customers, on SQLite and PostgreSQL.

What it does, per backend:

1. **Seeds** (once; cached, ``--reseed`` rebuilds): 10 teams with a supervisor and 5 agents each;
   N customers (Japanese names and kana, companies for ~30 %), one phone number each and a second
   one for ~30 % (03/06/045/090/080/070, E.164), notes on ~10 %, tags on ~5 % (one a warning tag),
   1,000 nuisance/caution numbers and 20 prefixes (0120, 0570, +1 ...), and 200,000 calls from
   customers' numbers over a year. Rows go in with executemany (SQLite) or COPY (PostgreSQL);
   PostgreSQL gets VACUUM ANALYZE. SQLite lives in ``<cache>/customers-<scale>-sqlite/``,
   PostgreSQL in the database ``callvault_customers_bench``.
2. **Measures** ``caller_card(number, user)`` in-process for ``--lookups`` numbers as a PBX
   presents them (national format with hyphens, E.164, ``anonymous``, ``Coin line/payphone``):
   ~70 % numbers of customers, ~20 % unknown numbers, ~5 % withheld/payphone, ~5 % listed
   prefixes. Users: an agent (member of one team, the screen-pop case), an admin, and no user
   with the line's team (the fan-out case). Also ``GET /api/v1/customers/lookup`` through
   Django's test client with a bearer token (authentication and the audit entry included).
   Reported per case: p50/p95/p99/max wall time and CPU time of this process
   (``time.process_time``; SQLite runs inside it), queries per lookup and, for PostgreSQL, the
   mean CPU time of the server process of the connection (``/proc/<pid>/stat``) per lookup.

Run: ``.venv/bin/python benchmarks/customer_lookup.py`` (1,000,000 customers, both backends),
``--customers 100000`` for a quicker run, ``--backends sqlite``, ``--reseed``, ``--json-out F``.
Target: p95 <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEED_VERSION = 2
PG_DB = "callvault_customers_bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 5.0
N_TEAMS = 10
AGENTS = 5
N_CALLS = 200_000
PASSWORD = "bench-Customer-Lookup-1"

SURNAMES = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
    ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
]  # fmt: skip
GIVEN = [
    ("太郎", "タロウ"), ("花子", "ハナコ"), ("大輔", "ダイスケ"), ("美咲", "ミサキ"), ("翔太", "ショウタ"),
    ("陽菜", "ヒナ"), ("健一", "ケンイチ"), ("由美", "ユミ"), ("直樹", "ナオキ"), ("さくら", "サクラ"),
]  # fmt: skip
COMPANIES = [
    "株式会社サンプル商事",
    "有限会社山田工務店",
    "株式会社みらいテック",
    "医療法人健康会",
    "株式会社東京物流",
]
PREFIXES = ["3", "6", "45", "90", "80", "70"]


def scale_label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def number_of(i: int) -> str:
    """The i-th customer's first number: distinct, spread over area codes and mobile prefixes."""
    prefix = PREFIXES[i % len(PREFIXES)]
    digits = 10 - len(prefix) + (1 if prefix in ("90", "80", "70") else 0)  # 03-xxxx-xxxx, 090-xxxx-xxxx
    return f"+81{prefix}{(i * 7919) % 10**digits:0{digits}d}"


def second_number_of(i: int) -> str:
    return f"+8180{(i * 104729 + 12345) % 10**8:08d}"


# --- the child: Django on one backend -------------------------------------------------------------


class Writer:
    """executemany on SQLite, COPY on PostgreSQL; columns not given get the field's default."""

    def __init__(self) -> None:
        from django.db import connection

        self.vendor = connection.vendor
        connection.ensure_connection()
        if self.vendor == "sqlite":
            self.raw = connection.connection
            self.raw.execute("PRAGMA synchronous=OFF")
            self.raw.execute("PRAGMA cache_size=-500000")
            self.raw.execute("BEGIN")
        else:
            import psycopg
            from django.conf import settings

            db = settings.DATABASES["default"]
            self.raw = psycopg.connect(
                host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=False
            )
            with self.raw.cursor() as cur:
                cur.execute("SET session_replication_role = replica")
                cur.execute("SET synchronous_commit = off")

    def write(self, model: Any, names: list[str], rows: list[tuple[Any, ...]]) -> None:
        from django.db import models as djm
        from django.db.models.fields import NOT_PROVIDED

        if not rows:
            return
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        columns = [by_attname[a].column for a in names]
        extra: list[Any] = []
        for f in model._meta.concrete_fields:
            if f.attname in names or (f.primary_key and isinstance(f, djm.AutoField)):
                continue
            if isinstance(f, djm.DateTimeField) and (f.auto_now or f.auto_now_add):
                value: Any = datetime.now(UTC)
            elif f.default is NOT_PROVIDED:
                value = None
            else:
                value = f.get_default()
            if isinstance(f, djm.JSONField):
                value = json.dumps(value)
            if isinstance(value, datetime) and self.vendor == "sqlite":
                value = str(value.replace(tzinfo=None))
            columns.append(f.column)
            extra.append(value)
        table = model._meta.db_table
        full = [tuple(r) + tuple(extra) for r in rows]
        if self.vendor == "sqlite":  # as Django stores them: naive UTC text, UUIDs as hex
            full = [tuple(self._sqlite(v) for v in r) for r in full]
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.vendor == "sqlite":
            self.raw.executemany(
                f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(columns))})', full
            )
        else:
            with self.raw.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as cp:
                for r in full:
                    cp.write_row(r)

    @staticmethod
    def _sqlite(value: Any) -> Any:
        import uuid

        if isinstance(value, datetime):
            return str(value.astimezone(UTC).replace(tzinfo=None))
        if isinstance(value, uuid.UUID):
            return value.hex
        return value

    def commit(self) -> None:
        if self.vendor == "sqlite":
            self.raw.execute("COMMIT")
            self.raw.execute("BEGIN")
        else:
            self.raw.commit()

    def close(self) -> None:
        if self.vendor == "sqlite":
            self.raw.execute("COMMIT")
            return
        self.raw.autocommit = True
        with self.raw.cursor() as cur:
            for table in ("customers_customer",):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
            cur.execute("VACUUM ANALYZE")
        self.raw.close()


def seed(n: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from callvault.apps.accounts.models import ApiToken, Membership, Profile, Team
    from callvault.apps.calls.models import Call
    from callvault.apps.customers.models import (
        Customer,
        CustomerNote,
        CustomerPhone,
        CustomerTag,
        NumberListEntry,
    )
    from callvault.apps.customers.text import SEPARATOR, fold

    started = time.monotonic()
    rng = random.Random(20261128)
    User = get_user_model()
    pw = make_password(PASSWORD)
    teams = Team.objects.bulk_create([Team(name=f"営業{t + 1}課") for t in range(N_TEAMS)])
    teams = list(Team.objects.order_by("id"))
    users = [User(username="bench-admin", is_superuser=True, password=pw)]
    users += [User(username=f"sv{t}", password=pw) for t in range(N_TEAMS)]
    users += [User(username=f"ag{t}-{k}", password=pw) for t in range(N_TEAMS) for k in range(AGENTS)]
    User.objects.bulk_create(users)
    by_name = {u.username: u for u in User.objects.all()}
    Profile.objects.bulk_create(
        [Profile(user=u, role="admin" if u.username == "bench-admin" else "member", display_name=u.username)
         for u in by_name.values()]
    )  # fmt: skip
    members = []
    for t, team in enumerate(teams):
        members.append(Membership(user=by_name[f"sv{t}"], team=team, role="supervisor"))
        members += [Membership(user=by_name[f"ag{t}-{k}"], team=team, role="agent") for k in range(AGENTS)]
    Membership.objects.bulk_create(members)
    tags = CustomerTag.objects.bulk_create(
        [
            CustomerTag(name=name, warning=name == "クレーム注意")
            for name in ("VIP", "クレーム注意", "新規", "休眠", "代理店")
        ]
    )
    tag_ids = list(CustomerTag.objects.order_by("id").values_list("id", flat=True))
    del tags

    w = Writer()
    team_ids = [t.pk for t in teams]
    now = datetime.now(UTC)
    batch = 50_000
    cust_cols = ["id", "kind", "name", "kana", "company", "owner_team_id", "search_text"]
    phone_cols = ["customer_id", "number", "label", "order"]
    for start in range(0, n, batch):
        customers, phones = [], []
        for i in range(start, min(n, start + batch)):
            (sn, sk), (gn, gk) = SURNAMES[i % len(SURNAMES)], GIVEN[(i // 20) % len(GIVEN)]
            name, kana = f"{sn} {gn}", f"{sk} {gk}"
            company = COMPANIES[i % len(COMPANIES)] if i % 10 < 3 else ""
            first = number_of(i)
            numbers = [first] + ([second_number_of(i)] if i % 10 < 3 else [])
            text = SEPARATOR.join(fold(p) for p in (name, kana, company, *numbers) if p)
            customers.append((i + 1, "person", name, kana, company, team_ids[i % N_TEAMS], text))
            for order, number in enumerate(numbers):
                phones.append((i + 1, number, "work" if order == 0 else "mobile", order))
        w.write(Customer, cust_cols, customers)
        w.write(CustomerPhone, phone_cols, phones)
        w.commit()
    admin = by_name["bench-admin"]
    notes = [
        (
            i + 1,
            admin.pk,
            f"対応メモ {i}: 請求書の送付先を確認済み。次回は経理部宛て。",
            now - timedelta(days=i % 300),
        )
        for i in range(0, n, 10)
    ]
    w.write(CustomerNote, ["customer_id", "author_id", "text", "created_at"], notes)
    through = Customer.tags.through
    w.write(
        through,
        ["customer_id", "customertag_id"],
        [(i + 1, tag_ids[i % len(tag_ids)]) for i in range(0, n, 20)],
    )
    listed = [(f"+81{7_000_000_000 + k * 13}", False, "nuisance" if k % 2 else "caution", "しつこい勧誘",
               None if k % 3 else team_ids[k % N_TEAMS]) for k in range(1000)]  # fmt: skip
    listed += [(p, True, "nuisance", "営業電話", None) for p in ("+81120", "+81570", "+1", "+8150", "+81990")]
    listed += [(f"+813{k:04d}", True, "caution", "要確認の局番", team_ids[k % N_TEAMS]) for k in range(15)]
    w.write(NumberListEntry, ["pattern", "is_prefix", "kind", "reason", "team_id"], listed)
    w.commit()
    agents = {t: [by_name[f"ag{t}-{k}"].pk for k in range(AGENTS)] for t in range(N_TEAMS)}
    call_cols = ["id", "state", "recording_state", "direction", "started_at", "duration", "caller_number",
                 "callee_number", "team_id", "agent_id", "spool_key"]  # fmt: skip
    import uuid

    for start in range(0, N_CALLS, batch):
        calls = []
        for _ in range(start, min(N_CALLS, start + batch)):
            i = rng.randrange(n)
            t = i % N_TEAMS if rng.random() < 0.9 else rng.randrange(N_TEAMS)
            started_at = now - timedelta(seconds=rng.randrange(365 * 86400))
            calls.append((uuid.uuid4(), "completed", "ready", "in", started_at, 90.0, number_of(i),
                          f"2{t:02d}", team_ids[t], rng.choice(agents[t]), uuid.uuid4().hex))  # fmt: skip
        w.write(Call, call_cols, calls)
        w.commit()
    w.close()
    _obj, token = ApiToken.issue(by_name["ag0-0"], "bench")
    return {"seconds": round(time.monotonic() - started, 1), "token": token}


def sample_numbers(n: int, count: int) -> list[str]:
    from callvault.phone import display

    rng = random.Random(7)
    out = []
    for k in range(count):
        r = rng.random()
        if r < 0.70:
            i = rng.randrange(n)
            e164 = (
                number_of(i) if rng.random() < 0.8 else (second_number_of(i) if i % 10 < 3 else number_of(i))
            )
            out.append(display(e164) if k % 2 else e164)  # as PBXs send them: 03-.. or +81..
        elif r < 0.90:
            out.append(f"06-9{rng.randrange(10**3):03d}-{rng.randrange(10**4):04d}")  # nobody's
        elif r < 0.95:
            out.append(rng.choice(["anonymous", "sip:anonymous@anonymous.invalid", "Coin line/payphone"]))
        else:
            out.append(f"0120-{rng.randrange(10**3):03d}-{rng.randrange(10**3):03d}")
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": round(at(0.50), 3),
        "p95": round(at(0.95), 3),
        "p99": round(at(0.99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def measure(numbers: list[str], call: Any) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for number in numbers[:200]:  # warm-up: connection, caches, code paths
        call(number)
    server = _backend_pid()
    server_before = _proc_cpu(server)
    wall, cpu = [], []
    for number in numbers:
        w0, c0 = time.perf_counter(), time.process_time()
        call(number)
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    server_ms = (_proc_cpu(server) - server_before) * 1000 / len(numbers) if server else None
    queries = []
    for number in numbers[:100]:
        with CaptureQueriesContext(connection) as ctx:
            call(number)
        queries.append(len(ctx.captured_queries))
    return {
        "wall_ms": percentiles(wall),
        "cpu_ms": percentiles(cpu),
        "queries": percentiles(queries),
        "server_cpu_ms_mean": round(server_ms, 3) if server_ms is not None else None,
    }


def _backend_pid() -> int | None:
    """The PostgreSQL server process of this connection (same machine), to read its CPU time."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


def _proc_cpu(pid: int | None) -> float:
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def child(opts: dict[str, Any]) -> None:
    os.environ["CALLVAULT_DATA_DIR"] = opts["data_dir"]
    if opts.get("database_url"):
        os.environ["DATABASE_URL"] = opts["database_url"]
    from callvault.cli import _setup_django

    _setup_django(opts["data_dir"])
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from callvault.apps.accounts.models import Team
    from callvault.apps.customers import lookup
    from callvault.apps.customers.models import Customer

    settings.ALLOWED_HOSTS = ["*"]
    n = int(opts["customers"])
    marker = Path(opts["data_dir"]) / f"seeded-v{SEED_VERSION}-{n}.json"
    seeded: dict[str, Any]
    call_command("migrate", interactive=False, verbosity=0)  # also on a cached dataset: new indexes
    if marker.exists() and not opts.get("reseed"):
        seeded = json.loads(marker.read_text())
    else:
        seeded = seed(n)
        marker.write_text(json.dumps(seeded))
    from django.contrib.auth import get_user_model

    User = get_user_model()
    agent, admin = User.objects.get(username="ag0-0"), User.objects.get(username="bench-admin")
    team = Team.objects.order_by("id").first()
    numbers = sample_numbers(n, int(opts["lookups"]))
    found = sum(1 for x in numbers[:500] if lookup.caller_card(x, admin)["customer"])
    client = Client()
    auth = {"Authorization": f"Bearer {seeded['token']}"}

    def api(number: str) -> None:
        r = client.get("/api/v1/customers/lookup", {"number": number}, headers=auth)
        assert r.status_code == 200, r.content

    api_numbers = numbers[: max(300, len(numbers) // 4)]
    results = {
        "backend": "sqlite" if not opts.get("database_url") else "postgresql",
        "customers": Customer.objects.count(),
        "seed_seconds": seeded["seconds"],
        "found_share": round(found / 500, 2),
        "cases": {
            "agent (screen-pop for a user)": measure(numbers, lambda x: lookup.caller_card(x, agent)),
            "admin": measure(numbers, lambda x: lookup.caller_card(x, admin)),
            "no user, line's team (fan-out)": measure(
                numbers, lambda x: lookup.caller_card(x, None, team=team)
            ),
            "number_flags only": measure(numbers, lambda x: lookup.number_flags(x)),
            "GET /api/v1/customers/lookup (agent token, audited)": measure(api_numbers, api),
        },
    }
    print("RESULT " + json.dumps(results, ensure_ascii=False), flush=True)


# --- the parent -------------------------------------------------------------------------------------


def ensure_pg_database(name: str, reseed: bool) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and reseed:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    label = scale_label(args.customers)
    data_dir = Path(args.cache).expanduser() / f"customers-{label}-{backend}"
    if args.reseed and data_dir.exists():
        import shutil

        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    opts: dict[str, Any] = {
        "data_dir": str(data_dir),
        "customers": args.customers,
        "lookups": args.lookups,
        "reseed": args.reseed,
    }
    if backend == "postgres":
        db = f"{PG_DB}_{label}"
        ensure_pg_database(db, args.reseed)
        opts["database_url"] = f"postgres://postgres@127.0.0.1:5432/{db}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, __file__, "--child", json.dumps(opts)]
    if args.nice:
        cmd = ["nice", "-n", str(args.nice), *cmd]
    print(f"[{backend}] {args.customers:,} customers, data in {data_dir} ...", flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise SystemExit(f"[{backend}] failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(
            f"\n{r['backend']}: {r['customers']:,} customers (seeded in {r['seed_seconds']} s); "
            f"{r['found_share']:.0%} of sampled numbers belong to a customer"
        )
        print(
            f"  {'case':<55} {'wall p50':>9} {'p95':>7} {'p99':>7} {'cpu p50':>8} {'p95':>7} {'queries':>8}"
        )
        for name, m in r["cases"].items():
            w, c, q = m["wall_ms"], m["cpu_ms"], m["queries"]
            flag = "" if w["p95"] <= TARGET_MS else "  > target"
            srv = m.get("server_cpu_ms_mean")
            srv_text = f"{srv:>8.2f}ms" if srv is not None else f"{'-':>10}"
            print(
                f"  {name:<55} {w['p50']:>8.2f}ms {w['p95']:>6.2f} {w['p99']:>7.2f} "
                f"{c['p50']:>7.2f}ms {c['p95']:>6.2f} {q['p50']:>5.0f}-{q['max']:<4.0f} {srv_text}{flag}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--cache", default="~/.cache/callvault-bench")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--json-out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    results = [run_backend(b.strip(), args) for b in args.backends.split(",") if b.strip()]
    report(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
