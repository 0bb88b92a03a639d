"""The inbox, notification settings, webhooks, deliveries and calendar over the API."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from notifications.models import Delivery, Notification, NotificationSettings, WebhookEndpoint
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, make_team
from workflows import services
from worktime.models import CalendarDay, WorkCalendar

pytestmark = pytest.mark.django_db


def client_for(user: object) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def move_to_design(crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="首单红包", **READY_FIELDS
    )
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )


def test_inbox_lists_my_notifications_and_counts_unread(crew: Crew) -> None:
    move_to_design(crew)
    client = client_for(crew.pm)
    inbox = client.get("/api/notifications/").json()["results"]
    assert [n["kind"] for n in inbox] == ["your_turn"]
    assert "GROW-1" in inbox[0]["text"]
    assert client.get("/api/notifications/unread-count/").json() == {"unread": 1}


def test_inbox_is_private(crew: Crew) -> None:
    move_to_design(crew)
    assert client_for(crew.analyst).get("/api/notifications/").json()["results"] == []


def test_mark_all_read(crew: Crew) -> None:
    move_to_design(crew)
    response = client_for(crew.pm).post("/api/notifications/mark-read/", {"all": True}, format="json")
    assert response.json() == {"unread": 0}
    assert Notification.objects.get(recipient=crew.pm).read_at is not None


def test_marking_someone_elses_notification_is_not_found_and_changes_nothing(crew: Crew) -> None:
    move_to_design(crew)
    theirs = Notification.objects.get(recipient=crew.pm)
    response = client_for(crew.analyst).post(
        "/api/notifications/mark-read/", {"ids": [theirs.pk]}, format="json"
    )
    theirs.refresh_from_db()
    assert response.status_code == 404
    assert theirs.read_at is None


def test_settings_default_to_every_kind_by_email(crew: Crew) -> None:
    body = client_for(crew.pm).get("/api/me/notification-settings/").json()
    assert "stage_overdue" in body["email_kinds"]
    assert body["quiet_start"] is None


def test_settings_refuse_half_quiet_hours(crew: Crew) -> None:
    response = client_for(crew.pm).put(
        "/api/me/notification-settings/",
        {
            "email_kinds": [],
            "quiet_start": "22:00",
            "quiet_end": None,
            "time_zone": "Asia/Shanghai",
            "language": "",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "quiet_end" in response.json()
    assert not NotificationSettings.objects.exists()


def test_settings_saved(crew: Crew) -> None:
    body = {
        "email_kinds": ["escalation"],
        "quiet_start": "22:00:00",
        "quiet_end": "08:00:00",
        "time_zone": "Asia/Shanghai",
        "language": "zh-hans",
    }
    response = client_for(crew.pm).put("/api/me/notification-settings/", body, format="json")
    assert response.json() == body


def test_lead_adds_a_webhook_whose_secret_is_never_shown(crew: Crew) -> None:
    response = client_for(crew.lead).post(
        f"/api/teams/{crew.team.pk}/webhooks/",
        {
            "name": "增长群",
            "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "format": "dingtalk",
            "secret": "SEC123",
            "kinds": ["stage_overdue", "escalation"],
        },
        format="json",
    )
    assert response.status_code == 201
    assert "secret" not in response.json()
    assert response.json()["has_secret"] is True
    assert WebhookEndpoint.objects.get().secret == "SEC123"


def test_webhooks_are_for_leads_only(crew: Crew) -> None:
    response = client_for(crew.pm).post(
        f"/api/teams/{crew.team.pk}/webhooks/",
        {"name": "x", "url": "https://example.com/hook", "format": "generic", "kinds": []},
        format="json",
    )
    assert response.status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_webhooks_of_another_team_are_not_found(crew: Crew) -> None:
    other = make_team(key_prefix="SHOP")
    assert client_for(crew.lead).get(f"/api/teams/{other.pk}/webhooks/").status_code == 404


def test_webhook_with_unknown_format_is_refused(crew: Crew) -> None:
    response = client_for(crew.lead).post(
        f"/api/teams/{crew.team.pk}/webhooks/",
        {"name": "x", "url": "https://example.com/hook", "format": "telegram", "kinds": []},
        format="json",
    )
    assert response.status_code == 400
    assert "format" in response.json()


def test_lead_sees_failed_deliveries(crew: Crew) -> None:
    move_to_design(crew)
    Delivery.objects.update(status=Delivery.Status.FAILED, last_error="SMTP 550")
    response = client_for(crew.lead).get(f"/api/teams/{crew.team.pk}/deliveries/?status=failed")
    assert [d["last_error"] for d in response.json()["results"]] == ["SMTP 550"]
    assert client_for(crew.pm).get(f"/api/teams/{crew.team.pk}/deliveries/").status_code == 403


def test_new_team_has_china_holidays_loaded_and_the_calendar_off(crew: Crew) -> None:
    body = client_for(crew.pm).get(f"/api/teams/{crew.team.pk}/calendar/").json()
    assert body["enabled"] is False
    assert body["work_days"] == [0, 1, 2, 3, 4]
    assert CalendarDay.objects.filter(team=crew.team, source="china").exists()


def test_calendar_warns_about_years_without_official_data(crew: Crew) -> None:
    CalendarDay.objects.filter(team=crew.team, date__year=dt.date.today().year + 1).delete()
    body = client_for(crew.lead).get(f"/api/teams/{crew.team.pk}/calendar/").json()
    assert dt.date.today().year + 1 in body["missing_years"]


def test_lead_turns_working_hours_on(crew: Crew) -> None:
    response = client_for(crew.lead).put(
        f"/api/teams/{crew.team.pk}/calendar/",
        {"enabled": True, "work_days": [0, 1, 2, 3, 4, 5], "start_time": "10:00", "end_time": "19:00"},
        format="json",
    )
    calendar = WorkCalendar.objects.get(team=crew.team)
    assert response.status_code == 200
    assert (calendar.enabled, calendar.work_days, calendar.start_time) == (
        True,
        [0, 1, 2, 3, 4, 5],
        dt.time(10),
    )


def test_calendar_that_ends_before_it_starts_is_refused(crew: Crew) -> None:
    response = client_for(crew.lead).put(
        f"/api/teams/{crew.team.pk}/calendar/",
        {"enabled": True, "work_days": [0], "start_time": "18:00", "end_time": "09:00"},
        format="json",
    )
    assert response.status_code == 400
    assert WorkCalendar.objects.get(team=crew.team).enabled is False


def test_only_leads_change_the_calendar(crew: Crew) -> None:
    response = client_for(crew.ops).post(
        f"/api/teams/{crew.team.pk}/calendar/days/",
        {"date": "2026-12-24", "is_workday": False},
        format="json",
    )
    assert response.status_code == 403
    assert not CalendarDay.objects.filter(date=dt.date(2026, 12, 24)).exists()


def test_lead_adds_and_removes_a_holiday(crew: Crew) -> None:
    client = client_for(crew.lead)
    added = client.post(
        f"/api/teams/{crew.team.pk}/calendar/days/",
        {"date": "2026-12-24", "is_workday": False, "name": "团建"},
        format="json",
    )
    assert added.json()["source"] == "manual"
    assert client.delete(f"/api/teams/{crew.team.pk}/calendar/days/2026-12-24/").status_code == 204
    assert not CalendarDay.objects.filter(team=crew.team, date=dt.date(2026, 12, 24)).exists()


def test_outsider_gets_404_for_the_calendar() -> None:
    team = make_team(key_prefix="SHOP")
    assert client_for(UserFactory()).get(f"/api/teams/{team.pk}/calendar/").status_code == 404
