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
    p.add_argument(
        "--asgi",
        action="store_true",
        help="call the ASGI application (as uvicorn does) instead of the test client's WSGI-like handler",
    )
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
    print(f"backend {connection.vendor}, user {args.user}, {'ASGI' if args.asgi else 'test client'}")
    if args.asgi:
        cookie = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())
        asgi = AsgiCaller(cookie)
        client = asgi  # type: ignore[assignment]
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
            print(f"    {float(q['time']) * 1000:6.1f} ms  {q['sql'][:4000]}")
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


class AsgiResponse:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code, self.content = status, content


class AsgiCaller:
    """``get(path)`` through ``callvault.asgi.application`` in one event loop, like uvicorn."""

    def __init__(self, cookie: str) -> None:
        import asyncio

        from callvault.asgi import application

        self.app = application
        self.cookie = cookie.encode()
        self.loop = asyncio.new_event_loop()

    def get(self, path: str) -> AsgiResponse:
        return self.loop.run_until_complete(self._get(path))

    async def _get(self, path: str) -> AsgiResponse:
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"accept", b"text/html"),
                (b"cookie", self.cookie),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        status, body = 0, []

        async def receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            import asyncio

            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
            elif message["type"] == "http.response.body":
                body.append(bytes(message.get("body", b"")))  # type: ignore[arg-type]

        await self.app(scope, receive, send)
        return AsgiResponse(status, b"".join(body))


if __name__ == "__main__":
    sys.exit(main())
