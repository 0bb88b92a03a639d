"""Flow metrics (METRICS.md), computed from the stage event log in SQL.

One pipeline of common table expressions turns a team's events into *visits* (a stretch of time a loop
spent in one stage: from the event that entered the stage to the requirement's next event) and *closed
loops* (from the loop's first visit to its iterate / close event). Every metric aggregates those in the
database — percentiles too, by nearest rank over ROW_NUMBER — on SQLite and PostgreSQL alike. Days and weeks
are cut in the team's time zone by passing their boundaries as a small table of instants.

The working-time variant needs the team's calendar, which SQL cannot apply: it reads the visit rows of the
loops in question and adds up their working seconds in Python."""

# The SQL below is assembled only from constants, table names and placeholders; every value a user
# supplies travels as a query parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from roles.models import Team
from workflows.models import IterationLoop, Label, Requirement, Stage, StageEvent, Workflow
from worktime.hours import CalendarDef, working_seconds
from worktime.selectors import calendar_definition

PERCENTILES = (50, 85, 95)
BACKWARD_KINDS = ("rework",)
# Earlier than any event: "all of a requirement's events".
EPOCH = dt.datetime(1, 1, 2, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Filters:
    aarrr_stage: str = ""
    label: str = ""
    assignee_id: int | None = None
    priority: str = ""


@dataclass(frozen=True)
class Scope:
    """Which loops a metric looks at: the teams, the period [start, end), the filters, the clock."""

    teams: tuple[Team, ...]
    start: dt.datetime
    end: dt.datetime
    filters: Filters = field(default_factory=Filters)
    working: bool = False  # working time (the team's calendar) instead of calendar time
    now: dt.datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        """Days and weeks are cut in the team's time zone (UTC when several teams are looked at)."""
        return ZoneInfo(self.teams[0].time_zone) if len(self.teams) == 1 else ZoneInfo("UTC")

    @property
    def clock(self) -> dt.datetime:
        return self.now or timezone.now()


def percentile(values: Sequence[float], p: int) -> float | None:
    """Nearest rank (METRICS.md): the value at rank ceil(p/100 × n) of the sorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered) / 100), 1) - 1]


# ------------------------------------------------------------------------------------------- SQL bits


def _t(model: Any) -> str:
    return model._meta.db_table


def _secs(a: str, b: str) -> str:
    """SQL: seconds from a to b (both timestamps)."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({b} - {a}))"
    return f"((julianday({b}) - julianday({a})) * 86400.0)"


def _epoch(a: str) -> str:
    """SQL: a timestamp as seconds since 1970 (UTC)."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM {a})"
    return f"((julianday({a}) - 2440587.5) * 86400.0)"


def _param(value: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _ts(column: str) -> str:
    """SQL: a placeholder compared with timestamps (PostgreSQL wants to know its type in VALUES lists)."""
    return "CAST(%s AS TIMESTAMP WITH TIME ZONE)" if connection.vendor == "postgresql" else "%s"


def _scope_where(scope: Scope) -> tuple[list[str], list[Any]]:
    """SQL conditions on the requirement (alias r) for the scope's teams and filters, with their params."""
    params: list[Any] = []
    where = [f"r.team_id IN ({', '.join(['%s'] * len(scope.teams))})"]
    params += [team.pk for team in scope.teams]
    f = scope.filters
    if f.aarrr_stage:
        where.append("r.aarrr_stage = %s")
        params.append(f.aarrr_stage)
    if f.priority:
        where.append("r.priority = %s")
        params.append(f.priority)
    if f.assignee_id is not None:
        where.append("r.assignee_id = %s")
        params.append(f.assignee_id)
    if f.label:
        through = Requirement.labels.through._meta.db_table
        where.append(
            f"EXISTS (SELECT 1 FROM {through} rl JOIN {_t(Label)} lb ON lb.id = rl.label_id "
            f"WHERE rl.requirement_id = r.id AND lb.name = %s)"
        )
        params.append(f.label)
    return where, params


def _events_cte(scope: Scope) -> tuple[str, list[Any]]:
    """ev: the scoped events with the next event's time; visits; loop_start; closed (in the period)."""
    where, params = _scope_where(scope)
    # Only what a period can see is read. On PostgreSQL: for each requirement, its events from the start
    # of the loop it was in when the period began (its latest create / iterate before the start), or from
    # the start itself when it was already closed by then. Every visit ending in or open during the period,
    # every loop closing in it and every loop open now lies there, whole; each event's next event too. The
    # two bounds are index lookups (the partial indexes event_loop_start and event_close).
    if connection.vendor == "postgresql":
        begin = _param(scope.start)
        events = f"""
    req AS MATERIALIZED (
        SELECT r.id, r.workflow_id,
               (SELECT MAX(b.at) FROM {_t(StageEvent)} b WHERE b.requirement_id = r.id
                  AND b.kind IN ('create', 'iterate') AND b.at < {_ts("")}) AS began,
               (SELECT MAX(b.at) FROM {_t(StageEvent)} b WHERE b.requirement_id = r.id
                  AND b.kind = 'close' AND b.at < {_ts("")}) AS ended
        FROM {_t(Requirement)} r
        WHERE {" AND ".join(where)}
    ),
    since AS MATERIALIZED (
        SELECT id, workflow_id,
               CASE WHEN ended IS NOT NULL AND (began IS NULL OR ended >= began) THEN {_ts("")}
                    ELSE COALESCE(began, {_ts("")}) END AS since
        FROM req
    ),
    ev AS (
        SELECT e.id, e.requirement_id, s.workflow_id, e.at, e.from_stage, e.to_stage, e.kind,
               l.number AS loop_no,
               LEAD(e.at) OVER (PARTITION BY e.requirement_id ORDER BY e.at, e.id) AS next_at
        FROM since s
        JOIN {_t(StageEvent)} e ON e.requirement_id = s.id AND e.at >= s.since
        JOIN {_t(IterationLoop)} l ON l.id = e.loop_id
    ),"""
        params = [begin, begin, *params, begin, _param(EPOCH)]
    else:
        # SQLite (development, tests) reads every event of the scoped requirements: its planner does far
        # worse with the correlated bounds above.
        events = f"""
    ev AS (
        SELECT e.id, e.requirement_id, r.workflow_id, e.at, e.from_stage, e.to_stage, e.kind,
               l.number AS loop_no,
               LEAD(e.at) OVER (PARTITION BY e.requirement_id ORDER BY e.at, e.id) AS next_at
        FROM {_t(StageEvent)} e
        JOIN {_t(IterationLoop)} l ON l.id = e.loop_id
        JOIN {_t(Requirement)} r ON r.id = e.requirement_id
        WHERE {" AND ".join(where)}
    ),"""
    sql = (
        events
        + f"""
    visits AS (
        SELECT requirement_id, workflow_id,
               loop_no + CASE WHEN kind = 'iterate' THEN 1 ELSE 0 END AS loop_no,
               to_stage AS stage, at AS start_at, next_at AS end_at
        FROM ev WHERE kind <> 'close'
    ),
    loop_start AS (
        SELECT requirement_id, loop_no, MIN(start_at) AS started_at FROM visits GROUP BY requirement_id, loop_no
    ),
    closed AS (
        SELECT x.requirement_id, x.loop_no, s.started_at, x.at AS closed_at, x.kind AS outcome,
               {_secs("s.started_at", "x.at")} AS cycle
        FROM ev x JOIN loop_start s ON s.requirement_id = x.requirement_id AND s.loop_no = x.loop_no
        WHERE x.kind IN ('iterate', 'close') AND x.at >= {_ts("")} AND x.at < {_ts("")}
    )"""
    )
    params += [_param(scope.start), _param(scope.end)]
    return sql, params


# ------------------------------------------------------------------ PostgreSQL: each metric's own read
#
# The pipeline above derives every visit of every scoped loop (a window over all their events) before
# any metric looks at them. Over every team that is ~570,000 events sorted for one figure. On
# PostgreSQL, each calendar-time metric instead reads only the events its definition needs, from the
# same log, by index:
# - a loop closed in the period is its iterate / close event in the period; its start is the latest
#   create / iterate event of the requirement before that event (one index lookup, `event_loop_start`);
# - a visit of a closed loop is one of the loop's own events: it ends at the event's time and began at
#   its `since`, the time of the requirement's event before it;
# - a visit ending in the period ends at one of the period's events, and began at its `since`;
# - the state at an instant is each requirement's latest event before it.
# Under the log's invariants (each event leaves the stage the one before it entered, loops follow one
# another) these give the pipeline's figures exactly; tests/analytics/test_direct.py checks that they do.

_reference_only: ContextVar[bool] = ContextVar("analytics_reference_only", default=False)


@contextmanager
def reference_pipeline() -> Iterator[None]:
    """Compute every metric through the visits pipeline, on PostgreSQL too (the tests compare both)."""
    token = _reference_only.set(True)
    try:
        yield
    finally:
        _reference_only.reset(token)


def _direct_sql() -> bool:
    return connection.vendor == "postgresql" and not _reference_only.get()


def _direct(scope: Scope) -> bool:
    """Whether a metric takes its own read (PostgreSQL, calendar time) rather than the pipeline."""
    return _direct_sql() and not scope.working


def _latest_event(before: str = "") -> str:
    """SQL: a LATERAL read of requirement r's latest event (before an instant, when `before` is its
    placeholder)."""
    bound = f"AND e.at < {before}" if before else ""
    return f"""CROSS JOIN LATERAL (
        SELECT e.to_stage, e.at, e.kind, e.loop_id FROM {_t(StageEvent)} e
        WHERE e.requirement_id = r.id {bound} ORDER BY e.at DESC, e.id DESC LIMIT 1
    ) le"""


def _closed_cte(scope: Scope, *, started: bool = True, numbered: bool = True) -> tuple[str, list[Any]]:
    """closed: the loops closed in the period (requirement_id, workflow_id, loop_id, closed_at, outcome,
    and loop_no when `numbered`, started_at and cycle when `started`), read from their iterate / close
    events."""
    where, params = _scope_where(scope)
    columns, lateral = "", ""
    number, loops = "", ""
    if numbered:
        number = ", l.number AS loop_no"
        loops = f"JOIN {_t(IterationLoop)} l ON l.id = x.loop_id"
    if started:
        columns = f", s.at AS started_at, {_secs('s.at', 'x.at')} AS cycle"
        lateral = f"""CROSS JOIN LATERAL (
            SELECT b.at FROM {_t(StageEvent)} b
            WHERE b.requirement_id = x.requirement_id AND b.kind IN ('create', 'iterate')
              AND b.at <= x.at AND (b.at < x.at OR b.id < x.id)
            ORDER BY b.at DESC, b.id DESC LIMIT 1
        ) s"""
    sql = f"""
    closed AS MATERIALIZED (
        SELECT x.requirement_id, r.workflow_id, x.loop_id, x.at AS closed_at, x.kind AS outcome{number}{columns}
        FROM {_t(StageEvent)} x
        JOIN {_t(Requirement)} r ON r.id = x.requirement_id
        {loops}
        {lateral}
        WHERE x.kind IN ('iterate', 'close') AND x.at >= {_ts("")} AND x.at < {_ts("")} AND {" AND ".join(where)}
    )"""
    return sql, [_param(scope.start), _param(scope.end), *params]


def _metric_cte(scope: Scope, *, started: bool = True, numbered: bool = True) -> tuple[str, list[Any]]:
    """The common table expressions a closed-loop metric reads `closed` from: its own read on
    PostgreSQL, the pipeline elsewhere."""
    if _direct(scope):
        return _closed_cte(scope, started=started, numbered=numbered)
    return _events_cte(scope)


def _percentile_columns(value: str, n: str = "n", rn: str = "rn") -> str:
    """SQL select list: p50/p85/p95 by nearest rank, from rows ranked with rn (1-based) out of n."""
    return ", ".join(
        f"MAX(CASE WHEN {rn} = ({p} * {n} + 99) / 100 THEN {value} END) AS p{p}" for p in PERCENTILES
    )


def _run(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _rounded(value: Any) -> int | None:
    return None if value is None else round(float(value))


# ------------------------------------------------------------------------------------- working time


def _calendars(scope: Scope) -> dict[int, CalendarDef | None]:
    return {team.pk: calendar_definition(team=team) for team in scope.teams}


def _closed_visits(scope: Scope) -> list[tuple]:
    """(requirement, team, loop, stage, start, end, closed_at, outcome) of every visit of a loop closed in
    the period: what the working-time variant adds up."""
    ctes, params = _events_cte(scope)
    sql = f"""WITH {ctes}
    SELECT v.requirement_id, r.team_id, v.loop_no, v.stage, v.start_at, v.end_at, c.closed_at, c.outcome
    FROM visits v
    JOIN closed c ON c.requirement_id = v.requirement_id AND c.loop_no = v.loop_no
    JOIN {_t(Requirement)} r ON r.id = v.requirement_id
    ORDER BY c.closed_at, v.requirement_id, v.start_at"""
    rows = _run(sql, params)
    return [
        (*row[:4], _as_datetime(row[4]), _as_datetime(row[5]), _as_datetime(row[6]), row[7]) for row in rows
    ]


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _working(calendar: CalendarDef | None, start: dt.datetime, end: dt.datetime) -> float:
    if calendar is None:
        return (end - start).total_seconds()
    return working_seconds(start, end, calendar)


def _working_loops(scope: Scope) -> dict[tuple[int, int], dict[str, Any]]:
    """Closed loops with their working-time cycle and time per stage."""
    calendars = _calendars(scope)
    loops: dict[tuple[int, int], dict[str, Any]] = {}
    for requirement_id, team_id, loop_no, stage, start, end, closed_at, outcome in _closed_visits(scope):
        loop = loops.setdefault(
            (requirement_id, loop_no),
            {"closed_at": closed_at, "outcome": outcome, "cycle": 0.0, "stages": defaultdict(float)},
        )
        seconds = _working(calendars[team_id], start, end)
        loop["cycle"] += seconds
        loop["stages"][stage] += seconds
    return loops


# ------------------------------------------------------------------------------------------- metrics


def _summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values)) if values else None,
        **{f"p{p}": _rounded(percentile(values, p)) for p in PERCENTILES},
    }


