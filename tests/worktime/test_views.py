"""The working-hours page: members read it, leads change it, a missing year is warned about."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import Crew
from tests.factories import UserFactory
from worktime.models import CalendarDay, WorkCalendar

pytestmark = pytest.mark.django_db


def url(crew: Crew) -> str:
    return f"/teams/{crew.team.pk}/calendar/"


def test_member_sees_the_calendar_without_the_form(client: Client, crew: Crew) -> None:
    client.force_login(crew.pm)
    response = client.get(url(crew))
    assert response.status_code == 200
    assert b'name="start_time"' not in response.content


def test_outsider_gets_404(client: Client, crew: Crew) -> None:
    client.force_login(UserFactory())
    assert client.get(url(crew)).status_code == 404


def test_lead_page_warns_about_a_year_without_official_data(client: Client, crew: Crew) -> None:
    next_year = timezone.now().year + 1
    CalendarDay.objects.filter(team=crew.team, date__year=next_year).delete()
    client.force_login(crew.lead)
    response = client.get(url(crew))
    assert response.context["missing_years"] == [next_year]
    assert str(next_year).encode() in response.content


def test_lead_turns_the_calendar_on(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(
        url(crew),
        {
            "action": "week",
            "enabled": "on",
            "work_days": ["0", "1", "2", "3", "4"],
            "start_time": "09:30",
            "end_time": "18:30",
        },
    )
    calendar = WorkCalendar.objects.get(team=crew.team)
    assert response.status_code == 302
    assert (calendar.enabled, calendar.start_time) == (True, dt.time(9, 30))


def test_end_before_start_shows_an_error_and_saves_nothing(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(
        url(crew),
        {"action": "week", "enabled": "on", "work_days": ["0"], "start_time": "18:00", "end_time": "09:00"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["end_time"]
    assert WorkCalendar.objects.get(team=crew.team).enabled is False


def test_non_lead_cannot_post(client: Client, crew: Crew) -> None:
    client.force_login(crew.pm)
    response = client.post(url(crew), {"action": "days", "date": "2026-12-24", "is_workday": "0"})
    assert response.status_code == 403
    assert not CalendarDay.objects.filter(team=crew.team, date=dt.date(2026, 12, 24)).exists()


def test_lead_adds_a_holiday(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    client.post(url(crew), {"action": "days", "date": "2026-12-24", "is_workday": "0", "name": "团建"})
    day = CalendarDay.objects.get(team=crew.team, date=dt.date(2026, 12, 24))
    assert (day.is_workday, day.name, day.source) == (False, "团建", "manual")
