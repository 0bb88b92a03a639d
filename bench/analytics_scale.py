"""Time every analytics endpoint over teams of many loops (issues #6 and #8).

    DJANGO_SETTINGS_MODULE=opsteam.settings.local .venv/bin/python bench/analytics_scale.py \
        --database-url postgres://postgres@127.0.0.1:5432/opsteam_bench_analytics --loops 10000

    # issue #8's size: 20 teams of 5,000 requirements and 12,500 loops each, then the same data again
    .venv/bin/python bench/analytics_scale.py --database-url postgres://…/opsteam_perf_analytics \
        --teams 20 --loops 12500 --requirements 5000
    .venv/bin/python bench/analytics_scale.py --database-url postgres://…/opsteam_perf_analytics \
        --teams 20 --loops 12500 --requirements 5000 --reuse --explain bench/results/analytics_plans.md

The database the URL names is dropped and created afresh (PostgreSQL), or the SQLite file deleted, then
migrated and filled by bench.analytics_data: `--teams` teams (Bench, Bench 02, …) of `--loops` loops each,
every event within `--history-days` days. With `--reuse` the data a previous run left is kept (only
new migrations are applied), which is how a change of query or index is measured on the same rows.

Each endpoint is requested through Django's test Client over the last 180 days: as the first team's lead
with `?team=<id>`, and, with more than one team, as a staff user without a team (every team at once). Two
warm-up requests, then timed ones. A query running past --statement-timeout seconds is cancelled and its
endpoint reported as such. Prints Markdown tables (and writes them to --output); --explain writes the
EXPLAIN ANALYZE of each request's slowest query (PostgreSQL)."""

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
LEAD, STAFF = "bench-lead", "bench-staff"


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


def team_name(index: int) -> tuple[str, str]:
    """(name, key prefix) of the index-th bench team; the first keeps the names of earlier runs."""
    return ("Bench", "BENCH") if index == 0 else (f"Bench {index + 1:02d}", f"BENCH{index + 1:02d}")


