"""The benchmark: opsteam under gunicorn on PostgreSQL and Redis, driven over loopback (issue #8).

    .venv/bin/python bench/run.py            # the reference data set; appends its table to BENCHMARKS.md
    .venv/bin/python bench/run.py --quick    # a small data set, a few requests each: checks it all works

What it does, in order:
1. makes sure the database (default postgres://postgres@127.0.0.1:5432/opsteam_bench) holds the load data
   set of `manage.py generate_load` — builds it (migrate + generate_load) when it is missing or with
   --regenerate — and that Redis answers;
2. starts gunicorn (2 sync workers) and a Celery worker with opsteam.settings.bench: production settings
   over plain HTTP, every response carrying its SQL query count in X-Opsteam-Queries;
3. from this process, one request at a time, signs in as `bench` (token for the API, a session for pages)
   and requests each endpoint in a bounded loop (--requests and --seconds, whichever ends first, after
   warm-up requests): the floor (/api/ping/: authenticated, no query of its own), the requirements list,
   a requirement's detail and history, a real transition each time (design → build, then the rework back),
   the board, the requirement page, my queue, and every analytics endpoint for one team and for all teams;
4. has the Celery worker run the SLA sweep over every open loop (after putting every overdue visit's
   reminders back to unsent, so each run measures the same worst case) and the watch evaluation over
   every watch, each timed with its query count;
5. reads the peak RSS (VmHWM) of the gunicorn workers and of the Celery worker process;
6. EXPLAIN ANALYZEs the slowest query of each hot request (in a transaction rolled back afterwards);
7. prints a table, writes JSON (bench/results/latest.json) and appends the table to BENCHMARKS.md
   (not with --quick or --no-write).

Latency is measured in this process around each whole request (connect, send, read the body)."""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SETTINGS = "opsteam.settings.bench"
QUERY_HEADER = "X-Opsteam-Queries"
ANALYTICS = (
    "cycle-time",
    "time-in-stage",
    "control-chart",
    "cumulative-flow",
    "throughput",
    "wip",
    "sla",
    "rework",
    "loops-per-requirement",
)
BENCH_TEAM = "L01"


