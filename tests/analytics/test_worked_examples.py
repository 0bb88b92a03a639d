"""METRICS.md's worked examples, computed by the analytics selectors on the event log."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics import selectors
from analytics.selectors import Filters, Scope
from tests.conftest import Crew
from tests.workflows.test_worked_loop import at, replay
from workflows.models import Stage

pytestmark = pytest.mark.django_db

H = 3600


def scope(crew: Crew, start: dt.datetime, end: dt.datetime, **kwargs: object) -> Scope:
    return Scope(teams=(crew.team,), start=start, end=end, **kwargs)  # type: ignore[arg-type]


def test_worked_loop_cycle_time(crew: Crew) -> None:
    replay(crew)
    figures = selectors.cycle_time(scope(crew, at(1, 0), at(10, 0)))
    assert figures == {"count": 1, "mean": 615_600, "p50": 615_600, "p85": 615_600, "p95": 615_600}


def test_worked_loop_time_in_stage_sums_visits_and_names_the_bottleneck(crew: Crew) -> None:
    replay(crew)
    result = selectors.time_in_stage(scope(crew, at(1, 0), at(10, 0)))
    totals = {row["stage"]: row["total"] for row in result["stages"]}
    assert totals == {
        "propose": 12 * H,
        "design": 45 * H,
        "build": 48 * H,
        "instrument": 12 * H,
        "analyze": 48 * H,
        "optimize": 6 * H,
    }
    assert sum(totals.values()) == 615_600
    assert result["bottleneck"] in ("build", "analyze")


def test_a_loop_belongs_to_the_period_it_closed_in(crew: Crew) -> None:
    replay(crew)
    assert selectors.cycle_time(scope(crew, at(1, 0), at(9, 12)))["count"] == 0
    assert selectors.cycle_time(scope(crew, at(9, 12), at(9, 13)))["count"] == 1


def test_worked_loop_rework_and_sla_per_visit(crew: Crew) -> None:
    replay(crew)
    Stage.objects.filter(workflow__team=crew.team, slug="build").update(sla_hours=24)
    Stage.objects.filter(workflow__team=crew.team, slug="design").update(sla_hours=72)
    period = scope(crew, at(1, 0), at(10, 0))
    sla = {row["stage"]: row for row in selectors.sla(period)["stages"]}
    assert (sla["build"]["visits"], sla["build"]["breached"]) == (1, 1)
    assert (sla["design"]["visits"], sla["design"]["breached"]) == (2, 0)
    rework = selectors.rework(period)
    assert {row["stage"]: row["backward"] for row in rework["stages"]}["design"] == 1
    assert (rework["closed_loops"], rework["loops_with_rework"], rework["share"]) == (1, 1, 1.0)


def test_worked_loop_open_loop_two_is_wip_not_a_statistic(crew: Crew) -> None:
    replay(crew)
    now = at(9, 18)
    result = selectors.wip(scope(crew, at(1, 0), at(10, 0), now=now))
    assert result["total"] == 1
    item = result["items"][0]
    assert (item["stage"], item["loop"], item["age"], item["in_stage"]) == ("propose", 2, 6 * H, 6 * H)


def test_percentile_vectors() -> None:
    values = [3, 4, 4, 5, 5, 6, 6, 6, 7, 7]
    assert [selectors.percentile(values, p) for p in (50, 85, 95)] == [5, 7, 7]
    assert [selectors.percentile([10], p) for p in (50, 85, 95)] == [10, 10, 10]
    assert selectors.percentile([], 50) is None


def test_rolling_window_rule() -> None:
    assert [selectors.rolling_window(n) for n in (1, 10, 25, 26, 30, 50, 100)] == [5, 5, 5, 5, 7, 11, 21]


def test_filters_apply(crew: Crew) -> None:
    replay(crew)
    period = scope(crew, at(1, 0), at(10, 0), filters=Filters(aarrr_stage="revenue"))
    assert selectors.cycle_time(period)["count"] == 0
