"""The data loop's pure rules: periods, watch conditions, before/after and goal progress."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from dataloop import rules


def days(start: dt.date, values: list[str]) -> list[tuple[dt.date, D]]:
    return [(start + dt.timedelta(days=i), D(v)) for i, v in enumerate(values)]


MONDAY = dt.date(2026, 3, 2)


def test_period_start_of_week_is_monday_and_of_month_the_first() -> None:
    assert rules.period_start(dt.date(2026, 3, 8), "week") == MONDAY
    assert rules.period_start(dt.date(2026, 3, 31), "month") == dt.date(2026, 3, 1)
    assert rules.next_period(dt.date(2026, 12, 1), "month") == dt.date(2027, 1, 1)
    assert rules.next_period(dt.date(2026, 1, 1), "month") == dt.date(2026, 2, 1)


def test_period_values_average_within_a_week() -> None:
    rows = days(MONDAY, ["10", "20", "30", "40", "50", "60", "70", "100"])
    assert rules.period_values(rows, "week") == [(MONDAY, D(40)), (MONDAY + dt.timedelta(days=7), D(100))]


def test_streak_of_n_minus_one_days_does_not_fire() -> None:
    series = days(MONDAY, ["4", "6", "6"])
    assert (
        rules.firing_streak(series, comparison="gt", threshold=D(5), periods=3, period="day", after=None)
        is None
    )


def test_streak_of_n_days_fires_with_its_dates_and_values() -> None:
    series = days(MONDAY, ["4", "6", "6.5", "7"])
    streak = rules.firing_streak(series, comparison="gt", threshold=D(5), periods=3, period="day", after=None)
    assert streak == rules.Streak(
        start=MONDAY + dt.timedelta(days=1), end=MONDAY + dt.timedelta(days=3), values=(D(6), D("6.5"), D(7))
    )


def test_a_missing_day_breaks_the_streak() -> None:
    series = [(MONDAY, D(6)), (MONDAY + dt.timedelta(days=2), D(6)), (MONDAY + dt.timedelta(days=3), D(6))]
    assert (
        rules.firing_streak(series, comparison="gt", threshold=D(5), periods=3, period="day", after=None)
        is None
    )


def test_streak_overlapping_the_last_firing_does_not_fire_again() -> None:
    series = days(MONDAY, ["6", "6", "6", "6"])
    fired_through = MONDAY + dt.timedelta(days=2)
    assert (
        rules.firing_streak(
            series, comparison="gt", threshold=D(5), periods=3, period="day", after=fired_through
        )
        is None
    )
    longer = days(MONDAY, ["6"] * 6)
    streak = rules.firing_streak(
        longer, comparison="gt", threshold=D(5), periods=3, period="day", after=fired_through
    )
    assert streak is not None and streak.start == MONDAY + dt.timedelta(days=3)


def test_boundaries_of_each_comparison() -> None:
    assert rules.holds("lt", D(25), D(25), None) is False
    assert rules.holds("lte", D(25), D(25), None) is True
    assert rules.holds("gt", D(5), D(5), None) is False
    assert rules.holds("gte", D(5), D(5), None) is True
    assert rules.holds("rises", D(5), None, D(4)) is True
    assert rules.holds("rises", D(5), None, D(5)) is False
    assert rules.holds("falls", D(3), D(1), D(5)) is True
    assert rules.holds("falls", D(4), D(1), D(5)) is False


def test_churn_rising_three_months_needs_four_monthly_values() -> None:
    months = [dt.date(2026, m, 1) for m in (1, 2, 3, 4)]
    rising = list(zip(months, [D("3.0"), D("3.2"), D("3.5"), D("3.9")], strict=True))
    streak = rules.firing_streak(
        rising, comparison="rises", threshold=None, periods=3, period="month", after=None
    )
    assert streak is not None and (streak.start, streak.end) == (months[1], months[3])
    assert (
        rules.firing_streak(
            rising[1:], comparison="rises", threshold=None, periods=3, period="month", after=None
        )
        is None
    )
    dipped = list(zip(months, [D("3.0"), D("3.2"), D("3.1"), D("3.9")], strict=True))
    assert (
        rules.firing_streak(dipped, comparison="rises", threshold=None, periods=3, period="month", after=None)
        is None
    )


def test_before_after_are_the_means_of_seven_days_each_side_the_launch_day_counting_as_after() -> None:
    launch = dt.date(2026, 3, 10)
    rows = days(launch - dt.timedelta(days=8), ["100"] + ["10"] * 7 + ["20"] * 7 + ["100"])
    reading = rules.before_after(rows, launch=launch)
    assert (reading.before, reading.after, reading.before_days, reading.after_days) == (D(10), D(20), 7, 7)
    assert reading.change == D(10)
    assert reading.relative == 1.0


def test_before_after_without_data_after_the_launch() -> None:
    launch = dt.date(2026, 3, 10)
    reading = rules.before_after(days(launch - dt.timedelta(days=3), ["8", "9", "10"]), launch=launch)
    assert (reading.before, reading.after, reading.change, reading.relative) == (D(9), None, None, None)


def test_goal_progress_from_baseline_to_target() -> None:
    assert rules.goal_progress(baseline=D(120), latest=D(160), target=D(200), direction="up") == 0.5
    assert rules.goal_progress(baseline=D(8), latest=D(5), target=D(2), direction="down") == 0.5
    assert rules.goal_progress(baseline=None, latest=D(150), target=D(200), direction="up") == 0.75
    assert rules.goal_progress(baseline=None, latest=D(4), target=D(2), direction="down") == 0.5
    assert rules.goal_progress(baseline=D(120), latest=None, target=D(200), direction="up") is None