def cycle_time(scope: Scope) -> dict[str, Any]:
    """p50 / p85 / p95 / mean / count of the cycle times of loops closed in the period (seconds)."""
    if scope.working:
        return _summary([loop["cycle"] for loop in _working_loops(scope).values()])
    ctes, params = _metric_cte(scope, numbered=False)
    sql = f"""WITH {ctes},
    ranked AS (
        SELECT cycle, ROW_NUMBER() OVER (ORDER BY cycle) AS rn, COUNT(*) OVER () AS n FROM closed
    )
    SELECT COUNT(*), AVG(cycle), {_percentile_columns("cycle")} FROM ranked"""
    count, mean, *pcts = _run(sql, params)[0]
    return {
        "count": count,
        "mean": _rounded(mean),
        **{f"p{p}": _rounded(value) for p, value in zip(PERCENTILES, pcts, strict=True)},
    }


def stage_order(scope: Scope) -> list[tuple[str, str]]:
    """(slug, name) of the stages in workflow order (the first team's current workflow)."""
    workflow = Workflow.objects.filter(team=scope.teams[0], is_current=True).first()
    if workflow is None:
        return []
    return list(Stage.objects.filter(workflow=workflow).order_by("order").values_list("slug", "name"))


def time_in_stage(scope: Scope) -> dict[str, Any]:
    """Per stage: p50 / p85 / p95 / total / count of the time loops closed in the period spent in it (a loop
    that never visited the stage is left out); the bottleneck is the stage with the largest total."""
    if scope.working:
        per_stage: dict[str, list[float]] = defaultdict(list)
        for loop in _working_loops(scope).values():
            for stage, seconds in loop["stages"].items():
                per_stage[stage].append(seconds)
        rows = {
            stage: {**_summary(values), "total": round(sum(values))} for stage, values in per_stage.items()
        }
    elif _direct(scope):
        rows = _time_in_stage_direct(scope)
    else:
        ctes, params = _events_cte(scope)
        sql = f"""WITH {ctes},
        tis AS (
            SELECT v.requirement_id, v.loop_no, v.stage, SUM({_secs("v.start_at", "v.end_at")}) AS secs
            FROM visits v WHERE (v.requirement_id, v.loop_no) IN (SELECT requirement_id, loop_no FROM closed)
            GROUP BY v.requirement_id, v.loop_no, v.stage
        ),
        ranked AS (
            SELECT stage, secs, ROW_NUMBER() OVER (PARTITION BY stage ORDER BY secs) AS rn,
                   COUNT(*) OVER (PARTITION BY stage) AS n
            FROM tis
        )
        SELECT stage, COUNT(*), SUM(secs), AVG(secs), {_percentile_columns("secs")} FROM ranked GROUP BY stage"""
        rows = {
            stage: {
                "count": count,
                "total": _rounded(total),
                "mean": _rounded(mean),
                **{f"p{p}": _rounded(value) for p, value in zip(PERCENTILES, pcts, strict=True)},
            }
            for stage, count, total, mean, *pcts in _run(sql, params)
        }
    order = [slug for slug, _name in stage_order(scope)]
    stages = [{"stage": slug, **rows[slug]} for slug in order if slug in rows]
    stages += [{"stage": slug, **values} for slug, values in sorted(rows.items()) if slug not in order]
    bottleneck = max(stages, key=lambda s: s["total"] or 0)["stage"] if stages else None
    return {"stages": stages, "bottleneck": bottleneck}


