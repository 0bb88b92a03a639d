"""The load data set of issue #8, which `manage.py generate_load` builds and the benchmark (bench/run.py)
measures over: teams L01, L02 … with a member in every role, two years of history, metrics with daily
observations, and metric watches.

Teams and memberships are made through the services (so every team has its current default workflow,
its calendar and its metric catalogue); the bulk of the rows — requirements, loops, stage events,
tracking plans, observations — is written directly, with COPY on PostgreSQL, keeping what the services
keep (as history/services.py does for an import):

- numbers and keys dense and unique per team, numbered in the order the requirements were created;
- loop 1 starts at the create event and loop n+1 at the iterate out of loop n; closed loops carry their
  close time and outcome; only a requirement's last loop may be open, and it is open exactly when the
  requirement is;
- each requirement's events in time order, every `from` the stage the event before went `to`, each made
  by a member holding a role the default workflow allows for the move;
- the requirement's stage, loop, stage entry, close time, outcome and SLA fields agree with its last
  event, as requirement_transition and reminders.set_sla set them (a close keeps the stage it closed
  from, and clears the SLA fields);
- every move passed its guard: the requirement has what leaving propose and design asks, a loop that
  left instrument has a launch date and a verified tracking plan, a loop that left analyze a conclusion
  and a verdict; and every open requirement already has what its next forward move asks for, so the
  benchmark can make real moves.

Everything is one transaction: a run that fails leaves nothing behind. The same seed and `now` give the
same data set."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
import time
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from django.db.models.deletion import ProtectedError
from django.utils import timezone
from django.utils.translation import gettext as _

from dataloop.models import Goal, Metric, MetricWatch, Observation, Source
from dataloop.presets import WATCH_PRESETS
from roles import services as role_services
from roles.models import Membership, Role, Team
from workflows import services as workflow_services
from workflows.defaults import DEFAULT_STAGES, DEFAULT_TRANSITIONS
from workflows.models import (
    AarrrStage,
    EventKind,
    IncidentKind,
    IterationLoop,
    Label,
    LoopOutcome,
    Outcome,
    Priority,
    Requirement,
    Stage,
    StageEvent,
    StageReminder,
    TrackingEvent,
    TrackingStatus,
    Verdict,
    WorkType,
)
from workflows.reminders import sla_deadlines
from workflows.selectors import workflow_current
from worktime.selectors import calendar_definition

# ----------------------------------------------------------------------------------------------- sizes

REFERENCE_TEAMS = 20
REFERENCE_REQUIREMENTS = 100_000
QUICK_TEAMS = 2
QUICK_REQUIREMENTS = 1_000
MAX_TEAMS = 99  # key prefixes L01 … L99
OPEN_PER_TEAM = 300
OPEN_SHARE_LIMIT = 0.3  # a small team keeps at most this share of its requirements open
LOOPS_PER_REQUIREMENT = 2.5
HISTORY = dt.timedelta(days=730)

# ------------------------------------------------------------------------------------------- the team

BENCH_USERNAME = "bench"
OPS, PM, ENGINEER, ANALYST, LEAD = (
    role.value for role in (Role.OPS, Role.PM, Role.ENGINEER, Role.ANALYST, Role.LEAD)
)
MEMBER_ROLES = (OPS, PM, ENGINEER, ANALYST, LEAD)
LABELS = ("campaign", "onboarding", "payments", "search", "community")

# ------------------------------------------------------------------------ the default workflow, as data

# Rows carry plain strings: COPY must not see enum members.
CREATE, FORWARD, REWORK, ITERATE, CLOSE = (
    kind.value
    for kind in (EventKind.CREATE, EventKind.FORWARD, EventKind.REWORK, EventKind.ITERATE, EventKind.CLOSE)
)
STAGES: tuple[str, ...] = tuple(slug for slug, _name, _owners, _sla in DEFAULT_STAGES)
FIRST, LAST = STAGES[0], STAGES[-1]
STAGE_OWNERS: dict[str, tuple[str, ...]] = {slug: tuple(owners) for slug, _n, owners, _s in DEFAULT_STAGES}
REWORK_TO: dict[str, str] = {
    from_stage: to_stage
    for from_stage, to_stage, kind, _roles, _fields in DEFAULT_TRANSITIONS
    if kind == REWORK and to_stage
}
# Who may make each (from stage, kind) move of the default workflow.
MOVERS: dict[tuple[str, str], tuple[str, ...]] = {
    (from_stage, kind): tuple(roles) for from_stage, _to, kind, roles, _fields in DEFAULT_TRANSITIONS
}

# ------------------------------------------------------------------------------------- distributions

# Loops per requirement: many take one to three, a tail goes round eight times or more. The counts
# are then nudged so a team has exactly LOOPS_PER_REQUIREMENT loops per requirement.
LOOP_WEIGHTS: dict[int, float] = {
    1: 0.36,
    2: 0.27,
    3: 0.15,
    4: 0.09,
    5: 0.05,
    6: 0.03,
    7: 0.02,
    8: 0.015,
    9: 0.008,
    10: 0.004,
    11: 0.002,
    12: 0.001,
}
REWORK_CHANCE = 0.12  # per forward move into a stage that can send the work back
EARLY_CLOSE_SHARE = 0.2  # of closed requirements, declined (won't do) by the lead in propose or design
WONT_DO_SHARE = 0.15  # of requirements closed at the end of a whole loop
# A stage visit lasts its SLA times a log-normal factor (median 0.4: about one visit in eight overruns),
# and now and then three to six times longer still: the long tail.
VISIT_MEDIAN = 0.4
VISIT_SIGMA = 0.8
LONG_VISIT_CHANCE = 0.03
LONG_VISIT_FACTOR = (3.0, 6.0)
NO_SLA_HOURS = 48  # the yardstick for a stage without an SLA
# Where the open requirements of a team wait, and how late they are.
OPEN_STAGE_SHARES: dict[str, float] = {
    "propose": 0.15,
    "design": 0.20,
    "build": 0.25,
    "instrument": 0.12,
    "analyze": 0.15,
    "optimize": 0.13,
}
ON_TIME, OVERDUE, ESCALATED = "on time", "overdue", "escalated"
LATENESS_SHARES: dict[str, float] = {ON_TIME: 0.60, OVERDUE: 0.25, ESCALATED: 0.15}
# The time already spent in the current stage, as a multiple of its SLA.
LATENESS_FACTOR: dict[str, tuple[float, float]] = {
    ON_TIME: (0.05, 0.95),
    OVERDUE: (1.05, 1.95),
    ESCALATED: (2.1, 4.0),
}

# ------------------------------------------------------------------------------------------ the words

ACTIONS = ("Lift", "Fix", "Test", "Simplify", "Personalise", "Relaunch", "Speed up", "Localise")
SUBJECTS = (
    "new-user first order",
    "day-2 red packet",
    "checkout coupon flow",
    "search result ranking",
    "push reminder timing",
    "referral reward",
    "merchant onboarding",
    "community check-in streak",
    "membership renewal page",
    "live-stream gift panel",
)
TARGET_METRICS = ("D1 retention", "D7 retention", "Conversion rate", "ARPU", "DAU", "Complaint rate")
IMPROVED, FLAT, WORSE = (verdict.value for verdict in (Verdict.IMPROVED, Verdict.FLAT, Verdict.WORSE))
VERDICT_WEIGHTS = (0.45, 0.35, 0.20)
CONCLUSIONS: dict[str, str] = {
    IMPROVED: "The target metric moved beyond its usual weekly swing; keep it and widen the test.",
    FLAT: "No change beyond noise; the hypothesis does not hold as tested.",
    WORSE: "The metric fell after launch; roll back and rethink the offer.",
}
TRACKING_EVENTS = (
    ("page_view", "When the page is shown.", ["page", "source"]),
    ("button_click", "When the user taps the call to action.", ["button", "position"]),
    ("order_submit", "When the user submits the order.", ["order_id", "amount", "coupon"]),
)

# (start value, end value, weekend swing, noise) of each default metric over the two years: a straight
# trend, lower or higher at the weekend, plus bounded noise. The bounds keep the watches below from
# firing, so evaluating them reads the series and leaves the data set as it was.
METRIC_SERIES: dict[str, tuple[float, float, float, float]] = {
    "DAU": (48_000, 61_000, -5_000, 1_500),
    "MAU": (380_000, 450_000, 0, 3_000),
    "DAU/MAU": (12.5, 13.5, -1.0, 0.4),
    "D1 retention": (38, 41, -1.5, 1.0),
    "D7 retention": (30, 32, -0.5, 0.8),
    "D30 retention": (14, 16, 0, 0.6),
    "Conversion rate": (2.8, 3.4, 0.3, 0.2),
    "ARPU": (11.5, 13.0, 1.0, 0.5),
    "LTV": (140, 165, 0, 2.0),
    "Complaint rate": (2.2, 1.6, 0.3, 0.5),
    "NPS": (28, 34, 0, 3.0),
    "Churn rate": (9.0, 6.0, 0, 0.04),
}
WEEKEND_SHAPE = (0.0, 0.0, 0.0, 0.0, 0.3, 1.0, 1.0)  # Monday … Sunday
# Watches beside the presets: (name, metric, comparison, threshold, periods, title, active).
EXTRA_WATCHES = (
    ("DAU below 20,000 for 2 days", "DAU", "lt", Decimal(20_000), 2, "DAU collapsed: find out why", True),
    ("Conversion below 1.5%", "Conversion rate", "lt", Decimal("1.5"), 1, "Conversion fell below 1.5%", True),
    ("NPS below 10 (paused)", "NPS", "lt", Decimal(10), 1, "NPS fell below 10", False),
)

# ------------------------------------------------------------------------------------ what is written

REQUIREMENT_FIELDS = (
    "id",
    "team_id",
    "workflow_id",
    "number",
    "key",
    "title",
    "description",
    "hypothesis",
    "target_metric",
    "aarrr_stage",
    "priority",
    "incident_kind",
    "work_type",
    "assignee_id",
    "due_date",
    "launch_date",
    "design",
    "stage_id",
    "loop_number",
    "stage_entered_at",
    "created_by_id",
    "created_at",
    "updated_at",
    "closed_at",
    "outcome",
    "sla_due_at",
    "sla_escalate_at",
    "sla_next_at",
)
LOOP_FIELDS = (
    "id",
    "requirement_id",
    "number",
    "started_at",
    "closed_at",
    "outcome",
    "conclusion",
    "verdict",
    "core_metric_moved",
    "behaviour_moved",
    "feedback_positive",
    "analyzed_by_id",
    "analyzed_at",
)
EVENT_FIELDS = ("requirement_id", "loop_id", "from_stage", "to_stage", "kind", "actor_id", "at", "since")
TRACKING_FIELDS = (
    "loop_id",
    "name",
    "trigger",
    "properties",
    "owner_id",
    "status",
    "status_changed_by_id",
    "status_changed_at",
    "created_at",
)
OBSERVATION_FIELDS = ("metric_id", "date", "value", "source", "recorded_by_id", "recorded_at")
LABEL_LINK_FIELDS = ("requirement_id", "label_id")
SQLITE_BATCH = 2_000


class LoadRefused(Exception):
    """The command cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Size:
    teams: int
    requirements: int

    def per_team(self, index: int) -> int:
        """Requirements of team `index` (0-based): an even split, the first teams taking the remainder."""
        base, extra = divmod(self.requirements, self.teams)
        return base + (1 if index < extra else 0)

    @staticmethod
    def open_for(requirements: int) -> int:
        return min(OPEN_PER_TEAM, math.floor(OPEN_SHARE_LIMIT * requirements))


