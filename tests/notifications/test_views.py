"""The inbox page and the unread count in the header."""

from __future__ import annotations

import pytest
from django.test import Client

from notifications.models import Notification
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services

pytestmark = pytest.mark.django_db


def to_design(crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="首单红包", **READY_FIELDS
    )
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )


def test_inbox_needs_login(client: Client) -> None:
    assert client.get("/notifications/").status_code == 302


def test_inbox_shows_my_notification_and_the_header_counts_it(client: Client, crew: Crew) -> None:
    to_design(crew)
    client.force_login(crew.pm)
    response = client.get("/notifications/")
    assert "GROW-1 首单红包".encode() in response.content
    assert response.context["unread_notifications"] == 1


def test_mark_all_read_from_the_page(client: Client, crew: Crew) -> None:
    to_design(crew)
    client.force_login(crew.pm)
    response = client.post("/notifications/read/")
    assert response.status_code == 302
    assert not Notification.objects.filter(recipient=crew.pm, read_at__isnull=True).exists()


def test_marking_is_refused_without_csrf(crew: Crew) -> None:
    to_design(crew)
    client = Client(enforce_csrf_checks=True)
    client.force_login(crew.pm)
    assert client.post("/notifications/read/").status_code == 403
    assert Notification.objects.filter(recipient=crew.pm, read_at__isnull=True).exists()


def test_lead_sees_failed_deliveries_first_with_their_error(client: Client, crew: Crew) -> None:
    from notifications.models import Delivery

    to_design(crew)
    Delivery.objects.update(status=Delivery.Status.FAILED, last_error="SMTPRecipientsRefused: 550")
    client.force_login(crew.lead)
    response = client.get(f"/teams/{crew.team.pk}/deliveries/")
    assert response.status_code == 200
    assert b"SMTPRecipientsRefused: 550" in response.content


def test_deliveries_page_is_for_leads_only(client: Client, crew: Crew) -> None:
    client.force_login(crew.pm)
    assert client.get(f"/teams/{crew.team.pk}/deliveries/").status_code == 403