def _time_in_stage_direct(scope: Scope) -> dict[str, dict[str, Any]]:
    """time_in_stage's figures per stage on PostgreSQL. Each event of a loop closed in the period ends a
    visit that began at its `since` (the event before it), so a loop's time in a stage is the sum over its
    events leaving that stage: per loop, one read of the covering index event_loop_stage, already in
    stage order. Summed in whole microseconds, so the figures are exact."""
    ctes, params = _closed_cte(scope, started=False, numbered=False)
    spent = "ROUND(DATE_PART('epoch', e.at - e.since) * 1000000)::BIGINT"
    sql = f"""WITH {ctes},
    tis AS (
        SELECT v.stage, v.us FROM closed c CROSS JOIN LATERAL (
            SELECT e.from_stage AS stage, SUM({spent}) AS us FROM {_t(StageEvent)} e
            WHERE e.loop_id = c.loop_id AND e.kind <> 'create' GROUP BY e.from_stage
        ) v
    )
    SELECT stage, COUNT(*), SUM(us) / 1000000.0, AVG(us) / 1000000.0,
           PERCENTILE_DISC(ARRAY[{", ".join(str(p / 100) for p in PERCENTILES)}]) WITHIN GROUP (ORDER BY us)
    FROM tis GROUP BY stage"""
    return {
        stage: {
            "count": count,
            "total": _rounded(total),
            "mean": _rounded(mean),
            **{f"p{p}": _rounded(value / 1_000_000) for p, value in zip(PERCENTILES, pcts, strict=True)},
        }
        for stage, count, total, mean, pcts in _run(sql, params)
    }


