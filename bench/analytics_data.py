"""A large, valid event log for one team, written directly with bulk_create: the analytics scale test
(tests/analytics/test_scale.py) and benchmark (bench/analytics_scale.py) both measure over it.

Going through requirement_transition would take ten minutes for 10,000 loops, so the rows are written
as history/services.py writes an import, keeping what the services keep: numbers and keys dense and unique
per team; loop 1 starts at creation and loop n+1 at the iterate out of loop n; each requirement's events in
time order, every `from` the stage the one before went `to`; closed loops carry their close time and
outcome; the requirement's stage, loop, stage entry, close and SLA fields agree with its last event; the
workflow is the team's current one. The same seed gives the same history for the same `now`.

statement_limit, which both use too, cancels a query that runs too long."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

from roles.models import Team
from workflows.models import (
    EventKind,
    IterationLoop,
    LoopOutcome,
    Outcome,
    Requirement,
    Stage,
    StageEvent,
)
from workflows.reminders import sla_deadlines
from workflows.selectors import workflow_current
from worktime.selectors import calendar_definition

STAGES = ("propose", "design", "build", "instrument", "analyze", "optimize")
# The default workflow's rework moves, keyed by the stage they leave.
REWORK_TO = {"design": "propose", "build": "design", "instrument": "build", "analyze": "instrument"}
# Who makes the move out of each stage (its owner role), so every event has a plausible actor.
MOVER = {
    "propose": "ops",
    "design": "pm",
    "build": "engineer",
    "instrument": "engineer",
    "analyze": "analyst",
    "optimize": "ops",
}
# Minutes spent in a stage per visit, drawn uniformly; the upper ends pass the default SLAs now and then.
MINUTES_IN = {
    "propose": (60, 60 * 60),
    "design": (120, 90 * 60),
    "build": (240, 300 * 60),
    "instrument": (60, 60 * 60),
    "analyze": (240, 200 * 60),
    "optimize": (60, 60 * 60),
}
REWORK_CHANCE = 0.12  # per forward move into a stage that has a rework move back
OPEN_SHARE = 0.3  # of second loops, left open somewhere along the way
HISTORY = dt.timedelta(days=175)  # inside the dashboard's longest period (180 days)
CHUNK = 500  # requirements written per round of bulk_create


@dataclass(frozen=True)
class Built:
    requirements: int
    loops: int
    closed_loops: int
    open_loops: int
    events: int


@dataclass
class _Event:
    loop: int
    from_stage: str
    to_stage: str
    kind: str
    at: dt.datetime


def _loop_moves(rng: random.Random) -> list[tuple[str, str, str]]:
    """(from, to, kind) from propose to optimize, with an occasional rework and the move back."""
    moves: list[tuple[str, str, str]] = []
    for here, there in itertools.pairwise(STAGES):
        moves.append((here, there, EventKind.FORWARD))
        if there in REWORK_TO and rng.random() < REWORK_CHANCE:
            back = REWORK_TO[there]
            moves += [(there, back, EventKind.REWORK), (back, there, EventKind.FORWARD)]
    return moves


def _history(rng: random.Random, *, loops: int, now: dt.datetime, history: dt.timedelta) -> list[_Event]:
    """One requirement's log: `loops` loops, the last closed or (OPEN_SHARE of the time) left open."""
    moves: list[tuple[int, str, str, str]] = [(1, "", STAGES[0], EventKind.CREATE)]
    for number in range(1, loops + 1):
        begin = len(moves)
        moves += [(number, *move) for move in _loop_moves(rng)]
        if number < loops:
            moves.append((number, "optimize", STAGES[0], EventKind.ITERATE))
        elif rng.random() < OPEN_SHARE:
            # Stop somewhere along the loop: the requirement sits in the stage the last kept move entered.
            del moves[rng.randint(begin, len(moves)) :]
        else:
            moves.append((number, "optimize", "", EventKind.CLOSE))
    # Minutes after creation of each event; the whole history ends at least an hour before now.
    offsets = [0]
    for _number, _from, to, _kind in moves[:-1]:
        low, high = MINUTES_IN[to]
        offsets.append(offsets[-1] + rng.randint(low, high))
    span = dt.timedelta(minutes=offsets[-1])
    latest_start = now - span - dt.timedelta(hours=1)
    earliest_start = now - history
    created = earliest_start + (latest_start - earliest_start) * rng.random()
    created = created.replace(second=0, microsecond=0)
    return [
        _Event(loop=number, from_stage=frm, to_stage=to, kind=kind, at=created + dt.timedelta(minutes=m))
        for (number, frm, to, kind), m in zip(moves, offsets, strict=True)
    ]