def size_for(*, teams: int | None, requirements: int | None, quick: bool) -> Size:
    size = Size(
        teams=teams if teams is not None else (QUICK_TEAMS if quick else REFERENCE_TEAMS),
        requirements=(
            requirements
            if requirements is not None
            else (QUICK_REQUIREMENTS if quick else REFERENCE_REQUIREMENTS)
        ),
    )
    if not 1 <= size.teams <= MAX_TEAMS:
        raise LoadRefused(f"--teams must be from 1 to {MAX_TEAMS} (key prefixes L01 … L{MAX_TEAMS}).")
    if size.requirements < size.teams:
        raise LoadRefused("--requirements must be at least --teams: every team gets a share.")
    return size


def prefix_for(index: int) -> str:
    return f"L{index + 1:02d}"


def team_name_for(prefix: str) -> str:
    return f"Load team {prefix[1:]}"


def username_for(prefix: str, role: str) -> str:
    return f"{prefix.lower()}-{role}"


@dataclass
class Totals:
    teams: int = 0
    users: int = 0
    requirements: int = 0
    open_requirements: int = 0
    overdue: int = 0
    escalated: int = 0
    loops: int = 0
    open_loops: int = 0
    events: int = 0
    rework_events: int = 0
    tracking_events: int = 0
    observations: int = 0
    watches: int = 0

    @property
    def closed_loops(self) -> int:
        return self.loops - self.open_loops

    def add(self, other: Totals) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


