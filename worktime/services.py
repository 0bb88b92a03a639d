"""Writes for working-hours calendars. Leads change them; China's calendar is loaded by a service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import chinese_calendar
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput, NotFound
from roles.models import Team
from roles.permissions import ensure_may_manage

from .models import CalendarDay, WorkCalendar


def _check_lead(*, actor: User | None, team: Team) -> None:
    ensure_may_manage(user=actor, team=team, message=_("Only the team's leads may change its calendar."))


def calendar_create(*, team: Team) -> WorkCalendar:
    """The team's calendar: Monday to Friday, 09:00 to 18:00, off until a lead turns it on."""
    calendar, _created = WorkCalendar.objects.get_or_create(team=team)
    return calendar


def calendar_update(
    *,
    team: Team,
    actor: User | None,
    enabled: bool,
    work_days: Iterable[int],
    start_time: dt.time,
    end_time: dt.time,
) -> WorkCalendar:
    days = sorted(set(work_days))
    errors: dict[str, list[str]] = {}
    if any(not isinstance(day, int) or not 0 <= day <= 6 for day in days):
        errors["work_days"] = [_("Work days are numbers from 0 (Monday) to 6 (Sunday).")]
    if end_time <= start_time:
        errors["end_time"] = [_("Work must end after it starts.")]
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        _check_lead(actor=actor, team=team)
        calendar, _created = WorkCalendar.objects.select_for_update().get_or_create(team=team)
        calendar.enabled = enabled
        calendar.work_days = days
        calendar.start_time = start_time
        calendar.end_time = end_time
        calendar.save(update_fields=["enabled", "work_days", "start_time", "end_time"])
    return calendar


def calendar_day_set(
    *, team: Team, actor: User | None, date: dt.date, is_workday: bool, name: str = ""
) -> CalendarDay:
    """Add or change a dated exception; an edited China row becomes the team's own."""
    if len(name) > 100:
        raise InvalidInput({"name": [_("At most %(n)d characters.") % {"n": 100}]})
    with transaction.atomic():
        _check_lead(actor=actor, team=team)
        day, _created = CalendarDay.objects.update_or_create(
            team=team,
            date=date,
            defaults={"is_workday": is_workday, "name": name.strip(), "source": CalendarDay.Source.MANUAL},
        )
    return day


def calendar_day_remove(*, team: Team, actor: User | None, date: dt.date) -> None:
    with transaction.atomic():
        _check_lead(actor=actor, team=team)
        deleted, _rows = CalendarDay.objects.filter(team=team, date=date).delete()
        if not deleted:
            raise NotFound()


# Stored rows are read by everyone in the team, whatever their language: names carry both.
CHINESE_HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}


def _bilingual(name: str) -> str:
    chinese = CHINESE_HOLIDAY_NAMES.get(str(name))
    return f"{chinese} {name}" if chinese else str(name)


def china_years_covered() -> list[int]:
    """The years for which the installed chinesecalendar has official data."""
    return sorted(
        {day.year for day in chinese_calendar.holidays} | {day.year for day in chinese_calendar.workdays}
    )


def calendar_load_china(*, team: Team, years: Iterable[int] | None = None) -> int:
    """Store China's official holidays that fall on weekdays and its make-up workdays on weekends as
    editable rows. Days the team entered by hand are kept. Returns how many rows were written."""
    covered = set(china_years_covered())
    wanted = covered if years is None else covered & set(years)
    rows: dict[dt.date, tuple[bool, str]] = {}
    for day, name in chinese_calendar.holidays.items():
        if day.year in wanted and day.weekday() < 5:
            rows[day] = (False, _bilingual(name))
    for day, name in chinese_calendar.workdays.items():
        if day.year in wanted and day.weekday() >= 5:
            rows[day] = (True, f"调休补班 Make-up workday · {_bilingual(name)}")
    with transaction.atomic():
        manual = set(
            CalendarDay.objects.filter(
                team=team, source=CalendarDay.Source.MANUAL, date__in=list(rows)
            ).values_list("date", flat=True)
        )
        CalendarDay.objects.filter(team=team, source=CalendarDay.Source.CHINA, date__year__in=wanted).delete()
        CalendarDay.objects.bulk_create(
            CalendarDay(team=team, date=day, is_workday=worked, name=name, source=CalendarDay.Source.CHINA)
            for day, (worked, name) in sorted(rows.items())
            if day not in manual
        )
    return len(rows) - len(manual)
