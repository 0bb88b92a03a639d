"""The worked loop of METRICS.md, replayed through the services, gives exactly its event log."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tests.conftest import Crew
from tests.factories import READY_FIELDS, verify_tracking
from workflows import services
from workflows.models import IterationLoop, Requirement, StageEvent

pytestmark = pytest.mark.django_db


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


# (when, who, to) after creation on Mon 2026-03-02 09:00.
SCRIPT = [
    (at(2, 15), "ops", "design"),
    (at(3, 12), "pm", "propose"),
    (at(3, 18), "ops", "design"),
    (at(4, 18), "pm", "build"),
    (at(6, 18), "engineer", "instrument"),
    (at(7, 6), "analyst", "analyze"),
    (at(9, 6), "analyst", "optimize"),
    (at(9, 12), "ops", "iterate"),
]

EXPECTED_LOG = [
    (1, "", "propose", "create", "ops", at(2, 9)),
    (1, "propose", "design", "forward", "ops", at(2, 15)),
    (1, "design", "propose", "rework", "pm", at(3, 12)),
    (1, "propose", "design", "forward", "ops", at(3, 18)),
    (1, "design", "build", "forward", "pm", at(4, 18)),
    (1, "build", "instrument", "forward", "engineer", at(6, 18)),
    (1, "instrument", "analyze", "forward", "analyst", at(7, 6)),
    (1, "analyze", "optimize", "forward", "analyst", at(9, 6)),
    (1, "optimize", "propose", "iterate", "ops", at(9, 12)),
]


def replay(crew: Crew) -> Requirement:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="新用户首单红包", at=at(2, 9), **READY_FIELDS
    )
    for when, role, to in SCRIPT:
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
            actor=crew.by_role(role),
            from_stage=requirement.stage.slug,
            to_stage=to,
            at=when,
        )
    requirement.refresh_from_db()
    return requirement


def test_worked_loop_produces_exactly_its_event_log(crew: Crew) -> None:
    requirement = replay(crew)
    log = [
        (e.loop.number, e.from_stage, e.to_stage, e.kind, e.actor.username, e.at)
        for e in StageEvent.objects.filter(requirement=requirement)
        .select_related("loop", "actor")
        .order_by("at", "id")
    ]
    assert log == EXPECTED_LOG


def test_worked_loop_one_lasts_615600_seconds_and_loop_two_is_open_in_propose(crew: Crew) -> None:
    requirement = replay(crew)
    loop1, loop2 = IterationLoop.objects.filter(requirement=requirement).order_by("number")
    assert (loop1.closed_at - loop1.started_at).total_seconds() == 615_600
    assert (loop2.started_at, loop2.closed_at) == (at(9, 12), None)
    assert (requirement.loop_number, requirement.stage.slug, requirement.stage_entered_at) == (
        2,
        "propose",
        at(9, 12),
    )


def test_worked_loop_time_in_each_stage_sums_to_the_cycle_time(crew: Crew) -> None:
    requirement = replay(crew)
    events = list(StageEvent.objects.filter(requirement=requirement, loop__number=1).order_by("at", "id"))
    hours: dict[str, float] = {}
    for entered, left in itertools.pairwise(events):
        hours[entered.to_stage] = (
            hours.get(entered.to_stage, 0) + (left.at - entered.at).total_seconds() / 3600
        )
    assert hours == {"propose": 12, "design": 45, "build": 48, "instrument": 12, "analyze": 48, "optimize": 6}
    assert sum(hours.values()) == 171