@dataclass(frozen=True)
class Target:
    """What issue #8 asks of one measurement; None where it asks nothing."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    floor_ratio: float | None = None
    queries: int | None = None

    def misses(self, result: Result, floor_p50: float) -> list[str]:
        out = []
        if self.p50_ms is not None and result.p50 > self.p50_ms:
            out.append(f"p50 {result.p50:.1f} > {self.p50_ms:g} ms")
        if self.p95_ms is not None and result.p95 > self.p95_ms:
            out.append(f"p95 {result.p95:.1f} > {self.p95_ms:g} ms")
        if self.floor_ratio is not None and floor_p50 and result.p50 > self.floor_ratio * floor_p50:
            out.append(f"p50 {result.p50 / floor_p50:.1f}× floor > {self.floor_ratio:g}×")
        if self.queries is not None and result.queries_max > self.queries:
            out.append(f"{result.queries_max} queries > {self.queries}")
        return out

    def describe(self) -> str:
        parts = []
        if self.p50_ms is not None:
            parts.append(f"p50 ≤ {self.p50_ms:g} ms")
        if self.p95_ms is not None:
            parts.append(f"p95 ≤ {self.p95_ms:g} ms")
        if self.floor_ratio is not None:
            parts.append(f"≤ {self.floor_ratio:g}× floor")
        if self.queries is not None:
            parts.append(f"≤ {self.queries} queries")
        return ", ".join(parts)


TARGETS = {
    "transition": Target(p50_ms=20, floor_ratio=4, queries=12),
    "requirements list": Target(p50_ms=15, queries=6),
    "requirement detail": Target(p50_ms=12, queries=6),
    "board page": Target(p95_ms=120, queries=10),
    **{f"analytics {name} (team)": Target(p95_ms=300) for name in ANALYTICS},
    **{f"analytics {name} (all teams)": Target(p95_ms=1500) for name in ANALYTICS},
}
SWEEP_SECONDS = 3.0
WEB_RSS_MB = 200


@dataclass
class Result:
    name: str
    method: str
    path: str
    requests: int = 0
    seconds: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    rps: float = 0.0
    queries_min: int = 0
    queries_max: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)


def nearest_rank(ordered: list[float], p: float) -> float:
    return ordered[max(math.ceil(p * len(ordered) / 100), 1) - 1]


# -- the services -------------------------------------------------------------------------------------


def check_services(database_url: str, redis_url: str) -> None:
    import psycopg
    import redis

    parts = urlsplit(database_url)
    try:
        psycopg.connect(_server_conninfo(parts), connect_timeout=5).close()
    except psycopg.OperationalError as error:
        raise SystemExit(f"PostgreSQL is not reachable at {database_url}: {error}") from error
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        raise SystemExit(f"Redis is not reachable at {redis_url}: {error}") from error


def _server_conninfo(parts: Any, dbname: str = "postgres") -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(
        "", dbname=dbname, host=parts.hostname, port=parts.port, user=parts.username, password=parts.password
    )


def has_load_data(database_url: str) -> bool:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(_server_conninfo(parts), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
    with psycopg.connect(_server_conninfo(parts, name)) as conn:
        try:
            row = conn.execute("SELECT 1 FROM roles_team WHERE key_prefix = %s", [BENCH_TEAM]).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return row is not None


def build_data(database_url: str, env: dict[str, str], *, quick: bool) -> float:
    """Drop and create the database, migrate, generate the load data set. Returns the seconds taken."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("The database URL names no database.")
    started = time.monotonic()
    with psycopg.connect(_server_conninfo(parts), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=REPO)
    subprocess.run(
        [
            *manage,
            "generate_load",
            *(["--quick"] if quick else []),
            "--password",
            env["OPSTEAM_BENCH_PASSWORD"],
        ],
        env=env,
        check=True,
        cwd=REPO,
    )
    # A freshly bulk-loaded table has no visibility map and unset hint bits, so its first readers write
    # pages back and index-only scans visit the heap. A running database is vacuumed by autovacuum; do
    # that work now, so the run measures the steady state rather than the first reads after a load.
    with psycopg.connect(_server_conninfo(parts, dbname=name), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own process group, stopped (with everything it started) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split() if (task / "children").exists() else []
        found += [int(child) for child in text]
    return found


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the client ---------------------------------------------------------------------------------------


class Client:
    """One request at a time over loopback. gunicorn's sync workers close every connection, so each
    request opens its own (as a browser's first request to a server would)."""

    def __init__(self, port: int, timeout: float = 60) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            all_headers = {"Host": "127.0.0.1", **(headers or {})}
            if self.cookies:
                all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def wait_until_up(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                status, _headers, _data = self.request("GET", "/login/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit("gunicorn did not answer /login/ in time; see its log under var/bench/.")

    def session_login(self, username: str, password: str) -> None:
        status, _headers, page = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or not token:
            raise SystemExit("The login page has no CSRF token.")
        body = urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1).decode()}
        )
        status, _headers, _data = self.request(
            "POST",
            "/login/",
            body=body.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.port}/login/",
            },
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"Signing in as {username} failed (HTTP {status}).")


