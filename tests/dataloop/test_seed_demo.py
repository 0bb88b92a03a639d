"""seed_demo gives the demo team a data loop: metrics with six months of observations, tracking plans and
conclusions on its loops, watches that have fired, and goals carried out by its requirements."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.utils.translation import gettext as _

from dataloop.models import Goal, Metric, MetricWatch, Observation, WatchFiring
from dataloop.presets import DEFAULT_METRICS
from dataloop.selectors import goal_list_for_team
from roles.models import Team
from workflows.demo import seed_demo
from workflows.models import IterationLoop, Requirement, StageEvent, TrackingEvent

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 31, 10, 0, tzinfo=dt.UTC)
YESTERDAY = dt.date(2026, 3, 30)  # in the team's time zone (Asia/Shanghai), NOW is the evening of 31 March
DAILY = ("DAU", "MAU", "DAU/MAU", "D1 retention", "D7 retention", "Conversion rate", "ARPU", "Complaint rate")


@pytest.fixture(scope="class")
def team(django_db_setup: None, django_db_blocker: Any) -> Iterator[Team]:
    """The demo seeded once for the whole class and rolled back after it."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield seed_demo(now=NOW)
        transaction.set_rollback(True)


def whole_product(team: Team, name: str) -> list[tuple[dt.date, Decimal]]:
    return list(
        Observation.objects.filter(metric__team=team, metric__name=_(name), segment="")
        .order_by("date")
        .values_list("date", "value")
    )


def analysed_closed_loops(team: Team) -> list[IterationLoop]:
    """Closed loops that went through analyze."""
    return list(
        IterationLoop.objects.filter(
            requirement__team=team, closed_at__isnull=False, events__to_stage="analyze"
        )
        .distinct()
        .select_related("requirement")
        .annotate(
            tracking_total=Count("tracking_events", distinct=True),
            tracking_verified=Count(
                "tracking_events", filter=Q(tracking_events__status="verified"), distinct=True
            ),
        )
        .order_by("requirement__number", "number")
    )


def observation_rows() -> list[tuple[object, ...]]:
    return list(
        Observation.objects.order_by("metric__name", "date", "segment").values_list(
            "metric__name", "date", "segment", "value", "source", "loop__requirement__key", "loop__number"
        )
    )


