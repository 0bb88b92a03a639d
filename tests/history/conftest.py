"""History built through the services, backdated, and helpers that read a team's log back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from roles.models import Team
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, make_team, verify_tracking
from workflows import services
from workflows.models import IterationLoop, Requirement, StageEvent


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)


# The worked loop of METRICS.md: (when, who, to) after creation on Mon 2026-03-02 09:00.
WORKED_LOOP = [
    (at(2, 15), "ops", "design"),
    (at(3, 12), "pm", "propose"),
    (at(3, 18), "ops", "design"),
    (at(4, 18), "pm", "build"),
    (at(6, 18), "engineer", "instrument"),
    (at(7, 6), "analyst", "analyze"),
    (at(9, 6), "analyst", "optimize"),
    (at(9, 12), "ops", "iterate"),
]


def walk(
    crew: Crew, requirement: Requirement, script: list[tuple[dt.datetime, str, str]], **close: str
) -> None:
    """Move the requirement through the script, filling in what each move's guards ask for."""
    for when, role, to in script:
        actor = crew.by_role(role)
        if to == "build":
            services.requirement_update(
                requirement_id=requirement.pk, actor=crew.pm, design="https://wiki/spec"
            )
        if to == "analyze":
            services.requirement_update(
                requirement_id=requirement.pk, actor=crew.engineer, launch_date="2026-03-07"
            )
            verify_tracking(requirement)
        if to == "optimize":
            services.loop_record_analysis(
                requirement_id=requirement.pk,
                actor=crew.analyst,
                conclusion="D1 +3pt",
                verdict="improved",
                core_metric_moved=True,
                behaviour_moved=True,
                feedback_positive=True,
            )
        requirement.refresh_from_db()
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=actor,
            from_stage=requirement.stage.slug,
            to_stage=to,
            at=when,
            note=f"{role} moved it",
            outcome=close.get("outcome", "") if to == "close" else "",
        )


def worked_loop(crew: Crew) -> Requirement:
    requirement = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="新用户首单红包",
        at=at(2, 9),
        labels=["growth", "红包"],
        **READY_FIELDS,
    )
    walk(crew, requirement, WORKED_LOOP)
    requirement.refresh_from_db()
    return requirement


def closed_with_override(crew: Crew) -> Requirement:
    """A lead's skip, a close with an outcome, and a second loop closed the same day."""
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="Push at 20:00", at=at(10, 9), priority="P1", **READY_FIELDS
    )
    walk(
        crew,
        requirement,
        [
            (at(10, 10), "lead", "build"),
            (at(11, 10), "engineer", "instrument"),
            (at(11, 10), "analyst", "analyze"),
            (at(12, 9, 30), "analyst", "optimize"),
            (at(12, 10), "ops", "iterate"),
            (at(13, 10), "lead", "close"),
        ],
        outcome="wont_do",
    )
    requirement.refresh_from_db()
    return requirement


def open_in_build(crew: Crew, title: str = '=HYPERLINK("http://evil")') -> Requirement:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title=title, at=at(14, 9), description="- a list\n", **READY_FIELDS
    )
    walk(crew, requirement, [(at(14, 11), "ops", "design"), (at(15, 11), "pm", "build")])
    requirement.refresh_from_db()
    return requirement


@pytest.fixture
def history(crew: Crew) -> list[Requirement]:
    """GROW-1 the worked loop (loop 2 open), GROW-2 closed after two loops, GROW-3 open in build."""
    return [worked_loop(crew), closed_with_override(crew), open_in_build(crew)]


@pytest.fixture
def empty_team(db: Any) -> Team:
    return make_team(
        lead=UserFactory(username="newlead"), name="Elsewhere", key_prefix="NEW", time_zone="UTC"
    )


def log_of(team: Team) -> list[tuple[Any, ...]]:
    """(key number, loop, from, to, kind, at) of every event of the team: what analytics reads."""
    return [
        (e.requirement.number, e.loop.number, e.from_stage, e.to_stage, e.kind, e.at)
        for e in StageEvent.objects.filter(requirement__team=team)
        .select_related("requirement", "loop")
        .order_by("requirement__number", "at", "id")
    ]


def loops_of(team: Team) -> list[tuple[Any, ...]]:
    return [
        (loop.requirement.number, loop.number, loop.started_at, loop.closed_at, loop.outcome)
        for loop in IterationLoop.objects.filter(requirement__team=team)
        .select_related("requirement")
        .order_by("requirement__number", "number")
    ]


def state_of(team: Team) -> list[tuple[Any, ...]]:
    return [
        (
            r.number,
            r.stage.slug,
            r.loop_number,
            r.stage_entered_at,
            r.created_at,
            r.closed_at,
            r.outcome,
            r.sla_due_at,
            r.sla_escalate_at,
            r.sla_next_at,
        )
        for r in Requirement.objects.filter(team=team).select_related("stage").order_by("number")
    ]


def counts() -> tuple[int, int, int]:
    return Requirement.objects.count(), IterationLoop.objects.count(), StageEvent.objects.count()
