"""Working time without a database, on the examples of METRICS.md and issue 4."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from worktime.hours import CalendarDef, add_working_seconds, working_seconds

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = 3600


def at(y: int, m: int, d: int, h: int, minute: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=tz)


def test_friday_evening_to_monday_morning_is_two_working_hours() -> None:
    calendar = CalendarDef(time_zone="UTC")
    # Friday 2026-03-06 17:00 → Monday 2026-03-09 10:00: 65 calendar hours.
    assert working_seconds(at(2026, 3, 6, 17), at(2026, 3, 9, 10), calendar) == 2 * HOUR


def test_make_up_saturday_counts_as_a_working_day() -> None:
    calendar = CalendarDef(time_zone="Asia/Shanghai", exceptions={dt.date(2026, 2, 28): True})
    start = at(2026, 2, 27, 17, tz=SHANGHAI)
    end = at(2026, 3, 2, 10, tz=SHANGHAI)
    assert working_seconds(start, end, calendar) == (1 + 9 + 1) * HOUR


def test_holiday_on_a_weekday_is_not_worked() -> None:
    calendar = CalendarDef(time_zone="Asia/Shanghai", exceptions={dt.date(2026, 10, 1): False})
    start = at(2026, 9, 30, 17, tz=SHANGHAI)
    end = at(2026, 10, 2, 10, tz=SHANGHAI)
    assert working_seconds(start, end, calendar) == (1 + 1) * HOUR


def test_interval_inside_one_working_day() -> None:
    calendar = CalendarDef(time_zone="UTC")
    assert working_seconds(at(2026, 3, 4, 10), at(2026, 3, 4, 12, 30), calendar) == 2.5 * HOUR


def test_interval_outside_working_hours_is_zero() -> None:
    calendar = CalendarDef(time_zone="UTC")
    assert working_seconds(at(2026, 3, 4, 19), at(2026, 3, 5, 8), calendar) == 0


def test_reversed_interval_is_zero() -> None:
    calendar = CalendarDef(time_zone="UTC")
    assert working_seconds(at(2026, 3, 5, 12), at(2026, 3, 4, 12), calendar) == 0


def test_team_time_zone_cuts_the_day() -> None:
    # 09:00–18:00 Shanghai is 01:00–10:00 UTC.
    calendar = CalendarDef(time_zone="Asia/Shanghai")
    assert working_seconds(at(2026, 3, 4, 0), at(2026, 3, 4, 12), calendar) == 9 * HOUR


def test_adding_eleven_working_hours_from_friday_17_lands_monday_10() -> None:
    calendar = CalendarDef(time_zone="Asia/Shanghai", exceptions={dt.date(2026, 2, 28): True})
    due = add_working_seconds(at(2026, 2, 27, 17, tz=SHANGHAI), 11 * HOUR, calendar)
    assert due == at(2026, 3, 2, 10, tz=SHANGHAI)


def test_adding_from_outside_hours_starts_at_the_next_opening() -> None:
    calendar = CalendarDef(time_zone="UTC")
    assert add_working_seconds(at(2026, 3, 6, 20), 2 * HOUR, calendar) == at(2026, 3, 9, 11)


def test_a_calendar_without_work_days_never_reaches_the_deadline() -> None:
    calendar = CalendarDef(time_zone="UTC", work_days=frozenset())
    assert add_working_seconds(at(2026, 3, 6, 20), HOUR, calendar, max_days=30) is None


def test_adding_then_measuring_gives_back_the_same_time() -> None:
    calendar = CalendarDef(time_zone="Asia/Shanghai", exceptions={dt.date(2026, 2, 28): True})
    start = at(2026, 2, 20, 15, 30, tz=SHANGHAI)
    due = add_working_seconds(start, 48 * HOUR, calendar)
    assert due is not None
    assert working_seconds(start, due, calendar) == 48 * HOUR