class TestTheDemoDataLoop:
    def test_the_catalogue_holds_the_default_metrics_and_every_target_metric(self, team: Team) -> None:
        names = set(Metric.objects.filter(team=team).values_list("name", flat=True))
        targets = set(Requirement.objects.filter(team=team).values_list("target_metric", flat=True))
        assert {_(name) for name, _unit, _direction, _text in DEFAULT_METRICS} <= names
        assert targets <= names

    def test_daily_metrics_have_a_value_every_day_for_180_days_up_to_yesterday(self, team: Team) -> None:
        spans = {
            row["metric__name"]: (row["n"], row["first"], row["last"])
            for row in Observation.objects.filter(
                metric__team=team, segment="", metric__name__in=[_(name) for name in DAILY]
            )
            .values("metric__name")
            .annotate(n=Count("id"), first=Min("date"), last=Max("date"))
        }
        first = YESTERDAY - dt.timedelta(days=179)
        assert spans == {_(name): (180, first, YESTERDAY) for name in DAILY}

    def test_nps_is_read_weekly_and_churn_monthly(self, team: Team) -> None:
        nps = whole_product(team, "NPS")
        churn = whole_product(team, "Churn rate")
        assert len(nps) >= 20
        assert {day.weekday() for day, _value in nps} == {0}
        assert [day for day, _value in churn] == [dt.date(2025, month, 1) for month in range(9, 13)] + [
            dt.date(2026, 1, 1),
            dt.date(2026, 2, 1),
        ]

    def test_churn_rose_the_last_three_months_and_complaints_passed_five_percent_three_days_running(
        self, team: Team
    ) -> None:
        churn = [value for _day, value in whole_product(team, "Churn rate")]
        complaints = whole_product(team, "Complaint rate")
        assert churn[-4] < churn[-3] < churn[-2] < churn[-1]
        assert [day for day, _value in complaints[-3:]] == [
            YESTERDAY - dt.timedelta(days=n) for n in (2, 1, 0)
        ]
        assert all(value > 5 for _day, value in complaints[-3:])
        assert all(value <= 5 for _day, value in complaints[:-3])

    def test_the_order_goal_metric_trends_up_from_about_120_to_about_170(self, team: Team) -> None:
        orders = [value for _day, value in whole_product(team, "日订单量")]
        assert len(orders) == 180
        assert 110 <= sum(orders[:7]) / 7 <= 130
        assert 160 <= sum(orders[-7:]) / 7 <= 185

    def test_some_observations_have_a_segment_and_some_are_linked_to_a_loop(self, team: Team) -> None:
        observations = Observation.objects.filter(metric__team=team)
        assert set(observations.exclude(segment="").values_list("segment", flat=True)) == {"iOS", "Android"}
        assert observations.filter(loop__isnull=False).count() >= 100

    def test_one_observation_went_through_the_service(self, team: Team) -> None:
        recorded = Observation.objects.filter(metric__team=team, source="manual")
        assert list(recorded.values_list("recorded_by__username", flat=True)) == ["wang.fang"]

    def test_every_closed_loop_that_went_through_analyze_has_a_verified_tracking_plan(
        self, team: Team
    ) -> None:
        loops = analysed_closed_loops(team)
        unverified = [
            (loop.requirement.key, loop.number)
            for loop in loops
            if not 2 <= loop.tracking_total <= 4 or loop.tracking_verified != loop.tracking_total
        ]
        assert len(loops) >= 30
        assert unverified == []

    def test_every_closed_loop_that_went_through_analyze_has_a_conclusion_with_the_three_checks(
        self, team: Team
    ) -> None:
        loops = analysed_closed_loops(team)
        checks = {(loop.verdict, loop.core_metric_moved) for loop in loops}
        incomplete = [
            (loop.requirement.key, loop.number)
            for loop in loops
            if not loop.conclusion
            or None in (loop.core_metric_moved, loop.behaviour_moved, loop.feedback_positive)
            or loop.metric_name != loop.requirement.target_metric
            or loop.metric_before is None
            or loop.metric_after is None
        ]
        assert incomplete == []
        assert checks == {("improved", True), ("flat", False), ("worse", False)}

    def test_improved_loops_moved_their_metric_the_right_way(self, team: Team) -> None:
        directions = dict(Metric.objects.filter(team=team).values_list("name", "direction"))
        loops = [loop for loop in analysed_closed_loops(team) if loop.verdict == "improved"]
        wrong_way = [
            (loop.requirement.key, loop.number, loop.metric_before, loop.metric_after)
            for loop in loops
            if (loop.metric_after - loop.metric_before) * (1 if directions[loop.metric_name] == "up" else -1)
            <= 0
        ]
        assert len(loops) >= 20
        assert wrong_way == []

    def test_requirements_sitting_in_instrument_show_an_unfinished_tracking_plan(self, team: Team) -> None:
        plans = [
            list(
                TrackingEvent.objects.filter(loop__requirement=r, loop__number=r.loop_number).values_list(
                    "status", flat=True
                )
            )
            for r in Requirement.objects.filter(team=team, closed_at__isnull=True, stage__slug="instrument")
        ]
        assert len(plans) == 3
        assert all(2 <= len(statuses) <= 4 and "planned" in statuses for statuses in plans)
        assert any("implemented" in statuses for statuses in plans)

    def test_a_goal_has_at_least_three_strategies_each_carried_by_requirements(self, team: Team) -> None:
        goal = Goal.objects.get(team=team, title="日订单达到200单")
        strategies = list(goal.strategies.annotate(n=Count("requirements")).values_list("title", "n"))
        assert goal.first_level_metrics.count() == 5
        assert len(strategies) >= 3
        assert all(n >= 1 for _title, n in strategies)

    def test_goal_progress_reads_from_the_observations(self, team: Team) -> None:
        progress = {goal.title: goal.progress for goal in goal_list_for_team(team=team)}
        assert 0.2 < progress["日订单达到200单"] < 0.9

    def test_the_complaint_and_churn_watches_fired_and_opened_requirements(self, team: Team) -> None:
        watches = MetricWatch.objects.filter(team=team).select_related("metric")
        fired = {
            firing.watch.metric.name: StageEvent.objects.get(
                requirement=firing.requirement, kind="create"
            ).origin
            == f"watch:{firing.watch_id}"
            for firing in WatchFiring.objects.filter(watch__in=watches).select_related("watch__metric")
        }
        assert watches.count() == 3
        assert fired[_("Complaint rate")] is True
        assert fired[_("Churn rate")] is True

    def test_a_watch_requirement_carries_a_strategy(self, team: Team) -> None:
        opened = WatchFiring.objects.filter(watch__team=team).values_list("requirement", flat=True)
        assert Goal.objects.filter(team=team, strategies__requirements__in=opened).exists()


def test_the_same_now_gives_the_same_observations() -> None:
    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        seed_demo(now=NOW)
        first = observation_rows()
        raise RolledBack
    assert Observation.objects.count() == 0
    seed_demo(now=NOW)
    assert observation_rows() == first