# ------------------------------------------------------------------------------------------- writing


class _Writer:
    """Writes rows (tuples in the order of the fields named) into a model's table: COPY on PostgreSQL,
    batched INSERTs elsewhere. Columns not named get their field's default, so a field added later with
    a default needs no change here. `ids` hands out primary keys for rows that others will refer to."""

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"

    def ids(self, model: type[models.Model], count: int) -> list[int]:
        if count == 0:
            return []
        table = model._meta.db_table
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [table, count],
                )
                return [row[0] for row in cursor.fetchall()]
            # Other databases: the caller's transaction holds the write lock (SQLite takes it at BEGIN
            # IMMEDIATE), so nobody else takes these numbers meanwhile.
            cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            highest = cursor.fetchone()[0] or 0
        return list(range(highest + 1, highest + 1 + count))

    def write(self, model: type[models.Model], names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        opts = model._meta
        by_attname = {f.attname: f for f in opts.concrete_fields}
        named = [by_attname[name] for name in names]
        now = timezone.now()
        rest = [f for f in opts.concrete_fields if f.attname not in names and not f.primary_key]
        rest_values = tuple(
            now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
            for f in rest
        )
        columns = [*named, *rest]
        qn = connection.ops.quote_name
        column_list = ", ".join(qn(f.column) for f in columns)
        if self.postgres:
            return self._copy(opts.db_table, column_list, columns, rows, rest_values)
        placeholders = ", ".join(["%s"] * len(columns))
        statement = f"INSERT INTO {qn(opts.db_table)} ({column_list}) VALUES ({placeholders})"  # noqa: S608
        written = 0
        with connection.cursor() as cursor:
            pending = iter(rows)
            while batch := list(itertools.islice(pending, SQLITE_BATCH)):
                cursor.executemany(
                    statement,
                    [
                        [
                            f.get_db_prep_save(value, connection)
                            for f, value in zip(columns, row + rest_values, strict=True)
                        ]
                        for row in batch
                    ],
                )
                written += len(batch)
        return written

    @staticmethod
    def _copy(
        table: str,
        column_list: str,
        columns: Sequence[models.Field],
        rows: Iterable[tuple[Any, ...]],
        rest_values: tuple[Any, ...],
    ) -> int:
        json_at = [i for i, f in enumerate(columns) if isinstance(f, models.JSONField)]
        written = 0
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {connection.ops.quote_name(table)} ({column_list}) FROM STDIN") as copy,
        ):
            for row in rows:
                values = row + rest_values
                if json_at:
                    values = tuple(json.dumps(v) if i in json_at else v for i, v in enumerate(values))
                copy.write_row(values)
                written += 1
        return written


