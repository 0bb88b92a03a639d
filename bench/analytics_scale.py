"""Time every analytics endpoint over a team of many loops (issue #6).

    DJANGO_SETTINGS_MODULE=opsteam.settings.local .venv/bin/python bench/analytics_scale.py \
        --database-url postgres://postgres@127.0.0.1:5432/opsteam_bench_analytics --loops 10000

The database the URL names is dropped and created afresh (PostgreSQL), or the SQLite file deleted, then
migrated and filled by bench.analytics_data. Each endpoint is requested through Django's test Client, as
the team's lead, over the last 180 days: two warm-up requests, then timed ones. A query running past
--statement-timeout seconds is cancelled and its endpoint reported as such. Prints a Markdown table."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
ROLES = ("ops", "pm", "engineer", "analyst")


def fresh_database(url: str) -> None:
    """Drop and create the one database `url` names; nothing else is touched."""
    parts = urlsplit(url)
    if parts.scheme in ("sqlite", "sqlite3"):
        path = Path(parts.path)
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("The database URL names no database.")
    server = make_conninfo(
        "",
        dbname="postgres",
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password,
    )
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered) / 100), 1) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--loops", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per endpoint")
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--metrics", nargs="*", help="only these endpoints (default: all)")
    parser.add_argument(
        "--statement-timeout", type=int, default=60, help="seconds after which a query is cancelled"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsteam.settings.local")
    # DEBUG keeps every query's SQL in memory and adds checks: time the app as it runs in production.
    os.environ.setdefault("DJANGO_DEBUG", "false")
    fresh_database(args.database_url)

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import OperationalError, connection
    from django.test import Client
    from django.utils import timezone

    from analytics.api import METRICS
    from bench.analytics_data import build_loops, statement_limit
    from roles import services as role_services
    from workflows.services import team_setup

    call_command("migrate", verbosity=0)
    users = get_user_model()
    lead = users.objects.create_user(username="bench-lead", password=None)
    team = team_setup(name="Bench", key_prefix="BENCH", creator=lead, time_zone="UTC")
    actors: dict[str, Any] = {}
    for role in ROLES:
        actors[role] = users.objects.create_user(username=f"bench-{role}", password=None)
        role_services.membership_add(team=team, user=actors[role], roles=[role], actor=None)
    started = time.perf_counter()
    built = build_loops(team=team, actors=actors, loops=args.loops, now=timezone.now(), seed=args.seed)
    build_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics, as autovacuum would have them in production
        cursor.execute(
            "SHOW server_version" if connection.vendor == "postgresql" else "SELECT sqlite_version()"
        )
        version = f"{connection.display_name} {cursor.fetchone()[0]}"

    client = Client(SERVER_NAME="localhost")
    client.force_login(lead)
    rows = []
    with statement_limit(args.statement_timeout):
        for metric in args.metrics or list(METRICS):
            url = f"/api/analytics/{metric}/?team={team.pk}&period=180"
            try:
                rows.append(f"| {metric} | {measure(client, url, args.warmups, args.requests)} |")
            except OperationalError:
                rows.append(
                    f"| {metric} | a statement ran past {args.statement_timeout} s and was cancelled | | | | |"
                )

    print(
        f"Data: {built.requirements:,} requirements, {built.loops:,} loops ({built.closed_loops:,} closed, "
        f"{built.open_loops:,} open), {built.events:,} stage events; built in {build_seconds:.1f} s."
    )
    print(f"Database: {version}. Python {platform.python_version()}. {dt.date.today().isoformat()}.")
    print(
        f"Each endpoint: {args.warmups} warm-up requests, then {args.requests} timed; `?team=…&period=180`."
    )
    print()
    print("| endpoint | p50 ms | p95 ms | queries | Python peak MB | response KB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


def measure(client: Any, url: str, warmups: int, requests: int) -> str:
    """The table cells for one endpoint: p50 and p95 time, queries, Python memory peak, answer size."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmups):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    query_count = len(queries)  # read now: the next request clears the connection's query log
    gc.collect()
    tracemalloc.start()
    client.get(url)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (
        f"{nearest_rank(times, 50):.0f} | {nearest_rank(times, 95):.0f} | {query_count} | "
        f"{peak / 2**20:.1f} | {len(response.content) / 1024:.0f}"
    )


if __name__ == "__main__":
    main()
