"""CPU of one calls list request, in-process, on a seeded dataset (see ``web_list.py``).

Runs the Django stack (middleware, view, templates) with the test client in a loop, logged in as
one of the seeded users, and prints CPU time per request (``time.process_time``: this process
only, so other work on a shared machine does not inflate it), the wall time, the number of SQL
queries and where the time goes (cProfile, top functions by cumulative and by own time).

    .venv/bin/python benchmarks/profile_list.py --data-dir /tmp/callvault-bench/1m-sqlite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/callvault_bench_1m \\
        .venv/bin/python benchmarks/profile_list.py --data-dir /tmp/callvault-bench/1m-postgres
    .venv/bin/python benchmarks/profile_list.py --data-dir ... --path '/?q=1234-5678' --user sv01
    .venv/bin/python benchmarks/profile_list.py --data-dir ... --profile 30 --sort tottime
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="the seeded data directory")
    p.add_argument("--path", action="append", help="URL to request (repeatable; default /)")
    p.add_argument("--user", default="bench-admin", help="seeded user to log in as (default bench-admin)")
    p.add_argument("--requests", type=int, default=50, help="timed requests per path (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed requests first (default 5)")
    p.add_argument("--profile", type=int, default=0, help="also profile this many requests with cProfile")
    p.add_argument("--sort", default="cumulative", help="cProfile sort key (cumulative, tottime)")
    p.add_argument("--top", type=int, default=40, help="lines of the profile to print")
    p.add_argument("--language", default="", help="'en' to request the English UI")
    p.add_argument("--queries", action="store_true", help="print every SQL query of one request")
    args = p.parse_args()

    os.environ["CALLVAULT_DATA_DIR"] = args.data_dir
    os.environ.setdefault("CALLVAULT_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    user = get_user_model().objects.get(username=args.user)
    client = Client()
    client.force_login(user)
    if args.language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = args.language
    print(f"backend {connection.vendor}, user {args.user}")
    for path in args.path or ["/"]:
        for _ in range(args.warmup):
            r = client.get(path)
            if r.status_code != 200:
                print(f"{path}: HTTP {r.status_code}", file=sys.stderr)
                return 1
        cpu: list[float] = []
        wall: list[float] = []
        settings.DEBUG = True  # count queries
        reset_queries()
        client.get(path)
        queries = len(connection.queries)
        slowest = list(connection.queries) if args.queries else []
        settings.DEBUG = False
        size = 0
        for _ in range(args.requests):
            c0, w0 = time.process_time(), time.perf_counter()
            r = client.get(path)
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
            size = len(r.content)
        print(
            f"{path}: CPU per request p50 {statistics.median(cpu):.1f} ms (min {min(cpu):.1f}), "
            f"wall p50 {statistics.median(wall):.1f} ms (min {min(wall):.1f}), {queries} queries, "
            f"{size:,} bytes, {r.content.count(b'data-call-id=')} rows"
        )
        for q in slowest:
            print(f"    {float(q['time']) * 1000:6.1f} ms  {q['sql'][:300]}")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.profile):
                client.get(path)
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out)
            stats.sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