# -------------------------------------------------------------------------------------- one history


@dataclass(slots=True)
class _Story:
    """One requirement's history before it is placed in time: moves as (loop, from, to, kind, role,
    seconds after creation). Open requirements have `open_stage` and `lateness`; closed ones an outcome."""

    moves: list[tuple[int, str, str, str, str, int]]
    loops: int
    open_stage: str
    lateness: str
    outcome: str
    created: dt.datetime | None = None


def _exact_counts(total: int, shares: dict[Any, float]) -> dict[Any, int]:
    """`total` split by `shares` into whole numbers that add up to it (largest remainders)."""
    raw = {key: total * share for key, share in shares.items()}
    counts = {key: math.floor(value) for key, value in raw.items()}
    by_remainder = sorted(shares, key=lambda key: raw[key] - counts[key], reverse=True)
    for key in by_remainder[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def _loop_counts(requirements: int) -> list[int]:
    """How many loops each requirement goes round: LOOP_WEIGHTS, then nudged between one and two loops
    (or two and three) until the total is exactly LOOPS_PER_REQUIREMENT per requirement."""
    counts = _exact_counts(requirements, LOOP_WEIGHTS)
    target = max(requirements, round(requirements * LOOPS_PER_REQUIREMENT))
    total = sum(k * n for k, n in counts.items())
    while total != target:
        if total > target:
            k = min(k for k, n in counts.items() if n and k > 1)
            counts[k] -= 1
            counts[k - 1] += 1
            total -= 1
        else:
            k = min(k for k, n in counts.items() if n and k < max(LOOP_WEIGHTS))
            counts[k] -= 1
            counts[k + 1] += 1
            total += 1
    return [k for k, n in sorted(counts.items()) for _ in range(n)]


def _spread(total: int, shares: dict[str, float]) -> list[str]:
    """`total` labels split by `shares`, each label at least once when there are enough to go round."""
    if total >= len(shares):
        counts = _exact_counts(total - len(shares), shares)
        counts = {key: n + 1 for key, n in counts.items()}
    else:
        counts = _exact_counts(total, shares)
    return [key for key in shares for _ in range(counts[key])]


class _Histories:
    """Draws stories for one team from its own random stream."""

    def __init__(self, rng: random.Random, sla_seconds: dict[str, int]) -> None:
        self.rng = rng
        self.sla_seconds = sla_seconds

    def mover(self, from_stage: str, kind: str) -> str:
        return self.rng.choice(MOVERS[from_stage, kind])

    def visit(self, stage: str) -> int:
        """Seconds one visit to `stage` lasts."""
        factor = self.rng.lognormvariate(math.log(VISIT_MEDIAN), VISIT_SIGMA)
        if self.rng.random() < LONG_VISIT_CHANCE:
            factor *= self.rng.uniform(*LONG_VISIT_FACTOR)
        return max(600, int(self.sla_seconds[stage] * min(factor, 8.0)))

    def loop_path(self, until: str | None) -> list[tuple[str, str, str, str]]:
        """(from, to, kind, role) through one loop from propose: every forward move, now and then a rework
        and the move forward again. With `until`, the path stops where it first enters that stage."""
        path: list[tuple[str, str, str, str]] = []
        for here, there in itertools.pairwise(STAGES):
            if here == until:
                break
            path.append((here, there, FORWARD, self.mover(here, FORWARD)))
            if there != until and there in REWORK_TO and self.rng.random() < REWORK_CHANCE:
                back = REWORK_TO[there]
                path.append((there, back, REWORK, self.mover(there, REWORK)))
                path.append((back, there, FORWARD, self.mover(back, FORWARD)))
        return path

    def story(self, *, loops: int, open_stage: str, lateness: str) -> _Story:
        rng = self.rng
        moves: list[tuple[int, str, str, str, str]] = [(1, "", FIRST, CREATE, OPS)]
        outcome = ""
        for number in range(1, loops + 1):
            if number < loops:
                moves += [(number, *move) for move in self.loop_path(None)]
                moves.append((number, LAST, FIRST, ITERATE, self.mover(LAST, ITERATE)))
            elif open_stage:
                moves += [(number, *move) for move in self.loop_path(open_stage)]
            elif rng.random() < EARLY_CLOSE_SHARE:
                # Declined before it was built: the lead closes it (recorded as a close, as the engine
                # records a lead's close from any stage).
                stop = FIRST if rng.random() < 0.6 else STAGES[1]
                moves += [(number, *move) for move in self.loop_path(stop)]
                moves.append((number, stop, "", CLOSE, LEAD))
                outcome = Outcome.WONT_DO.value
            else:
                moves += [(number, *move) for move in self.loop_path(None)]
                moves.append((number, LAST, "", CLOSE, self.mover(LAST, CLOSE)))
                outcome = Outcome.WONT_DO.value if rng.random() < WONT_DO_SHARE else Outcome.DONE.value
        timed = []
        offset = 0
        for index, move in enumerate(moves):
            if index:
                offset += self.visit(moves[index - 1][2])
            timed.append((*move, offset))
        return _Story(moves=timed, loops=loops, open_stage=open_stage, lateness=lateness, outcome=outcome)

    def place(self, story: _Story, *, now: dt.datetime) -> None:
        """Date the story: a closed one somewhere in the two years before `now`, ending at least an hour
        before it (more of them recently, as a team grows); an open one so that it has spent its drawn
        lateness in the stage it waits in now."""
        span = story.moves[-1][-1]
        if story.open_stage:
            low, high = LATENESS_FACTOR[story.lateness]
            waited = int(self.sla_seconds[story.open_stage] * self.rng.uniform(low, high))
            story.created = now - dt.timedelta(seconds=waited + span)
            return
        earliest = now - HISTORY
        latest = now - dt.timedelta(seconds=span) - dt.timedelta(hours=1)
        if latest <= earliest:  # a very long history simply starts earlier
            story.created = latest
            return
        seconds = int((latest - earliest).total_seconds() * self.rng.random() ** 0.75)
        story.created = earliest + dt.timedelta(seconds=seconds)


# ---------------------------------------------------------------------------------------- one team


@dataclass
class _Team:
    team: Team
    users: dict[str, Any]  # role → the member who holds it
    stages: dict[str, Stage]
    workflow_id: int
    local: zoneinfo.ZoneInfo


class _TeamWriter:
    """Generates and writes one team's requirements, loops, events and tracking plans."""

    def __init__(self, writer: _Writer, crew: _Team, rng: random.Random, now: dt.datetime) -> None:
        self.writer = writer
        self.crew = crew
        self.rng = rng
        self.now = now
        self.sla_seconds = {
            slug: (stage.sla_hours or NO_SLA_HOURS) * 3600 for slug, stage in crew.stages.items()
        }
        self.calendar = calendar_definition(team=crew.team)
        self.labels = [
            label.pk
            for label in Label.objects.bulk_create(Label(team=crew.team, name=name) for name in LABELS)
        ]
        self.totals = Totals()

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.crew.local).date()

    def stories(self, requirements: int) -> list[_Story]:
        rng = self.rng
        histories = _Histories(rng, self.sla_seconds)
        loops = _loop_counts(requirements)
        rng.shuffle(loops)
        open_count = Size.open_for(requirements)
        open_stages = _spread(open_count, OPEN_STAGE_SHARES)
        lateness = _spread(open_count, LATENESS_SHARES)
        rng.shuffle(lateness)
        opened = dict(
            zip(
                rng.sample(range(requirements), open_count),
                zip(open_stages, lateness, strict=True),
                strict=True,
            )
        )
        stories = []
        for index, count in enumerate(loops):
            stage, late = opened.get(index, ("", ""))
            story = histories.story(loops=count, open_stage=stage, lateness=late)
            histories.place(story, now=self.now)
            stories.append(story)
        # Numbers are handed out as requirements are created.
        stories.sort(key=attrgetter("created"))
        return stories

    def write(self, requirements: int) -> Totals:
        stories = self.stories(requirements)
        requirement_ids = self.writer.ids(Requirement, len(stories))
        loop_ids = iter(self.writer.ids(IterationLoop, sum(story.loops for story in stories)))
        requirement_rows = []
        loop_rows = []
        event_rows = []
        tracking_rows = []
        label_rows = []
        for number, (story, requirement_id) in enumerate(zip(stories, requirement_ids, strict=True), start=1):
            loops, events, tracking, launch = self.history_rows(story, requirement_id, loop_ids)
            loop_rows += loops
            event_rows += events
            tracking_rows += tracking
            requirement_rows.append(self.requirement_row(story, requirement_id, number, launch))
            label_rows += [(requirement_id, label) for label in self.pick_labels()]
        totals = self.totals
        totals.requirements = self.writer.write(Requirement, REQUIREMENT_FIELDS, requirement_rows)
        totals.loops = self.writer.write(IterationLoop, LOOP_FIELDS, loop_rows)
        totals.events = self.writer.write(StageEvent, EVENT_FIELDS, event_rows)
        totals.tracking_events = self.writer.write(TrackingEvent, TRACKING_FIELDS, tracking_rows)
        self.writer.write(Requirement.labels.through, LABEL_LINK_FIELDS, label_rows)
        totals.open_loops = sum(1 for row in loop_rows if row[4] is None)
        totals.rework_events = sum(1 for row in event_rows if row[4] == REWORK)
        return totals

    def pick_labels(self) -> list[int]:
        draw = self.rng.random()
        count = 0 if draw < 0.5 else 1 if draw < 0.85 else 2
        return self.rng.sample(self.labels, count)

    def history_rows(
        self, story: _Story, requirement_id: int, loop_ids: Iterable[int]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], dt.date | None]:
        """The loops, events and tracking plans of one requirement, and its launch date."""
        assert story.created is not None
        users = self.crew.users
        created = story.created
        loops: list[list[Any]] = []
        events = []
        instrumented: dict[int, dt.datetime] = {}  # loop number → first entry into instrument
        verified: dict[int, dt.datetime] = {}  # loop number → first move out of instrument
        analyzed: dict[int, dt.datetime] = {}  # loop number → move out of analyze
        launched: dt.datetime | None = None
        ids = iter(loop_ids)
        for number, from_stage, to_stage, kind, role, offset in story.moves:
            at = created + dt.timedelta(seconds=offset)
            if kind == CREATE:
                loops.append([next(ids), requirement_id, 1, at, None, ""])
            # An iterate belongs to the loop it closes; the next loop starts at it.
            since = events[-1][6] if events else None  # the visit this move ends began at the move before
            events.append(
                (requirement_id, loops[-1][0], from_stage, to_stage, kind, users[role].pk, at, since)
            )
            if kind == ITERATE:
                loops[-1][4:6] = [at, LoopOutcome.ITERATE.value]
                loops.append([next(ids), requirement_id, number + 1, at, None, ""])
            elif kind == CLOSE:
                loops[-1][4:6] = [at, LoopOutcome.CLOSE.value]
            elif kind == FORWARD and to_stage == "instrument":
                instrumented.setdefault(number, at)
                launched = at
            elif kind == FORWARD and from_stage == "instrument":
                verified.setdefault(number, at)
            elif kind == FORWARD and from_stage == "analyze":
                analyzed[number] = at
        if story.open_stage:
            # What the next forward move out of the current stage asks for is already there.
            number = story.loops
            entered = events[-1][6]
            halfway = entered + dt.timedelta(seconds=(self.now - entered).total_seconds() // 2)
            if story.open_stage == "instrument":
                verified[number] = halfway
            elif story.open_stage == "analyze":
                analyzed[number] = halfway
        loop_rows = [(*loop, *self.analysis(analyzed.get(loop[2]))) for loop in loops]
        tracking = [
            row
            for number, at in verified.items()
            for row in self.tracking_plan(loops[number - 1][0], instrumented[number], at)
        ]
        return loop_rows, events, tracking, self.local_date(launched) if launched else None

    def analysis(self, at: dt.datetime | None) -> tuple[Any, ...]:
        """conclusion … analyzed_at of a loop the analyst concluded at `at` (None: not analysed)."""
        if at is None:
            return ("", "", None, None, None, None, None)
        verdict = self.rng.choices((IMPROVED, FLAT, WORSE), VERDICT_WEIGHTS)[0]
        improved = verdict == IMPROVED
        return (
            CONCLUSIONS[verdict],
            verdict,
            improved,
            improved or self.rng.random() < 0.3,
            verdict != WORSE,
            self.crew.users[ANALYST].pk,
            at,
        )

    def tracking_plan(
        self, loop_id: int, planned: dt.datetime, verified: dt.datetime
    ) -> list[tuple[Any, ...]]:
        analyst = self.crew.users[ANALYST].pk
        engineer = self.crew.users[ENGINEER].pk
        chosen = TRACKING_EVENTS[: self.rng.choice((1, 2, 2, 3))]
        return [
            (
                loop_id,
                name,
                trigger,
                properties,
                engineer,
                TrackingStatus.VERIFIED.value,
                analyst,
                verified,
                planned,
            )
            for name, trigger, properties in chosen
        ]

    def requirement_row(
        self, story: _Story, requirement_id: int, number: int, launch: dt.date | None
    ) -> tuple[Any, ...]:
        rng = self.rng
        crew = self.crew
        assert story.created is not None
        moves = story.moves
        last_at = story.created + dt.timedelta(seconds=moves[-1][-1])
        if story.open_stage:
            stage = crew.stages[story.open_stage]
            entered_at, closed_at = last_at, None
            due, escalate = sla_deadlines(
                team=crew.team, stage=stage, entered_at=entered_at, calendar=self.calendar
            )
            self.totals.open_requirements += 1
            self.totals.overdue += due is not None and due < self.now
            self.totals.escalated += escalate is not None and escalate < self.now
            owners = STAGE_OWNERS[story.open_stage]
            assignee = None if rng.random() < 0.1 else crew.users[rng.choice(owners)].pk
            due_date = (
                self.local_date(self.now) + dt.timedelta(days=rng.randint(-10, 30))
                if rng.random() < 0.5
                else None
            )
        else:
            # A close leaves the requirement in the stage it closed from, entered by the move before.
            stage = crew.stages[moves[-2][2]]
            entered_at = story.created + dt.timedelta(seconds=moves[-2][-1])
            closed_at = last_at
            due = escalate = None
            assignee = None if rng.random() < 0.1 else crew.users[rng.choice(MEMBER_ROLES[:4])].pk
            due_date = (
                self.local_date(closed_at) + dt.timedelta(days=rng.randint(-7, 14))
                if rng.random() < 0.3
                else None
            )
        reached_design = any(move[2] == "design" for move in moves)
        priority = rng.choices(Priority.values, (0.02, 0.2, 0.5, 0.28))[0]
        subject = rng.choice(SUBJECTS)
        target_metric = rng.choice(TARGET_METRICS)
        return (
            requirement_id,
            crew.team.pk,
            crew.workflow_id,
            number,
            f"{crew.team.key_prefix}-{number}",
            f"{rng.choice(ACTIONS)} {subject}",
            f"Load requirement {number} of {crew.team.name}: {subject}.",
            f"Changing the {subject} moves {target_metric}.",
            target_metric,
            rng.choice(AarrrStage.values),
            priority,
            rng.choice(IncidentKind.values) if priority == Priority.P0 else "",
            WorkType.INNOVATION.value if rng.random() < 0.3 else WorkType.BASE.value,
            assignee,
            due_date,
            launch,
            f"https://docs.example.com/specs/{crew.team.key_prefix.lower()}-{number}"
            if reached_design
            else "",
            stage.pk,
            story.loops,
            entered_at,
            crew.users[OPS].pk,
            story.created,
            last_at,
            closed_at,
            story.outcome,
            due,
            escalate,
            due,
        )


# ------------------------------------------------------------------------------------ the data loop


def _observations(
    writer: _Writer, crew: _Team, rng: random.Random, now: dt.datetime
) -> tuple[int, dict[str, Metric]]:
    """Daily values of every default metric of the team over the two years before `now`."""
    metrics = {metric.name: metric for metric in Metric.objects.filter(team=crew.team)}
    by_msgid = {msgid: metrics[_(msgid)] for msgid in METRIC_SERIES if _(msgid) in metrics}
    last = now.astimezone(crew.local).date() - dt.timedelta(days=1)
    days = HISTORY.days
    first = last - dt.timedelta(days=days - 1)
    analyst = crew.users[ANALYST].pk
    rows = []
    for msgid, metric in by_msgid.items():
        start, end, weekend, noise = METRIC_SERIES[msgid]
        for index in range(days):
            day = first + dt.timedelta(days=index)
            value = (
                start
                + (end - start) * index / (days - 1)
                + weekend * WEEKEND_SHAPE[day.weekday()]
                + rng.uniform(-noise, noise)
            )
            recorded = min(
                now, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1), tzinfo=crew.local)
            )
            rows.append((metric.pk, day, Decimal(f"{value:.2f}"), Source.IMPORT.value, analyst, recorded))
    return writer.write(Observation, OBSERVATION_FIELDS, rows), by_msgid