def api_token(port: int, username: str, password: str) -> str:
    client = Client(port)
    status, _headers, data = client.request(
        "POST",
        "/api/auth/token/",
        body=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    if status != 200:
        raise SystemExit(f"No API token for {username}: HTTP {status} {data[:200]!r}")
    return str(json.loads(data)["token"])


Call = Callable[[int], tuple[str, str, bytes | None]]


def measure(
    name: str,
    client: Client,
    call: Call,
    headers: dict[str, str],
    *,
    requests: int,
    seconds: float,
    warmup: int,
) -> Result:
    """Warm up, then time requests until `requests` were made or `seconds` passed. A request still
    unanswered after the client's timeout ends the endpoint's loop: it is reported, with the time it was
    given, as a timed-out request."""
    method, path, _body = call(0)
    result = Result(name=name, method=method, path=path)
    timings: list[float] = []
    queries: list[int] = []
    i = 0
    started = time.perf_counter()
    try:
        for _ in range(warmup):
            method, path, body = call(i)
            client.request(method, path, body=body, headers=headers)
            i += 1
        started = time.perf_counter()
        while len(timings) < requests and (time.perf_counter() - started) < seconds:
            method, path, body = call(i)
            begin = time.perf_counter()
            status, response_headers, _data = client.request(method, path, body=body, headers=headers)
            timings.append((time.perf_counter() - begin) * 1000)
            result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
            queries.append(int(response_headers.get(QUERY_HEADER.lower(), "-1")))
            i += 1
    except TimeoutError:
        timings.append(client.timeout * 1000)
        result.statuses["timeout"] = 1
    result.seconds = time.perf_counter() - started
    ordered = sorted(timings)
    result.requests = len(ordered)
    result.p50, result.p95, result.p99 = (nearest_rank(ordered, p) for p in (50, 95, 99))
    result.rps = result.requests / result.seconds if result.seconds else 0.0
    result.queries_min, result.queries_max = (min(queries), max(queries)) if queries else (-1, -1)
    return result


# -- Django-side work of the driver (data lookup, the sweeps through Celery, EXPLAIN) -------------------


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def pick_requirements(sample: int) -> dict[str, Any]:
    """The bench team, requirements to read (open and closed, long histories first), and the pool of
    requirements in design that the transition loop moves to build and back."""
    from django.db.models import Count

    from roles.models import Team
    from workflows.models import Requirement

    team = Team.objects.get(key_prefix=BENCH_TEAM)
    readable = list(
        Requirement.objects.filter(team=team)
        .annotate(n=Count("events"))
        .order_by("-n", "pk")
        .values_list("pk", "key")[:sample]
    )
    pool = list(
        Requirement.objects.filter(team=team, closed_at__isnull=True, stage__slug="design")
        .exclude(design="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not pool:
        raise SystemExit(f"No open requirement of {BENCH_TEAM} is in design with a design: nothing to move.")
    return {"team": team.pk, "readable": readable, "pool": pool}


def data_counts() -> dict[str, int]:
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        for label, table in (
            ("teams", "roles_team"),
            ("requirements", "workflows_requirement"),
            ("loops", "workflows_iterationloop"),
            ("stage events", "workflows_stageevent"),
            ("observations", "dataloop_observation"),
            ("watches", "dataloop_metricwatch"),
        ):
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed table names)
            counts[label] = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM workflows_requirement WHERE closed_at IS NULL")
        counts["open requirements"] = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM workflows_iterationloop WHERE closed_at IS NULL")
        counts["open loops"] = int(cursor.fetchone()[0])
        cursor.execute("SELECT version()")
        counts_version = str(cursor.fetchone()[0]).split(" on ")[0]
    return {**counts, "postgresql": counts_version}  # type: ignore[dict-item]


def reset_reminders() -> int:
    """Every open visit past its SLA is due a reminder again: the sweep then does the most work it can."""
    from django.db.models import F

    from workflows.models import Requirement, StageReminder

    StageReminder.objects.filter(loop__closed_at__isnull=True).delete()
    return Requirement.objects.filter(closed_at__isnull=True, sla_due_at__isnull=False).update(
        sla_next_at=F("sla_due_at")
    )


def run_sweep(name: str) -> dict[str, Any]:
    from perf.tasks import measure as measure_task

    return dict(measure_task.delay(name).get(timeout=600))


def explain(paths: list[tuple[str, str, str, bytes | None]], username: str) -> list[dict[str, Any]]:
    """For each (name, method, path, body): the request's slowest query, EXPLAIN ANALYZEd. The request
    runs inside a transaction that is rolled back, so a transition leaves nothing behind."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    user = get_user_model().objects.get(username=username)
    out = []
    for name, method, path, body in paths:
        client = DjangoClient(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        with transaction.atomic():
            with CaptureQueriesContext(connection) as captured:
                if method == "POST":
                    client.post(path, data=body, content_type="application/json")
                else:
                    client.get(path)
            selects = [
                q
                for q in captured.captured_queries
                if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
            ]
            if selects:
                slowest = max(selects, key=lambda q: float(q["time"]))
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF) " + slowest["sql"])
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                out.append(
                    {
                        "name": name,
                        "path": path,
                        "queries": len(captured),
                        "sql": slowest["sql"],
                        "plan": plan,
                    }
                )
            transaction.set_rollback(True)
    return out


# -- report -------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
    }


def table(results: list[Result], floor_p50: float) -> str:
    lines = [
        "| what | requests | p50 ms | p95 ms | p99 ms | req/s | p50 × floor | queries | target | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        target = TARGETS.get(r.name)
        queries = str(r.queries_max) if r.queries_min == r.queries_max else f"{r.queries_min}–{r.queries_max}"
        met = "" if target is None else ("yes" if not r.misses else "**no**: " + "; ".join(r.misses))
        ratio = r.p50 / floor_p50 if floor_p50 else 0
        lines.append(
            f"| {r.name} | {r.requests} | {r.p50:.1f} | {r.p95:.1f} | {r.p99:.1f} | {r.rps:.1f} | {ratio:.1f} | "
            f"{queries} | {target.describe() if target else ''} | {met} |"
        )
    return "\n".join(lines)


def report(run: dict[str, Any], results: list[Result]) -> str:
    floor = results[0].p50
    m = run["machine"]
    counts = run["data"]
    sweeps = run["sweeps"]
    rss = run["rss_mb"]
    lines = [
        f"## Benchmark run {run['date']}{' (quick)' if run['quick'] else ''}",
        "",
        f"- **Date:** {run['date']} · **commit:** `{m['commit']}` · **machine:** {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gb']} GB memory, Linux {m['kernel']}, Python {m['python']}",
        f"- **Setup:** gunicorn {run['gunicorn']['workers']} sync workers, one client request at a time over loopback; "
        f"{counts['postgresql']}; Redis; settings `{SETTINGS}`",
        "- **Data:** " + ", ".join(f"{v:,} {k}" for k, v in counts.items() if k != "postgresql"),
        f"- **Loops:** up to {run['requests']} requests or {run['seconds']:g} s per endpoint "
        f"(analytics: {run['analytics_requests']} or {run['analytics_seconds']:g} s), after {run['warmup']} warm-up "
        "requests (analytics: 1); p50/p95/p99 nearest-rank; queries from the X-Opsteam-Queries header (session or token "
        "authentication included)",
        f"- **Command:** `{run['command']}`",
        "",
        table(results, floor),
        "",
        "| sweep (Celery worker) | seconds | SQL queries | work | target | met |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    sla = sweeps["sla_sweep"]
    # One pass whatever the number of due visits: its query count is the same for one or thousands
    # (pinned by tests/workflows/test_reminders_queries.py); more than one pass would make it grow.
    one_pass = sla["batches"] == 1
    met = sla["seconds"] <= SWEEP_SECONDS and one_pass
    lines.append(
        f"| SLA sweep, all open loops | {sla['seconds']:.2f} | {sla['queries']} in {sla['batches']} "
        f"pass{'' if one_pass else 'es'} | {sla['reminders']:,} reminders from {sla['reset']:,} open requirements "
        f"with an SLA | ≤ {SWEEP_SECONDS:g} s, queries independent of the overdue count | "
        f"{'yes' if met else '**no**'} |"
    )
    watch = sweeps["watch_evaluation"]
    lines.append(
        f"| watch evaluation, all watches | {watch['seconds']:.2f} | {watch['queries']} | {watch['fired']} fired | | |"
    )
    lines += [
        "",
        "| process | peak RSS MB | target | met |",
        "| --- | ---: | --- | --- |",
        f"| gunicorn web worker (largest of {len(rss['web_workers'])}) | {max(rss['web_workers'] or [0]):.0f} | "
        f"≤ {WEB_RSS_MB} MB | {'yes' if max(rss['web_workers'] or [0]) <= WEB_RSS_MB else '**no**'} |",
        f"| Celery worker process | {rss['celery']:.0f} | | |",
        "",
    ]
    if run.get("explain"):
        lines += ["<details><summary>EXPLAIN ANALYZE of each hot request's slowest query</summary>", ""]
        for item in run["explain"]:
            lines += [
                f"#### {item['name']} — `{item['path']}` ({item['queries']} queries)",
                "",
                "```",
                item["plan"],
                "```",
                "",
            ]
        lines += ["</details>", ""]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="small data set, few requests: checks that it works"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--regenerate", action="store_true", help="build the data set again even if present")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=None, help="timed requests per endpoint at most")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per endpoint at most")
    parser.add_argument("--no-write", action="store_true", help="don't append to BENCHMARKS.md")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON file (default bench/results/latest.json)"
    )
    args = parser.parse_args(argv)

    quick = args.quick
    database_url = args.database_url or os.environ.get(
        "BENCH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/" + ("opsteam_bench_quick" if quick else "opsteam_bench"),
    )
    requests_cap = args.requests or (5 if quick else 200)
    seconds_cap = args.seconds or (2.0 if quick else 8.0)
    analytics_requests = 3 if quick else 40
    analytics_seconds = 2.0 if quick else 10.0
    warmup = 1 if quick else 3
    password = os.environ.get("OPSTEAM_BENCH_PASSWORD", "bench")
    logs = REPO / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", secrets.token_urlsafe(50)),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "OPSTEAM_DATA_DIR": str(logs / "data"),
        "OPSTEAM_BENCH_PASSWORD": password,
        "PYTHONPATH": str(REPO),
    }
    total_started = time.monotonic()
    check_services(database_url, args.redis_url)
    build_seconds = None
    if args.regenerate or not has_load_data(database_url):
        print(f"== building the {'quick' if quick else 'reference'} data set in {database_url}", flush=True)
        build_seconds = build_data(database_url, env, quick=quick)
        print(f"   built in {build_seconds:.0f} s", flush=True)
    else:
        subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "migrate", "-v0"], env=env, check=True, cwd=REPO
        )

    django_setup(env)
    picked = pick_requirements(50)
    counts = data_counts()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()  # this run's queue only: a database of its own

    port = free_port()
    gunicorn = [
        str(VENV_BIN / "gunicorn"),
        "opsteam.wsgi:application",
        "--workers",
        str(args.workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "sync",
        "--timeout",
        "90",
    ]
    celery = [
        str(VENV_BIN / "celery"),
        "-A",
        "opsteam",
        "worker",
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "-l",
        "warning",
        "--without-mingle",
        "--without-gossip",
    ]
    results: list[Result] = []
    with (
        running(gunicorn, env, logs / "gunicorn.log") as web,
        running(celery, env, logs / "celery.log") as worker,
    ):
        # Two clients: the API one carries only its token, the browser one only its session cookie.
        api_client = Client(port)
        api_client.wait_until_up()
        token = api_token(port, "bench", password)
        browser = Client(port)
        browser.session_login("bench", password)
        api = {"Authorization": f"Token {token}", "Accept": "application/json"}
        post = {**api, "Content-Type": "application/json"}
        pages = {"Accept": "text/html"}
        team = picked["team"]
        readable = picked["readable"]
        pool = picked["pool"]

        def get(path: str) -> Call:
            return lambda i: ("GET", path, None)

        def moving(i: int) -> tuple[str, str, bytes | None]:
            # Requirement i // 2 of the pool goes to build, then back to design: a real move each time.
            pk = pool[(i // 2) % len(pool)]
            there = (
                {"from": "design", "to": "build"}
                if i % 2 == 0
                else {"from": "build", "to": "design", "note": "bench"}
            )
            return "POST", f"/api/requirements/{pk}/transition/", json.dumps(there).encode()

        plan: list[tuple[str, Call, dict[str, str], bool]] = [
            ("floor", get("/api/ping/"), api, False),
            ("requirements list", get(f"/api/requirements/?team={team}&open=true&page_size=30"), api, False),
            (
                "requirement detail",
                lambda i: ("GET", f"/api/requirements/{readable[i % len(readable)][0]}/", None),
                api,
                False,
            ),
            (
                "requirement history",
                lambda i: ("GET", f"/api/requirements/{readable[i % len(readable)][0]}/history/", None),
                api,
                False,
            ),
            ("transition", moving, post, False),
            ("board page", get(f"/teams/{team}/board/"), pages, False),
            (
                "requirement page",
                lambda i: ("GET", f"/requirements/{readable[i % len(readable)][1]}/", None),
                pages,
                False,
            ),
            ("my queue page", get("/queue/"), pages, False),
        ]
        plan += [
            (f"analytics {m} (team)", get(f"/api/analytics/{m}/?team={team}&period=180"), api, True)
            for m in ANALYTICS
        ]
        plan += [
            (f"analytics {m} (all teams)", get(f"/api/analytics/{m}/?period=180"), api, True)
            for m in ANALYTICS
        ]
        for name, call, headers, heavy in plan:
            result = measure(
                name,
                browser if headers is pages else api_client,
                call,
                headers,
                requests=analytics_requests if heavy else requests_cap,
                seconds=analytics_seconds if heavy else seconds_cap,
                warmup=1 if heavy else warmup,
            )
            results.append(result)
            bad = {s: n for s, n in result.statuses.items() if not s.startswith("2") and s != "timeout"}
            print(
                f"   {name:<42} n={result.requests:<4} p50={result.p50:8.1f} p95={result.p95:8.1f} "
                f"p99={result.p99:8.1f} ms  q={result.queries_max}"
                + (f"  FAILED {bad}" if bad else "")
                + ("  TIMED OUT" if "timeout" in result.statuses else ""),
                flush=True,
            )
            if bad:
                raise SystemExit(f"{name}: {bad} — every request must succeed (see var/bench/gunicorn.log).")
        floor_p50 = results[0].p50
        for result in results:
            target = TARGETS.get(result.name)
            result.misses = target.misses(result, floor_p50) if target else []
            if "timeout" in result.statuses:
                result.misses.insert(0, "a request timed out (no answer in 60 s)")

        reset = reset_reminders()
        sweeps = {
            "sla_sweep": {**run_sweep("sla_sweep"), "reset": reset},
            "watch_evaluation": run_sweep("watch_evaluation"),
        }
        for name, sweep in sweeps.items():
            print(f"   {name:<42} {sweep['seconds']:.2f} s, {sweep['queries']} queries", flush=True)
        web_rss = [peak_rss_mb(pid) for pid in children(web.pid)]
        celery_children = children(worker.pid)
        celery_rss = max([peak_rss_mb(pid) for pid in celery_children] or [0.0])
        celery_rss = max(celery_rss, max(s["peak_rss_kb"] for s in sweeps.values()) / 1024)

    explained = explain(
        [
            ("requirements list", "GET", f"/api/requirements/?team={team}&open=true&page_size=30", None),
            ("requirement detail", "GET", f"/api/requirements/{readable[0][0]}/", None),
            ("requirement history", "GET", f"/api/requirements/{readable[0][0]}/history/", None),
            (
                "transition",
                "POST",
                f"/api/requirements/{pool[0]}/transition/",
                json.dumps({"from": "design", "to": "build"}).encode(),
            ),
            ("board page", "GET", f"/teams/{team}/board/", None),
            ("requirement page", "GET", f"/requirements/{readable[0][1]}/", None),
            ("my queue page", "GET", "/queue/", None),
            *(
                (f"analytics {m} (team)", "GET", f"/api/analytics/{m}/?team={team}&period=180", None)
                for m in ANALYTICS
            ),
        ],
        "bench",
    )
    run = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "data": counts,
        "data_build_seconds": build_seconds,
        "gunicorn": {"workers": args.workers},
        "requests": requests_cap,
        "seconds": seconds_cap,
        "analytics_requests": analytics_requests,
        "analytics_seconds": analytics_seconds,
        "warmup": warmup,
        "results": [asdict(r) for r in results],
        "sweeps": sweeps,
        "rss_mb": {"web_workers": web_rss, "celery": celery_rss},
        "explain": explained,
        "total_seconds": time.monotonic() - total_started,
    }
    text = report(run, results)
    print()
    print(text)
    output = args.output or (logs / "quick.json" if quick else REPO / "bench" / "results" / "latest.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n")
    if not quick and not args.no_write:
        with (REPO / "BENCHMARKS.md").open("a") as out:
            out.write("\n" + text)
    print(f"\nJSON: {output}; whole run {run['total_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
