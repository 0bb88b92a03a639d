from __future__ import annotations

from roles.models import Team

from .hours import CalendarDef
from .models import CalendarDay, WorkCalendar


def calendar_definition(*, team: Team) -> CalendarDef | None:
    """The team's working-hours calendar, or None when SLAs count calendar time (two queries)."""
    calendar = WorkCalendar.objects.filter(team_id=team.pk, enabled=True).first()
    if calendar is None:
        return None
    exceptions = dict(CalendarDay.objects.filter(team_id=team.pk).values_list("date", "is_workday"))
    return CalendarDef(
        time_zone=team.time_zone,
        work_days=frozenset(calendar.work_days),
        start=calendar.start_time,
        end=calendar.end_time,
        exceptions=exceptions,
    )


def calendar_years_missing(*, team: Team, years: list[int]) -> list[int]:
    """Years among `years` for which the team has no China calendar rows (plain weekdays apply)."""
    covered = set(
        CalendarDay.objects.filter(team_id=team.pk, source=CalendarDay.Source.CHINA, date__year__in=years)
        .values_list("date__year", flat=True)
        .distinct()
    )
    return [year for year in years if year not in covered]