def _watches(crew: _Team, metrics: dict[str, Metric]) -> int:
    """The preset watches and a few more. Written directly rather than through watch_create, which would
    ask a worker to evaluate them: the benchmark times that evaluation itself."""
    ops = crew.users[OPS]
    lead = crew.users[LEAD]
    watches = [
        MetricWatch(
            team=crew.team,
            name=_(str(preset["name"])),
            metric=metrics[str(preset["metric"])],
            comparison=str(preset["comparison"]),
            threshold=Decimal(str(preset["threshold"])) if preset["threshold"] else None,
            periods=int(str(preset["periods"])),
            period=str(preset["period"]),
            title=_(str(preset["title"])),
            aarrr_stage=str(preset["aarrr_stage"]),
            priority=str(preset["priority"]),
            owner_role=str(preset["owner_role"]),
            description=_(str(preset["description"])),
            assignee=ops,
            created_by=lead,
        )
        for preset in WATCH_PRESETS
        if str(preset["metric"]) in metrics
    ]
    watches += [
        MetricWatch(
            team=crew.team,
            name=name,
            metric=metrics[metric],
            comparison=comparison,
            threshold=threshold,
            periods=periods,
            title=title,
            aarrr_stage=AarrrStage.ACTIVATION,
            priority=Priority.P1,
            owner_role=OPS,
            is_active=active,
            created_by=lead,
        )
        for name, metric, comparison, threshold, periods, title, active in EXTRA_WATCHES
        if metric in metrics
    ]
    return len(MetricWatch.objects.bulk_create(watches))