def build_loops(
    *,
    team: Team,
    actors: Mapping[str, Any],
    loops: int,
    now: dt.datetime,
    seed: int = 6,
    requirements: int | None = None,
    history: dt.timedelta = HISTORY,
) -> Built:
    """Write `loops` loops for `team`, every event within `history` (175 days) before `now`. By default two
    loops per requirement (one more requirement with one loop if `loops` is odd); with `requirements`, the
    loops are shared out among that many requirements as evenly as they go (12,500 loops over 5,000
    requirements: half of them two, half three). `actors` maps the roles ops, pm, engineer and analyst to
    members who make the moves. Returns what was written."""
    rng = random.Random(seed)
    workflow = workflow_current(team=team)
    stages: dict[str, Stage] = {stage.slug: stage for stage in workflow.stages.all()}
    calendar = calendar_definition(team=team)
    assignees = [actors[role] for role in ("ops", "pm", "engineer", "analyst")]
    if requirements is None:
        per_requirement = [2] * (loops // 2) + [1] * (loops % 2)
    else:
        if not 0 < requirements <= loops:
            raise ValueError("Each requirement has at least one loop.")
        share, extra = divmod(loops, requirements)
        per_requirement = [share + 1] * extra + [share] * (requirements - extra)
    totals = {"closed": 0, "open": 0, "events": 0}
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)  # numbers are allocated under the team lock
        last = Requirement.objects.filter(team=team).aggregate(n=Max("number"))["n"] or 0
        for start in range(0, len(per_requirement), CHUNK):
            histories = [
                _history(rng, loops=n, now=now, history=history)
                for n in per_requirement[start : start + CHUNK]
            ]
            requirements = []
            for offset, events in enumerate(histories):
                number = last + start + offset + 1
                requirements.append(
                    _requirement(
                        team, workflow.pk, stages, calendar, number, events, rng.choice(assignees), rng
                    )
                )
            Requirement.objects.bulk_create(requirements)
            new_loops = [
                loop
                for requirement, events in zip(requirements, histories, strict=True)
                for loop in _loops(requirement, events)
            ]
            IterationLoop.objects.bulk_create(new_loops)
            loop_ids = {(loop.requirement_id, loop.number): loop.pk for loop in new_loops}
            StageEvent.objects.bulk_create(
                StageEvent(
                    requirement_id=requirement.pk,
                    loop_id=loop_ids[requirement.pk, event.loop],
                    from_stage=event.from_stage,
                    to_stage=event.to_stage,
                    kind=event.kind,
                    actor=actors[MOVER[event.from_stage or "propose"]],
                    at=event.at,
                    since=before.at if before else None,
                )
                for requirement, events in zip(requirements, histories, strict=True)
                for before, event in zip([None, *events], events, strict=False)
            )
            totals["closed"] += sum(1 for loop in new_loops if loop.closed_at is not None)
            totals["open"] += sum(1 for loop in new_loops if loop.closed_at is None)
            totals["events"] += sum(len(events) for events in histories)
    return Built(
        requirements=len(per_requirement),
        loops=loops,
        closed_loops=totals["closed"],
        open_loops=totals["open"],
        events=totals["events"],
    )


def _requirement(
    team: Team,
    workflow_id: int,
    stages: Mapping[str, Stage],
    calendar: Any,
    number: int,
    events: list[_Event],
    assignee: Any,
    rng: random.Random,
) -> Requirement:
    last = events[-1]
    closed = last.kind == EventKind.CLOSE
    # A close leaves the requirement in the stage it closed from, entered at the move before.
    entered = events[-2] if closed else last
    stage = stages[entered.to_stage]
    due, escalate = (
        (None, None)
        if closed
        else sla_deadlines(team=team, stage=stage, entered_at=entered.at, calendar=calendar)
    )
    return Requirement(
        team=team,
        workflow_id=workflow_id,
        number=number,
        key=f"{team.key_prefix}-{number}",
        title=f"Scale requirement {number}",
        hypothesis="A red-packet on day 2 lifts D1 retention",
        target_metric="D1 retention",
        aarrr_stage=rng.choice(["acquisition", "activation", "retention", "revenue", "referral"]),
        priority=rng.choice(["P1", "P2", "P2", "P3"]),
        assignee=assignee,
        stage=stage,
        loop_number=last.loop,
        stage_entered_at=entered.at,
        created_by=assignee,
        created_at=events[0].at,
        closed_at=last.at if closed else None,
        outcome=rng.choice([Outcome.DONE, Outcome.DONE, Outcome.WONT_DO]) if closed else "",
        sla_due_at=due,
        sla_escalate_at=escalate,
        sla_next_at=due,
    )


def _loops(requirement: Requirement, events: list[_Event]) -> list[IterationLoop]:
    loops: list[IterationLoop] = []
    for event in events:
        if event.kind in (EventKind.CREATE, EventKind.ITERATE):
            loops.append(
                IterationLoop(requirement_id=requirement.pk, number=len(loops) + 1, started_at=event.at)
            )
        if event.kind in (EventKind.ITERATE, EventKind.CLOSE):
            closing = loops[-2] if event.kind == EventKind.ITERATE else loops[-1]
            closing.closed_at = event.at
            closing.outcome = LoopOutcome.ITERATE if event.kind == EventKind.ITERATE else LoopOutcome.CLOSE
    return loops


@contextmanager
def statement_limit(seconds: int) -> Iterator[None]:
    """Cancel any SQL statement that runs longer than `seconds` (django.db.OperationalError): a query plan
    that turns quadratic then fails in seconds instead of running for an hour."""
    if connection.vendor == "postgresql":
        # Inside a transaction, SET LOCAL ends with it (also when a cancelled statement aborts it).
        scope = "LOCAL " if connection.in_atomic_block else ""
        with connection.cursor() as cursor:
            cursor.execute(f"SET {scope}statement_timeout = {int(seconds * 1000)}")
        try:
            yield
        finally:
            if not scope:
                with connection.cursor() as cursor:
                    cursor.execute("SET statement_timeout = 0")
        return
    started = [time.monotonic()]

    def mark(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started[0] = time.monotonic()
        return execute(sql, params, many, context)

    connection.ensure_connection()
    raw = connection.connection
    # SQLite calls this every 10,000 steps of a statement, fetching included; True interrupts it.
    raw.set_progress_handler(lambda: time.monotonic() - started[0] > seconds, 10_000)
    try:
        with connection.execute_wrapper(mark):
            yield
    finally:
        raw.set_progress_handler(None, 0)