def rolling_window(points: int) -> int:
    """METRICS.md: 20 % of the points shown, made odd, at least 5."""
    size = max(round(points * 0.2), 5)
    return size if size % 2 else size + 1


# A control chart point, in this order: the requirement's key, the loop's number, its close time, its
# cycle time and outcome, and the rolling average around it.
POINT_FIELDS = ("key", "loop", "closed_at", "cycle", "outcome", "rolling_average")


def control_chart_points(scope: Scope) -> tuple[list[tuple], int]:
    """The control chart's points as tuples (POINT_FIELDS), oldest close first, and the rolling window.
    Tuples, because a chart over every team holds ~80,000 points; control_chart() makes them dicts."""
    if scope.working:
        loops = _working_loops(scope)
        keys = dict(Requirement.objects.filter(pk__in={rid for rid, _n in loops}).values_list("pk", "key"))
        ordered = sorted(loops.items(), key=lambda item: (item[1]["closed_at"], item[0]))
        cycles = [round(loop["cycle"]) for _key, loop in ordered]
        window = rolling_window(len(ordered))
        half = window // 2
        points = []
        for i, ((rid, loop_no), loop) in enumerate(ordered):
            around = cycles[max(i - half, 0) : i + half + 1]
            points.append(
                (
                    keys[rid],
                    loop_no,
                    loop["closed_at"],
                    cycles[i],
                    loop["outcome"],
                    round(sum(around) / len(around)),
                )
            )
        return points, window
    ctes, params = _metric_cte(scope)
    sql = f"""WITH {ctes}
    SELECT r.key, c.loop_no, {_epoch("c.closed_at")}, c.cycle, c.outcome
    FROM closed c JOIN {_t(Requirement)} r ON r.id = c.requirement_id
    ORDER BY c.closed_at, c.requirement_id, c.loop_no"""
    rows = _run(sql, params)
    window = rolling_window(len(rows))
    half = window // 2
    # The centred rolling average from running sums of the exact cycle times (one pass, no re-query for
    # the count the window depends on).
    sums = [0, *itertools.accumulate(row[3] for row in rows)]
    # Each row becomes its point in place: over every team there are ~80,000, and a second list of them
    # would double what a web worker holds.
    for i, (key, loop_no, epoch, cycle, outcome) in enumerate(rows):
        low, high = max(i - half, 0), min(i + half + 1, len(rows))
        rows[i] = (
            key,
            loop_no,
            dt.datetime.fromtimestamp(round(float(epoch), 3), tz=dt.UTC),
            round(float(cycle)),
            outcome,
            round(float((sums[high] - sums[low]) / (high - low))),
        )
    return rows, window