# ------------------------------------------------------------------------------- teams and members


def _make_users(prefixes: Sequence[str], password: str) -> dict[str, Any]:
    """Every member of every load team and the `bench` login, all with `password` (hashed once)."""
    User = get_user_model()
    encoded = make_password(password)
    users = [User(username=BENCH_USERNAME, password=encoded, is_staff=True, first_name="Bench")]
    users += [
        User(
            username=username_for(prefix, role),
            password=encoded,
            first_name=prefix,
            last_name=str(Role(role).label),
            email=f"{username_for(prefix, role)}@load.example.com",
        )
        for prefix in prefixes
        for role in MEMBER_ROLES
    ]
    User.objects.bulk_create(users)
    return {user.username: user for user in User.objects.filter(username__in=[u.username for u in users])}


def _make_team(prefix: str, users: dict[str, Any]) -> _Team:
    members = {role: users[username_for(prefix, role)] for role in MEMBER_ROLES}
    team = workflow_services.team_setup(name=team_name_for(prefix), key_prefix=prefix, creator=members[LEAD])
    for role in MEMBER_ROLES[:4]:
        role_services.membership_add(team=team, user=members[role], roles=[role], actor=None)
    workflow = workflow_current(team=team)
    return _Team(
        team=team,
        users=members,
        stages={stage.slug: stage for stage in workflow.stages.all()},
        workflow_id=workflow.pk,
        local=zoneinfo.ZoneInfo(team.time_zone),
    )


