from __future__ import annotations

from roles.models import Team

from .hours import CalendarDef
from .models import CalendarDay, WorkCalendar


def calendar_definition(*, team: Team) -> CalendarDef | None:
    """The team's working-hours calendar, or None when SLAs count calendar time. One query: the
    enabled calendar joined to the team's dated exceptions (a row per exception, or one row without)."""
    rows = list(
        WorkCalendar.objects.filter(team_id=team.pk, enabled=True)
        .order_by()
        .values_list(
            "work_days",
            "start_time",
            "end_time",
            "team__calendar_days__date",
            "team__calendar_days__is_workday",
        )
    )
    if not rows:
        return None
    work_days, start, end, _date, _worked = rows[0]
    return CalendarDef(
        time_zone=team.time_zone,
        work_days=frozenset(work_days),
        start=start,
        end=end,
        exceptions={date: worked for *_week, date, worked in rows if date is not None},
    )


def calendar_years_missing(*, team: Team, years: list[int]) -> list[int]:
    """Years among `years` for which the team has no China calendar rows (plain weekdays apply)."""
    covered = set(
        CalendarDay.objects.filter(team_id=team.pk, source=CalendarDay.Source.CHINA, date__year__in=years)
        .values_list("date__year", flat=True)
        .distinct()
    )
    return [year for year in years if year not in covered]