def control_chart(scope: Scope) -> dict[str, Any]:
    """One point per loop closed in the period (x = close time, y = cycle time), the p50 and p85 lines, and
    a rolling average centred on each point over rolling_window(n) points, cut at the ends."""
    points, window = control_chart_points(scope)
    cycles = [point[3] for point in points]
    return {
        "points": [dict(zip(POINT_FIELDS, point, strict=True)) for point in points],
        "p50": percentile(cycles, 50),
        "p85": percentile(cycles, 85),
        "window": window,
    }


def _days(scope: Scope) -> list[tuple[dt.date, dt.datetime]]:
    """Each day of the period in the team's time zone, with the instant it ends."""
    zone = scope.zone
    first = scope.start.astimezone(zone).date()
    last = (scope.end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    days = []
    day = first
    while day <= last:
        days.append((day, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)))
        day += dt.timedelta(days=1)
    return days


def _values_table(name: str, columns: str, rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    placeholders = ", ".join(
        "(" + ", ".join("%s" if not isinstance(v, dt.datetime) else _ts("") for v in row) + ")"
        for row in rows
    )
    params = [_param(v) if isinstance(v, dt.datetime) else v for row in rows for v in row]
    return f"{name}({columns}) AS (VALUES {placeholders})", params


def cumulative_flow(scope: Scope) -> dict[str, Any]:
    """For each day of the period, at the end of that day: the open loops in each stage, and the loops
    closed since the period began."""
    days = _days(scope)
    if not days:
        return {"days": [], "stages": [], "closed": []}
    window = [_param(scope.start), _param(days[-1][1])]
    if _direct(scope):
        sql, params = _cumulative_flow_direct(scope, days[0][0], window)
    else:
        sql, params = _cumulative_flow_pipeline(scope, days, window)
    moves: dict[str, list[int]] = defaultdict(lambda: [0] * (len(days) + 1))
    for stage, i, n in _run(sql, params):
        moves[stage][int(i) + 1] += int(n)
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for stage, changes in moves.items():
        running = list(itertools.accumulate(changes))[1:]
        if stage == "" or any(running):
            counts[stage] = running
    closed = counts.pop("", [0] * len(days))
    order = [slug for slug, _name in stage_order(scope)]
    order += sorted(slug for slug in counts if slug not in order)
    return {
        "days": [day.isoformat() for day, _end in days],
        "stages": [{"stage": slug, "open": counts[slug]} for slug in order],
        "closed": closed,
    }


def _cumulative_flow_pipeline(
    scope: Scope, days: list[tuple[dt.date, dt.datetime]], window: list[Any]
) -> tuple[str, list[Any]]:
    """cumulative_flow's (stage, day, change) rows through the visits pipeline (day -1: open at the start)."""
    ctes, params = _events_cte(scope)
    table, table_params = _values_table("days", "t", [(end,) for _d, end in days])
    # Open in S at the end of day i (instant t_i) = visits to S open at the period's start, plus those that
    # entered S in [start, t_i), minus those that left it in [start, t_i); loops closed likewise. Each move
    # is put on the first day whose end is past it (a running count of day ends over one sorted stream);
    # moves are summed per stage and day here, and run up per day in Python.
    begin, last = _ts(""), _ts("")
    sql = f"""WITH {ctes}, {table},
    moves AS (
        SELECT stage, start_at AS at, 1 AS delta FROM visits WHERE start_at >= {begin} AND start_at < {last}
        UNION ALL
        SELECT stage, end_at, -1 FROM visits WHERE end_at >= {begin} AND end_at < {last}
        UNION ALL
        SELECT '', at, 1 FROM ev WHERE kind IN ('iterate', 'close') AND at >= {begin} AND at < {last}
    ),
    stream AS (
        SELECT stage, at, delta, 0 AS mark FROM moves
        UNION ALL
        SELECT '', t, 0, 1 FROM days
    ),
    binned AS (
        SELECT stage, delta, mark, SUM(mark) OVER (ORDER BY at, mark DESC ROWS UNBOUNDED PRECEDING) AS i
        FROM stream
    )
    SELECT stage, i, SUM(delta) FROM binned WHERE mark = 0 GROUP BY stage, i
    UNION ALL
    SELECT stage, -1, COUNT(*) FROM visits
    WHERE start_at < {begin} AND (end_at IS NULL OR end_at >= {begin}) GROUP BY stage"""
    return sql, [*params, *table_params, *window * 3, window[0], window[0]]


def _cumulative_flow_direct(scope: Scope, first: dt.date, window: list[Any]) -> tuple[str, list[Any]]:
    """cumulative_flow's (stage, day, change) rows on PostgreSQL, from the events of the period alone:
    each enters its `to_stage` and leaves its `from_stage` on its day in the team's time zone (an iterate
    or close also counts a closed loop, under stage ""); the loops open at the start are each scoped
    requirement's latest event before it, unless that is a close (day -1)."""
    where, where_params = _scope_where(scope)
    conditions = " AND ".join(where)
    sql = f"""WITH moves AS (
        SELECT p.stage, CAST(x.at AT TIME ZONE %s AS DATE) - CAST(%s AS DATE) AS i, p.delta
        FROM {_t(StageEvent)} x
        JOIN {_t(Requirement)} r ON r.id = x.requirement_id
        CROSS JOIN LATERAL (VALUES
            (x.to_stage, 1, x.to_stage <> ''),
            (x.from_stage, -1, x.from_stage <> ''),
            ('', 1, x.kind IN ('iterate', 'close'))
        ) p(stage, delta, counts)
        WHERE x.at >= {_ts("")} AND x.at < {_ts("")} AND {conditions} AND p.counts
    )
    SELECT stage, i, SUM(delta) FROM moves GROUP BY stage, i
    UNION ALL
    SELECT le.to_stage, -1, COUNT(*) FROM {_t(Requirement)} r
    {_latest_event(_ts(""))}
    WHERE le.kind <> 'close' AND {conditions}
    GROUP BY le.to_stage"""
    params = [scope.zone.key, first, *window, *where_params, window[0], *where_params]
    return sql, params


def _weeks(scope: Scope) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """ISO weeks overlapping the period, in the team's time zone: (label, start, end)."""
    zone = scope.zone
    first = scope.start.astimezone(zone).date()
    monday = first - dt.timedelta(days=first.weekday())
    weeks = []
    while True:
        start = dt.datetime.combine(monday, dt.time(0), zone)
        if start >= scope.end:
            break
        end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(0), zone)
        year, week, _day = monday.isocalendar()
        weeks.append((f"{year}-W{week:02d}", start, end))
        monday += dt.timedelta(days=7)
    return weeks