# ------------------------------------------------------------------------------------------- reset


def load_teams() -> list[Team]:
    """The teams a previous run made: key prefix L01 … and the matching name. No other team is one."""
    return [
        team
        for team in Team.objects.filter(key_prefix__startswith="L").order_by("key_prefix")
        if len(team.key_prefix) == 3
        and team.key_prefix[1:].isdigit()
        and team.name == team_name_for(team.key_prefix)
    ]


def _load_usernames(prefixes: Iterable[str]) -> list[str]:
    return [BENCH_USERNAME, *(username_for(prefix, role) for prefix in prefixes for role in MEMBER_ROLES)]


def _delete(teams: list[Team], usernames: list[str]) -> None:
    """Delete the load teams with everything in them, and the load users. Stage events are append-only
    for the product, so they go by a DELETE scoped to these teams' requirements; the rest goes through
    the ORM, which follows every relation (and refuses, with ProtectedError, what still protects)."""
    team_ids = [team.pk for team in teams]
    requirements = Requirement.objects.filter(team_id__in=team_ids)
    StageReminder.objects.filter(loop__requirement__in=requirements).delete()
    if team_ids:
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {qn(StageEvent._meta.db_table)} WHERE requirement_id IN "  # noqa: S608
                f"(SELECT id FROM {qn(Requirement._meta.db_table)} "
                f"WHERE team_id IN ({', '.join(['%s'] * len(team_ids))}))",
                team_ids,
            )
    Observation.objects.filter(loop__requirement__in=requirements).update(loop=None)
    for team in teams:
        TrackingEvent.objects.filter(loop__requirement__team=team).delete()
        IterationLoop.objects.filter(requirement__team=team).delete()
        Requirement.objects.filter(team=team).delete()
        Goal.objects.filter(team=team).delete()
        team.delete()
    get_user_model().objects.filter(username__in=usernames).delete()


