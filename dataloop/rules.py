"""Pure rules of the data loop: periods, watch conditions, before/after readings and goal progress.
No queries here; services and selectors feed them rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

DAY = "day"
WEEK = "week"
MONTH = "month"

# Days either side of the launch date whose observations give the before and after values.
BEFORE_AFTER_DAYS = 7


def period_start(day: dt.date, period: str) -> dt.date:
    if period == WEEK:
        return day - dt.timedelta(days=day.weekday())
    if period == MONTH:
        return day.replace(day=1)
    return day


def next_period(start: dt.date, period: str) -> dt.date:
    if period == WEEK:
        return start + dt.timedelta(days=7)
    if period == MONTH:
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start + dt.timedelta(days=1)


def window_start(latest: dt.date, *, period: str, periods: int) -> dt.date:
    """The first day a watch needs to read, its metric's latest day being `latest`: enough periods to
    decide the latest streak (the count, one before it for rises / falls, and one spare), no more. The
    streak must end at the latest period and be consecutive, so older days cannot change the result."""
    span = {WEEK: 7, MONTH: 31}.get(period, 1) * (periods + 2)
    return period_start(latest - dt.timedelta(days=span), period)


def period_values(rows: Iterable[tuple[dt.date, Decimal]], period: str) -> list[tuple[dt.date, Decimal]]:
    """One value per period, oldest first: a day's value, or the mean of a week's or a month's values."""
    buckets: dict[dt.date, list[Decimal]] = {}
    for day, value in rows:
        buckets.setdefault(period_start(day, period), []).append(Decimal(value))
    return [(start, sum(values, Decimal(0)) / len(values)) for start, values in sorted(buckets.items())]


def holds(comparison: str, value: Decimal, threshold: Decimal | None, previous: Decimal | None) -> bool:
    """Whether one period meets the condition. rises / falls compare with the period before, by more
    than the threshold (0 when none is set); the first period of a series has nothing to compare with."""
    limit = Decimal(threshold) if threshold is not None else Decimal(0)
    if comparison == "rises":
        return previous is not None and value - previous > limit
    if comparison == "falls":
        return previous is not None and previous - value > limit
    if threshold is None:
        return False
    return {
        "lt": value < limit,
        "lte": value <= limit,
        "gt": value > limit,
        "gte": value >= limit,
    }[comparison]


@dataclass(frozen=True)
class Streak:
    start: dt.date  # first period of the streak (its start date)
    end: dt.date  # last period of the streak
    values: tuple[Decimal, ...]


def firing_streak(
    values: Sequence[tuple[dt.date, Decimal]],
    *,
    comparison: str,
    threshold: Decimal | None,
    periods: int,
    period: str,
    after: dt.date | None,
) -> Streak | None:
    """The streak that makes a watch fire now, or None.

    The last `periods` periods with data must be consecutive (no period missing between them), each must
    meet the condition, and all must come after `after` (the last period of the streak that fired the
    watch before), so the same data never fires a watch twice and a watch fires again only when the
    condition has held anew for the whole count."""
    if periods < 1 or len(values) < periods:
        return None
    tail = values[-periods:]
    start_index = len(values) - periods
    previous = values[start_index - 1] if start_index > 0 else None
    for index, (start, value) in enumerate(tail):
        prior = tail[index - 1] if index else previous
        if index and next_period(tail[index - 1][0], period) != start:
            return None
        if comparison in ("rises", "falls") and (prior is None or next_period(prior[0], period) != start):
            return None
        if not holds(comparison, value, threshold, prior[1] if prior else None):
            return None
    if after is not None and tail[0][0] <= after:
        return None
    return Streak(start=tail[0][0], end=tail[-1][0], values=tuple(v for _d, v in tail))


@dataclass(frozen=True)
class BeforeAfter:
    before: Decimal | None
    after: Decimal | None
    before_days: int  # how many days of data each side had
    after_days: int

    @property
    def change(self) -> Decimal | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        change = self.change
        if change is None or not self.before:
            return None
        return float(change / abs(self.before))


def before_after(
    rows: Iterable[tuple[dt.date, Decimal]], *, launch: dt.date, days: int = BEFORE_AFTER_DAYS
) -> BeforeAfter:
    """Mean of the daily values in the `days` days before the launch date, and in the `days` days from
    it (the launch day counts as after)."""
    before = [Decimal(v) for day, v in rows_in(rows, launch - dt.timedelta(days=days), launch)]
    after = [Decimal(v) for day, v in rows_in(rows, launch, launch + dt.timedelta(days=days))]
    return BeforeAfter(
        before=sum(before, Decimal(0)) / len(before) if before else None,
        after=sum(after, Decimal(0)) / len(after) if after else None,
        before_days=len(before),
        after_days=len(after),
    )


def rows_in(
    rows: Iterable[tuple[dt.date, Decimal]], start: dt.date, end: dt.date
) -> list[tuple[dt.date, Decimal]]:
    """Rows with start <= day < end."""
    return [(day, value) for day, value in rows if start <= day < end]


def goal_progress(
    *, baseline: Decimal | None, latest: Decimal | None, target: Decimal, direction: str
) -> float | None:
    """Share of the way from the baseline (the value when the goal started) to the target, 0…1 and
    beyond when exceeded. Without a baseline: latest / target (or target / latest when lower is better)."""
    if latest is None:
        return None
    if baseline is not None and baseline != target:
        return float((latest - baseline) / (target - baseline))
    if baseline is not None:
        return 1.0
    if direction == "down":
        return float(target / latest) if latest else None
    return float(latest / target) if target else None
