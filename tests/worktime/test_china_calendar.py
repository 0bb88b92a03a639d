"""China's official calendar: loaded from chinesecalendar, cross-checked against the holidays package."""

from __future__ import annotations

import datetime as dt

import chinese_calendar
import holidays
import pytest

from tests.factories import make_team
from worktime.models import CalendarDay
from worktime.services import calendar_load_china, china_years_covered


def test_every_holiday_the_holidays_package_knows_is_a_day_off_in_chinesecalendar() -> None:
    years = [year for year in china_years_covered() if year >= 2020]
    disagreements = [
        (day, name)
        for day, name in holidays.China(years=years).items()
        if day.year in years and chinese_calendar.is_workday(day)
    ]
    assert disagreements == []


def test_chinesecalendar_covers_the_current_year() -> None:
    assert dt.date.today().year in china_years_covered()


@pytest.mark.django_db
def test_loading_keeps_the_2026_make_up_saturday_and_spring_festival() -> None:
    team = make_team()
    calendar_load_china(team=team, years=[2026])
    assert CalendarDay.objects.get(team=team, date=dt.date(2026, 2, 28)).is_workday is True
    assert CalendarDay.objects.get(team=team, date=dt.date(2026, 2, 17)).is_workday is False


@pytest.mark.django_db
def test_loading_again_keeps_a_day_the_team_edited() -> None:
    team = make_team()
    CalendarDay.objects.filter(team=team, date=dt.date(2026, 10, 5)).delete()
    CalendarDay.objects.create(
        team=team, date=dt.date(2026, 10, 5), is_workday=True, name="on call", source="manual"
    )
    calendar_load_china(team=team, years=[2026])
    assert CalendarDay.objects.get(team=team, date=dt.date(2026, 10, 5)).name == "on call"
