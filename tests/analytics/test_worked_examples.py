"""METRICS.md's worked examples, computed by the analytics selectors on the event log."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from analytics import selectors
from analytics.selectors import Filters, Scope
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from tests.workflows.test_worked_loop import at, replay
from workflows import services
from workflows.models import Requirement, Stage
from worktime import services as calendar_services

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


def _move(crew: Crew, requirement: Requirement, actor: Any, to: str, when: dt.datetime, **kw: Any) -> None:
    current = Requirement.objects.get(pk=requirement.pk).stage.slug
    services.requirement_transition(
        requirement_id=requirement.pk, actor=actor, from_stage=current, to_stage=to, at=when, **kw
    )


def test_reopen_example_counts_only_time_in_the_stage(crew: Crew) -> None:
    """Design 09:00→10:00, back to propose, design again 12:00→14:00: 3 h in design, not 5 h."""
    day = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    r = services.requirement_create(
        team=crew.team, actor=crew.ops, title="t", at=day.replace(hour=8), **READY_FIELDS
    )
    _move(crew, r, crew.ops, "design", day.replace(hour=9))
    _move(crew, r, crew.pm, "propose", day.replace(hour=10))
    _move(crew, r, crew.ops, "design", day.replace(hour=12))
    _move(crew, r, crew.lead, "close", day.replace(hour=14), outcome="done")
    stages = {
        row["stage"]: row
        for row in selectors.time_in_stage(scope(crew, day, day + dt.timedelta(days=1)))["stages"]
    }
    assert stages["design"]["total"] == 3 * H and stages["design"]["p50"] == 3 * H
    assert stages["propose"]["total"] == 3 * H


def test_working_hours_example(crew: Crew) -> None:
    """Mon–Fri 09:00–18:00: entered Friday 17:00, left Monday 10:00 → 2 working hours (65 h calendar)."""
    calendar_services.calendar_update(
        team=crew.team,
        actor=crew.lead,
        enabled=True,
        work_days=[0, 1, 2, 3, 4],
        start_time=dt.time(9),
        end_time=dt.time(18),
    )
    friday = dt.datetime(2026, 3, 6, 17, tzinfo=dt.UTC)
    r = services.requirement_create(team=crew.team, actor=crew.ops, title="t", at=friday, **READY_FIELDS)
    _move(crew, r, crew.lead, "close", friday + dt.timedelta(hours=65), outcome="done")
    period = (friday - dt.timedelta(days=1), friday + dt.timedelta(days=4))
    assert selectors.cycle_time(scope(crew, *period))["p50"] == 65 * H
    assert selectors.cycle_time(scope(crew, *period, working=True))["p50"] == 2 * H
    stages = selectors.time_in_stage(scope(crew, *period, working=True))["stages"]
    assert [(row["stage"], row["total"]) for row in stages] == [("propose", 2 * H)]


def test_cfd_day_boundary_follows_the_team_time_zone(crew: Crew) -> None:
    """An event at 2026-03-02 17:00 UTC is on 3 March in Shanghai (01:00) but on 2 March in UTC."""
    created = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    r = services.requirement_create(team=crew.team, actor=crew.ops, title="t", at=created, **READY_FIELDS)
    _move(crew, r, crew.ops, "design", dt.datetime(2026, 3, 2, 17, tzinfo=dt.UTC))

    def design_by_day(tz: str) -> dict[str, int]:
        crew.team.time_zone = tz
        zone = ZoneInfo(tz)
        start = dt.datetime(2026, 3, 1, tzinfo=zone)
        flow = selectors.cumulative_flow(
            Scope(teams=(crew.team,), start=start, end=start + dt.timedelta(days=3))
        )
        design = next(s["open"] for s in flow["stages"] if s["stage"] == "design")
        return dict(zip(flow["days"], design, strict=True))

    assert design_by_day("UTC") == {"2026-03-01": 0, "2026-03-02": 1, "2026-03-03": 1}
    assert design_by_day("Asia/Shanghai") == {"2026-03-01": 0, "2026-03-02": 0, "2026-03-03": 1}


def test_throughput_iso_week_boundary_in_the_team_time_zone(crew: Crew) -> None:
    """Sunday 2026-03-08 20:00 UTC is Monday 04:00 in Shanghai: ISO week 10 in UTC, week 11 there."""
    created = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    r = services.requirement_create(team=crew.team, actor=crew.ops, title="t", at=created, **READY_FIELDS)
    _move(crew, r, crew.lead, "close", dt.datetime(2026, 3, 8, 20, tzinfo=dt.UTC), outcome="done")

    def closing_week(tz: str) -> list[str]:
        crew.team.time_zone = tz
        start = dt.datetime(2026, 3, 2, tzinfo=ZoneInfo(tz))
        weeks = selectors.throughput(
            Scope(teams=(crew.team,), start=start, end=start + dt.timedelta(days=14))
        )
        return [w["week"] for w in weeks["weeks"] if w["close"]]

    assert closing_week("UTC") == ["2026-W10"]
    assert closing_week("Asia/Shanghai") == ["2026-W11"]


def test_control_chart_points_lines_and_rolling_average(crew: Crew) -> None:
    day = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    for i, hours in enumerate([3, 4, 4, 5, 5, 6, 6, 6, 7, 7]):
        r = services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"t{i}", at=day + dt.timedelta(days=i)
        )
        _move(crew, r, crew.lead, "close", day + dt.timedelta(days=i, hours=hours), outcome="done")
    chart = selectors.control_chart(scope(crew, day, day + dt.timedelta(days=12)))
    assert [p["cycle"] for p in chart["points"]] == [h * H for h in [3, 4, 4, 5, 5, 6, 6, 6, 7, 7]]
    assert (chart["p50"], chart["p85"], chart["window"]) == (5 * H, 7 * H, 5)
    # Window of 5 centred, cut at the ends: the first point averages 3, 4, 4.
    assert chart["points"][0]["rolling_average"] == round((3 + 4 + 4) / 3 * H)
    assert chart["points"][4]["rolling_average"] == round((4 + 5 + 5 + 6 + 6) / 5 * H)