def throughput(scope: Scope) -> dict[str, Any]:
    """Loops closed per ISO week (team time zone), split by outcome iterate / close."""
    weeks = _weeks(scope)
    if not weeks:
        return {"weeks": []}
    ctes, params = _metric_cte(scope, started=False, numbered=False)
    table, table_params = _values_table("weeks", "i, s, e", [(i, s, e) for i, (_l, s, e) in enumerate(weeks)])
    sql = f"""WITH {ctes}, {table}
    SELECT w.i, c.outcome, COUNT(*) FROM weeks w JOIN closed c ON c.closed_at >= w.s AND c.closed_at < w.e
    GROUP BY w.i, c.outcome"""
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"iterate": 0, "close": 0})
    for i, outcome, n in _run(sql, [*params, *table_params]):
        counts[int(i)][outcome] = int(n)
    return {
        "weeks": [
            {"week": label, "start": start.date().isoformat(), **counts[i], "total": sum(counts[i].values())}
            for i, (label, start, _end) in enumerate(weeks)
        ]
    }


def wip(scope: Scope, *, limit: int = 200, p85: float | None = None) -> dict[str, Any]:
    """Open loops per stage now, and the oldest open loops with their age (now − loop start) and time in
    their current stage, flagged when the age passes the period's p85 cycle time."""
    now = scope.clock
    # The period's p85 cycle time comes along in the same statement (the pipeline runs once) unless the
    # caller already has it, or the working-time variant needs it from the calendar.
    in_sql = p85 is None and not scope.working
    p85_column = (
        """(SELECT MAX(CASE WHEN rn = (85 * n + 99) / 100 THEN cycle END) FROM (
            SELECT cycle, ROW_NUMBER() OVER (ORDER BY cycle) AS rn, COUNT(*) OVER () AS n FROM closed
        ) ranked)"""
        if in_sql
        else "NULL"
    )
    if _direct_sql():
        # Each scoped requirement's latest event: unless it is a close, the loop's current visit; the
        # loop began at the requirement's latest create / iterate.
        where, where_params = _scope_where(scope)
        ctes, params = _closed_cte(scope, numbered=False) if in_sql else ("", [])
        sql = f"""{"WITH " + ctes if ctes else ""}
        SELECT r.key, r.title, le.to_stage, l.number + CASE WHEN le.kind = 'iterate' THEN 1 ELSE 0 END,
               {_epoch("s.at")}, {_epoch("le.at")}, {p85_column}
        FROM {_t(Requirement)} r
        {_latest_event()}
        JOIN {_t(IterationLoop)} l ON l.id = le.loop_id
        CROSS JOIN LATERAL (
            SELECT MAX(b.at) AS at FROM {_t(StageEvent)} b
            WHERE b.requirement_id = r.id AND b.kind IN ('create', 'iterate')
        ) s
        WHERE le.kind <> 'close' AND {" AND ".join(where)}
        ORDER BY s.at, r.id"""
        params += where_params
    else:
        ctes, params = _events_cte(scope)
        sql = f"""WITH {ctes}
        SELECT r.key, r.title, v.stage, v.loop_no, {_epoch("s.started_at")}, {_epoch("v.start_at")}, {p85_column}
        FROM visits v
        JOIN loop_start s ON s.requirement_id = v.requirement_id AND s.loop_no = v.loop_no
        JOIN {_t(Requirement)} r ON r.id = v.requirement_id
        WHERE v.end_at IS NULL
        ORDER BY s.started_at, r.id"""
    rows = _run(sql, params)
    if in_sql and rows:
        p85 = _rounded(rows[0][6])
    elif p85 is None:  # no open loop to carry it, or working time: ask for it
        p85 = cycle_time(scope)["p85"]
    calendars = _calendars(scope) if scope.working else {}
    team_of = (
        dict(Requirement.objects.filter(key__in=[row[0] for row in rows]).values_list("key", "team_id"))
        if scope.working
        else {}
    )
    items: list[dict[str, Any]] = []
    per_stage: dict[str, int] = defaultdict(int)
    for key, title, stage, loop_no, started, entered, _p85 in rows:
        started_at = dt.datetime.fromtimestamp(float(started), tz=dt.UTC)
        entered_at = dt.datetime.fromtimestamp(float(entered), tz=dt.UTC)
        per_stage[stage] += 1
        if len(items) >= limit:
            continue
        calendar = calendars.get(team_of.get(key, 0)) if scope.working else None
        age = _working(calendar, started_at, now) if scope.working else (now - started_at).total_seconds()
        in_stage = (
            _working(calendar, entered_at, now) if scope.working else (now - entered_at).total_seconds()
        )
        items.append(
            {
                "key": key,
                "title": title,
                "stage": stage,
                "loop": loop_no,
                "started_at": started_at,
                "age": round(age),
                "in_stage": round(in_stage),
                "over_p85": p85 is not None and age > p85,
            }
        )
    order = [slug for slug, _name in stage_order(scope)]
    order += sorted(slug for slug in per_stage if slug not in order)
    return {
        "stages": [{"stage": slug, "open": per_stage.get(slug, 0)} for slug in order],
        "total": len(rows),
        "p85": p85,
        "items": items,
    }


