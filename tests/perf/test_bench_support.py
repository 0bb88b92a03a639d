"""What the benchmark stands on: the floor endpoint, the query-count header of the benchmark's settings,
and the timed sweeps a Celery worker runs for it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from perf.middleware import HEADER
from perf.tasks import measure
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db


def test_floor_needs_a_signed_in_caller(crew: Crew) -> None:
    response = APIClient().get("/api/ping/")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_floor_costs_only_authentication(crew: Crew, django_assert_num_queries: Any) -> None:
    token = Token.objects.create(user=crew.engineer)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    with django_assert_num_queries(1):  # the token joined to its user, nothing else
        response = client.get("/api/ping/")
    assert response.status_code == 200
    assert response.json() == {"user": crew.engineer.pk}


def test_floor_with_a_session_costs_the_session_and_the_user(
    crew: Crew, django_assert_num_queries: Any
) -> None:
    client = APIClient()
    client.force_login(crew.pm)
    with django_assert_num_queries(2):
        response = client.get("/api/ping/")
    assert response.json() == {"user": crew.pm.pk}


@override_settings(MIDDLEWARE=["perf.middleware.QueryCountMiddleware", *settings.MIDDLEWARE])
def test_query_header_counts_every_statement_of_the_request(
    crew: Crew, django_assert_num_queries: Any
) -> None:
    token = Token.objects.create(user=crew.lead)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    ping = client.get("/api/ping/")
    assert ping[HEADER] == "1"
    with django_assert_num_queries(int(client.get("/api/teams/")[HEADER])) as captured:
        client.get("/api/teams/")
    assert len(captured) >= 2


def test_query_header_is_absent_from_ordinary_settings(crew: Crew) -> None:
    client = APIClient()
    client.force_login(crew.lead)
    assert HEADER not in client.get("/api/ping/")


def test_timed_sla_sweep_reminds_and_counts_its_queries(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="Late", **READY_FIELDS)
    # Three days in propose, past its two-day SLA (and its four-day escalation not yet).
    Requirement.objects.filter(pk=requirement.pk).update(
        sla_next_at=timezone.now() - dt.timedelta(days=1),
        sla_due_at=timezone.now() - dt.timedelta(days=1),
        sla_escalate_at=timezone.now() + dt.timedelta(days=1),
    )
    outcome = measure("sla_sweep")
    assert outcome["name"] == "sla_sweep"
    assert outcome["reminders"] == 1
    assert outcome["batches"] == 1
    assert outcome["queries"] == sum(outcome["queries_per_batch"]) > 0
    assert outcome["seconds"] > 0
    assert outcome["peak_rss_kb"] > 0
    # Run again: nothing left to remind, one batch that finds nothing.
    again = measure("sla_sweep")
    assert again["reminders"] == 0
    assert again["batches"] == 1


def test_timed_watch_evaluation_reports_what_fired(crew: Crew) -> None:
    outcome = measure("watch_evaluation")
    assert outcome["fired"] == 0
    assert outcome["queries"] >= 1