def build(args: argparse.Namespace) -> str:
    """Users, teams and their loops; returns a line saying what was written."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from bench.analytics_data import build_loops
    from roles import services as role_services
    from workflows.services import team_setup

    users = get_user_model()
    lead = users.objects.create_user(username=LEAD, password=None)
    users.objects.create_user(username=STAFF, password=None, is_staff=True)
    actors = {role: users.objects.create_user(username=f"bench-{role}", password=None) for role in ROLES}
    now = timezone.now()
    started = time.perf_counter()
    totals = [0, 0, 0, 0, 0]
    for index in range(args.teams):
        name, prefix = team_name(index)
        team = team_setup(name=name, key_prefix=prefix, creator=lead, time_zone="UTC")
        for role, user in actors.items():
            role_services.membership_add(team=team, user=user, roles=[role], actor=None)
        built = build_loops(
            team=team,
            actors=actors,
            loops=args.loops,
            now=now,
            seed=args.seed + index,
            requirements=args.requirements,
            history=dt.timedelta(days=args.history_days),
        )
        for i, n in enumerate(
            (built.requirements, built.loops, built.closed_loops, built.open_loops, built.events)
        ):
            totals[i] += n
    seconds = time.perf_counter() - started
    requirements, loops, closed, open_loops, events = totals
    return (
        f"Data: {args.teams} team(s), {requirements:,} requirements, {loops:,} loops ({closed:,} closed, "
        f"{open_loops:,} open), {events:,} stage events, within {args.history_days} days; "
        f"built in {seconds:.0f} s."
    )


def existing_data() -> str:
    from django.db.models import Count

    from roles.models import Team
    from workflows.models import IterationLoop, Requirement, StageEvent

    teams = Team.objects.filter(key_prefix__startswith="BENCH").aggregate(n=Count("id"))["n"]
    return (
        f"Data (kept from an earlier run): {teams} team(s), {Requirement.objects.count():,} requirements, "
        f"{IterationLoop.objects.count():,} loops ({IterationLoop.objects.filter(closed_at=None).count():,} "
        f"open), {StageEvent.objects.count():,} stage events."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--teams", type=int, default=1)
    parser.add_argument("--loops", type=int, default=10_000, help="loops per team")
    parser.add_argument(
        "--requirements", type=int, default=None, help="requirements per team (default: two loops each)"
    )
    parser.add_argument("--history-days", type=int, default=175, help="every event within this many days")
    parser.add_argument("--reuse", action="store_true", help="keep the data an earlier run wrote")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per endpoint")
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--metrics", nargs="*", help="only these endpoints (default: all)")
    parser.add_argument(
        "--scopes", nargs="*", choices=["team", "all"], help="one team, all teams (default: both)"
    )
    parser.add_argument(
        "--statement-timeout", type=int, default=60, help="seconds after which a query is cancelled"
    )
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    parser.add_argument("--explain", type=Path, help="write each request's slowest query, EXPLAIN ANALYZEd")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsteam.settings.local")
    # DEBUG keeps every query's SQL in memory and adds checks: time the app as it runs in production.
    os.environ.setdefault("DJANGO_DEBUG", "false")
    if not args.reuse:
        fresh_database(args.database_url)

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import OperationalError, connection
    from django.test import Client

    from analytics.api import METRICS
    from bench.analytics_data import statement_limit
    from roles.models import Team

    call_command("migrate", verbosity=0)
    data = existing_data() if args.reuse else build(args)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics, as autovacuum would have them in production
        cursor.execute(
            "SHOW server_version" if connection.vendor == "postgresql" else "SELECT sqlite_version()"
        )
        version = f"{connection.display_name} {cursor.fetchone()[0]}"

    users = get_user_model()
    team = Team.objects.get(key_prefix=team_name(0)[1])
    scopes = args.scopes or (["team", "all"] if Team.objects.count() > 1 else ["team"])
    asked = {
        "team": (users.objects.get(username=LEAD), f"team={team.pk}&period=180", "one team, as its lead"),
        "all": (users.objects.get(username=STAFF), "period=180", "all teams, as staff"),
    }
    out = [
        data,
        f"Database: {version}. Python {platform.python_version()}. {dt.date.today().isoformat()}. "
        f"Load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        f"Each endpoint: {args.warmups} warm-up requests, then {args.requests} timed.",
    ]
    plans: list[str] = []
    for key in scopes:
        user, query, title = asked[key]
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        rows = []
        with statement_limit(args.statement_timeout):
            for metric in args.metrics or list(METRICS):
                url = f"/api/analytics/{metric}/?{query}"
                try:
                    rows.append(f"| {metric} | {measure(client, url, args.warmups, args.requests)} |")
                except OperationalError:
                    rows.append(f"| {metric} | cancelled after {args.statement_timeout} s | | | | |")
                    continue
                if args.explain and connection.vendor == "postgresql":
                    plans.append(explain(client, url, f"{metric} ({title})"))
        out += [
            "",
            f"### {title}: `?{query}`",
            "",
            "| endpoint | p50 ms | p95 ms | queries | Python peak MB | response KB |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    text = "\n".join(out) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.explain:
        args.explain.write_text(f"{data}\n{out[1]}\n\n" + "\n".join(plans))


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


def explain(client: Any, url: str, title: str) -> str:
    """A Markdown section: the request's slowest query and its EXPLAIN (ANALYZE, BUFFERS) plan."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    selects = [
        q for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    slowest = max(selects, key=lambda q: float(q["time"]))
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return f"## {title}\n\n`{url}`, {float(slowest['time']) * 1000:.0f} ms in the request\n\n```sql\n{slowest['sql']}\n```\n\n```\n{plan}\n```\n"


if __name__ == "__main__":
    main()