def sla(scope: Scope) -> dict[str, Any]:
    """Per stage: visits that ended in the period, how many lasted longer than the stage's SLA, the rate."""
    if scope.working:
        ctes, params = _events_cte(scope)
        sql = f"""WITH {ctes}
        SELECT v.stage, r.team_id, v.start_at, v.end_at, st.sla_hours
        FROM visits v
        JOIN {_t(Requirement)} r ON r.id = v.requirement_id
        JOIN {_t(Stage)} st ON st.workflow_id = v.workflow_id AND st.slug = v.stage
        WHERE v.end_at >= {_ts("")} AND v.end_at < {_ts("")}"""
        calendars = _calendars(scope)
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for stage, team_id, start, end, hours in _run(sql, [*params, _param(scope.start), _param(scope.end)]):
            seconds = _working(calendars[team_id], _as_datetime(start), _as_datetime(end))
            tally[stage][0] += 1
            tally[stage][1] += int(hours is not None and seconds > hours * 3600)
        rows = [(stage, ended, breached) for stage, (ended, breached) in tally.items()]
    elif _direct(scope):
        # Each event of the period ends the visit to the stage it leaves, begun at its `since` (the
        # requirement's event just before it).
        where, where_params = _scope_where(scope)
        sql = f"""SELECT y.from_stage, COUNT(*),
               SUM(CASE WHEN st.sla_hours IS NOT NULL
                         AND y.at - y.since > st.sla_hours * INTERVAL '1 hour' THEN 1 ELSE 0 END)
        FROM {_t(StageEvent)} y
        JOIN {_t(Requirement)} r ON r.id = y.requirement_id
        JOIN {_t(Stage)} st ON st.workflow_id = r.workflow_id AND st.slug = y.from_stage
        WHERE y.kind <> 'create' AND y.at >= {_ts("")} AND y.at < {_ts("")} AND {" AND ".join(where)}
        GROUP BY y.from_stage"""
        rows = _run(sql, [_param(scope.start), _param(scope.end), *where_params])
    else:
        ctes, params = _events_cte(scope)
        sql = f"""WITH {ctes}
        SELECT v.stage, COUNT(*),
               SUM(CASE WHEN st.sla_hours IS NOT NULL
                         AND {_secs("v.start_at", "v.end_at")} > st.sla_hours * 3600 THEN 1 ELSE 0 END)
        FROM visits v
        JOIN {_t(Stage)} st ON st.workflow_id = v.workflow_id AND st.slug = v.stage
        WHERE v.end_at >= {_ts("")} AND v.end_at < {_ts("")}
        GROUP BY v.stage"""
        rows = _run(sql, [*params, _param(scope.start), _param(scope.end)])
    by_stage = {stage: (int(ended), int(breached or 0)) for stage, ended, breached in rows}
    order = [slug for slug, _name in stage_order(scope)]
    order += sorted(slug for slug in by_stage if slug not in order)
    return {
        "stages": [
            {
                "stage": slug,
                "visits": by_stage[slug][0],
                "breached": by_stage[slug][1],
                "rate": by_stage[slug][1] / by_stage[slug][0] if by_stage[slug][0] else None,
            }
            for slug in order
            if slug in by_stage
        ]
    }