def _check_room(prefixes: Sequence[str], *, reset: bool) -> tuple[list[Team], list[str]]:
    """What a run would replace, or LoadRefused when it may not."""
    teams = load_teams()
    others = Team.objects.filter(key_prefix__in=prefixes).exclude(pk__in=[team.pk for team in teams])
    clash = sorted(others.values_list("key_prefix", flat=True))
    if clash:
        raise LoadRefused(
            f"Teams {', '.join(clash)} exist and are not load teams; generate_load leaves them alone. "
            "Use a database without them."
        )
    usernames = _load_usernames(sorted({*prefixes, *(team.key_prefix for team in teams)}))
    existing = sorted(
        get_user_model().objects.filter(username__in=usernames).values_list("username", flat=True)
    )
    if not reset and (teams or existing):
        found = ", ".join(team.key_prefix for team in teams) or ", ".join(existing[:5])
        raise LoadRefused(f"A load data set is here already ({found}). Run again with --reset to replace it.")
    elsewhere = sorted(
        Membership.objects.filter(user__username__in=usernames)
        .exclude(team__in=teams)
        .values_list("user__username", flat=True)
        .distinct()
    )
    if elsewhere:
        raise LoadRefused(
            f"Users {', '.join(elsewhere)} belong to teams outside the load data set; --reset would "
            "delete them. Remove those memberships first."
        )
    return teams, existing


# --------------------------------------------------------------------------------------------- run


def generate(
    *,
    size: Size,
    seed: int,
    now: dt.datetime,
    password: str,
    reset: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> Totals:
    """Build the load data set (replacing a previous one with `reset`) and return what was written."""
    now = now.astimezone(dt.UTC).replace(microsecond=0)
    prefixes = [prefix_for(index) for index in range(size.teams)]
    writer = _Writer()
    totals = Totals()
    with transaction.atomic():
        old_teams, old_users = _check_room(prefixes, reset=reset)
        if old_teams or old_users:
            try:
                _delete(old_teams, old_users)
            except ProtectedError as exc:
                raise LoadRefused(f"The old load data set cannot be deleted: {exc.args[0]}") from exc
            progress(f"Deleted the previous load data set ({len(old_teams)} teams).")
        if writer.postgres:
            # Check each row's keys as it is written rather than queue millions of checks for the commit.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        users = _make_users(prefixes, password)
        totals.users = len(users)
        for index, prefix in enumerate(prefixes):
            started = time.monotonic()
            crew = _make_team(prefix, users)
            if index == 0:
                role_services.membership_add(
                    team=crew.team, user=users[BENCH_USERNAME], roles=MEMBER_ROLES, actor=None
                )
            rng = random.Random(f"opsteam-load:{seed}:{prefix}")
            team_totals = _TeamWriter(writer, crew, rng, now).write(size.per_team(index))
            team_totals.teams = 1
            team_totals.observations, metrics = _observations(writer, crew, rng, now)
            team_totals.watches = _watches(crew, metrics)
            totals.add(team_totals)
            seconds = time.monotonic() - started
            progress(
                f"{prefix}: {team_totals.requirements:,} requirements ({team_totals.open_requirements} open, "
                f"{team_totals.overdue} overdue), {team_totals.loops:,} loops, "
                f"{team_totals.events:,} events, {team_totals.observations:,} observations "
                f"in {seconds:.1f} s"
            )
    _analyze()
    return totals


ANALYZED = (
    Requirement,
    IterationLoop,
    StageEvent,
    TrackingEvent,
    Observation,
    Requirement.labels.through,
    MetricWatch,
    Metric,
)


def _analyze() -> None:
    """Fresh planner statistics (and, outside a transaction, the visibility map) for the tables written,
    so the first queries over them are planned as they will be later."""
    if connection.vendor != "postgresql":
        return
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for model in ANALYZED:
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")
