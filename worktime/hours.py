"""Working time, as pure functions over a calendar definition (METRICS.md, "Working-time variant").

A calendar is a team's week (which weekdays are worked, from when to when, in the team's time zone) plus
dated exceptions that override the week: a holiday is not worked, a make-up workday (调休补班) is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class CalendarDef:
    time_zone: str
    work_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday is 0
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(18, 0)
    exceptions: Mapping[dt.date, bool] = field(default_factory=dict)  # date -> is it worked

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_workday(self, day: dt.date) -> bool:
        if day in self.exceptions:
            return self.exceptions[day]
        return day.weekday() in self.work_days

    def window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The working hours of a day as aware datetimes, or None when the day is not worked."""
        if not self.is_workday(day) or self.end <= self.start:
            return None
        zone = self.zone
        return dt.datetime.combine(day, self.start, zone), dt.datetime.combine(day, self.end, zone)


def working_seconds(start: dt.datetime, end: dt.datetime, calendar: CalendarDef) -> float:
    """Seconds of [start, end) that fall inside working hours."""
    if end <= start:
        return 0.0
    zone = calendar.zone
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    total = 0.0
    while day <= last:
        window = calendar.window(day)
        if window is not None:
            overlap = min(end, window[1]) - max(start, window[0])
            total += max(overlap.total_seconds(), 0.0)
        day += dt.timedelta(days=1)
    return total


def add_working_seconds(
    start: dt.datetime, seconds: float, calendar: CalendarDef, *, max_days: int = 3660
) -> dt.datetime | None:
    """The moment at which `seconds` of working time have passed since `start`; None if the calendar
    has no working hours within `max_days` (a calendar with no work days)."""
    zone = calendar.zone
    remaining = seconds
    day = start.astimezone(zone).date()
    for _ in range(max_days):
        window = calendar.window(day)
        if window is not None:
            begin = max(start, window[0])
            available = (window[1] - begin).total_seconds()
            if available > 0:
                if remaining <= available:
                    return begin + dt.timedelta(seconds=remaining)
                remaining -= available
        day += dt.timedelta(days=1)
    return None