def rework(scope: Scope) -> dict[str, Any]:
    """Backward transitions in the period per stage they left, and the share of loops closed in the period
    with at least one backward transition."""

    def backward(workflow: str) -> str:
        return f"""(x.kind = 'rework' OR (x.kind = 'override' AND EXISTS (
            SELECT 1 FROM {_t(Stage)} sf JOIN {_t(Stage)} st ON st.workflow_id = sf.workflow_id
            WHERE sf.workflow_id = {workflow} AND sf.slug = x.from_stage AND st.slug = x.to_stage
              AND st."order" < sf."order")))"""

    window = [_param(scope.start), _param(scope.end)]
    if _direct(scope):
        # The period's backward events, and for each loop closed in it whether its own events hold one.
        ctes, params = _closed_cte(scope, started=False, numbered=False)
        where, where_params = _scope_where(scope)
        sql = f"""WITH {ctes}
        SELECT 'stage', x.from_stage, COUNT(*) FROM {_t(StageEvent)} x
        JOIN {_t(Requirement)} r ON r.id = x.requirement_id
        WHERE x.at >= {_ts("")} AND x.at < {_ts("")} AND {backward("r.workflow_id")} AND {" AND ".join(where)}
        GROUP BY x.from_stage
        UNION ALL
        SELECT 'loops', '', COUNT(*) FROM closed
        UNION ALL
        SELECT 'reworked', '', COUNT(*) FROM closed c
        CROSS JOIN LATERAL (
            SELECT 1 FROM {_t(StageEvent)} x WHERE x.loop_id = c.loop_id AND {backward("c.workflow_id")} LIMIT 1
        ) w"""
        params += [*window, *where_params]
    else:
        # One statement, so the pipeline runs once: backward moves in the period per stage left, then the
        # closed loops and those of them with a backward move.
        ctes, params = _events_cte(scope)
        sql = f"""WITH {ctes},
        reworked AS (SELECT DISTINCT x.requirement_id, x.loop_no FROM ev x WHERE {backward("x.workflow_id")})
        SELECT 'stage', x.from_stage, COUNT(*) FROM ev x
        WHERE {backward("x.workflow_id")} AND x.at >= {_ts("")} AND x.at < {_ts("")}
        GROUP BY x.from_stage
        UNION ALL
        SELECT 'loops', '', COUNT(*) FROM closed
        UNION ALL
        SELECT 'reworked', '', COUNT(*) FROM closed c
        JOIN reworked w ON w.requirement_id = c.requirement_id AND w.loop_no = c.loop_no"""
        params += window
    per_stage: dict[str, int] = {}
    totals = {"loops": 0, "reworked": 0}
    for part, stage, n in _run(sql, params):
        if part == "stage":
            per_stage[stage] = int(n)
        else:
            totals[part] = int(n)
    loops, with_rework = totals["loops"], totals["reworked"]
    order = [slug for slug, _name in stage_order(scope)]
    order += sorted(slug for slug in per_stage if slug not in order)
    return {
        "stages": [{"stage": slug, "backward": per_stage.get(slug, 0)} for slug in order],
        "closed_loops": int(loops),
        "loops_with_rework": int(with_rework or 0),
        "share": int(with_rework or 0) / int(loops) if loops else None,
    }


def loops_per_requirement(scope: Scope) -> dict[str, Any]:
    """How many loops the requirements closed in the period took: loops → number of requirements."""
    ctes, params = _metric_cte(scope, started=False)
    sql = f"""WITH {ctes}
    SELECT loop_no, COUNT(*) FROM closed WHERE outcome = 'close' GROUP BY loop_no ORDER BY loop_no"""
    rows = [(int(loops), int(n)) for loops, n in _run(sql, params)]
    total = sum(n for _loops, n in rows)
    return {
        "distribution": [{"loops": loops, "requirements": n} for loops, n in rows],
        "requirements": total,
        "mean": round(sum(loops * n for loops, n in rows) / total, 2) if total else None,
    }
