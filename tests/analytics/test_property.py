"""Random valid event logs: the SQL figures agree with a plain-Python reading of the same log, and for
every closed loop the time in its stages adds up to its cycle time."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import selectors
from analytics.selectors import Scope
from tests.factories import UserFactory, make_team
from workflows import services
from workflows.models import Requirement, StageEvent

pytestmark = pytest.mark.django_db

STAGES = ["propose", "design", "build", "instrument", "analyze", "optimize"]
START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
_teams = itertools.count(1)

# A requirement's life: (target, minutes after the previous event) moves made by a lead (who may make any).
moves = st.lists(
    st.tuples(
        st.sampled_from([*STAGES, "iterate", "close"]), st.integers(min_value=1, max_value=5 * 24 * 60)
    ),
    min_size=1,
    max_size=12,
)


def reference(events: list[StageEvent]) -> tuple[list[float], dict[str, list[float]]]:
    """Cycle times of closed loops and, per stage, each closed loop's time in it — straight from the log."""
    cycles: list[float] = []
    per_stage: dict[str, list[float]] = defaultdict(list)
    by_requirement: dict[int, list[StageEvent]] = defaultdict(list)
    for event in events:
        by_requirement[event.requirement_id].append(event)
    for log in by_requirement.values():
        loop_start = log[0].at
        spent: dict[str, float] = defaultdict(float)
        for before, after in itertools.pairwise(log):
            spent[before.to_stage] += (after.at - before.at).total_seconds()
            if after.kind in ("iterate", "close"):
                cycles.append((after.at - loop_start).total_seconds())
                for stage, seconds in spent.items():
                    per_stage[stage].append(seconds)
                spent = defaultdict(float)
                loop_start = after.at
    return cycles, per_stage


def nearest_rank(values: list[float], p: int) -> float | None:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1] if ordered else None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lives=st.lists(moves, min_size=1, max_size=4))
def test_sql_agrees_with_a_plain_reading_of_the_log(lives: list[list[tuple[str, int]]]) -> None:
    n = next(_teams)
    lead = UserFactory(username=f"prop-lead-{n}")
    team = make_team(lead=lead, key_prefix=f"P{n}", time_zone="UTC")
    last = START
    for i, life in enumerate(lives):
        at = START + dt.timedelta(hours=i)
        requirement = services.requirement_create(team=team, actor=lead, title=f"r{i}", at=at)
        stage = "propose"
        for target, minutes in life:
            if target == stage:
                continue
            at += dt.timedelta(minutes=minutes)
            services.requirement_transition(
                requirement_id=requirement.pk,
                actor=lead,
                from_stage=stage,
                to_stage=target,
                at=at,
                outcome="done" if target == "close" else "",
            )
            if target == "close":
                break
            stage = Requirement.objects.get(pk=requirement.pk).stage.slug
        last = max(last, at)
    scope = Scope(teams=(team,), start=START, end=last + dt.timedelta(seconds=1))
    events = list(StageEvent.objects.filter(requirement__team=team).order_by("requirement_id", "at", "id"))
    cycles, per_stage = reference(events)

    figures = selectors.cycle_time(scope)
    assert figures["count"] == len(cycles)
    for p in (50, 85, 95):
        expected = nearest_rank(cycles, p)
        assert figures[f"p{p}"] == (None if expected is None else round(expected))

    stages = {row["stage"]: row for row in selectors.time_in_stage(scope)["stages"]}
    assert set(stages) == {stage for stage, values in per_stage.items() if values}
    for stage, values in per_stage.items():
        assert stages[stage]["total"] == round(sum(values))
        assert stages[stage]["p85"] == round(nearest_rank(values, 85))  # type: ignore[arg-type]
    # Time in stage over all stages adds up to the cycle time of every closed loop.
    assert sum(row["total"] for row in stages.values()) == pytest.approx(sum(cycles), abs=len(stages))
