"""Watches through a real Celery worker on Redis: the observation that completes a streak, posted over
the API, queues the evaluation after commit, and the worker opens the requirement once. The worker is a
subprocess on the PostgreSQL test database (fixtures shared with the notifications' worker tests)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from dataloop import services
from dataloop.models import Metric, WatchFiring
from tests.conftest import Crew
from tests.notifications.test_celery_integration import (  # noqa: F401 (fixtures)
    mail_dir,
    redis_broker,
    start_worker,
    wait_for,
)
from workflows.models import Requirement

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="a worker in another process needs the PostgreSQL test database",
    ),
]


def test_the_observation_completing_a_streak_makes_the_worker_open_one_requirement(
    crew: Crew,
    redis_broker: dict[str, str],  # noqa: F811
    start_worker: Any,  # noqa: F811
) -> None:
    metric = Metric.objects.get(team=crew.team, name="Complaint rate")
    services.watch_create(
        actor=crew.ops,
        team_id=crew.team.pk,
        name="Complaints above 5% for 3 days",
        metric=metric.pk,
        comparison="gt",
        threshold="5",
        periods=3,
        title="Complaints above 5%",
        owner_role="ops",
    )
    worker = start_worker(redis_broker)
    client = APIClient()
    client.force_authenticate(crew.analyst)
    day = dt.date(2026, 11, 1)
    for offset, value in enumerate(["6", "7", "8"]):
        posted = client.post(
            f"/api/metrics/{metric.pk}/observations/",
            {"date": (day + dt.timedelta(days=offset)).isoformat(), "value": value},
            format="json",
        )
        assert posted.status_code == 201

    wait_for(lambda: WatchFiring.objects.exists(), what="the watch to fire", worker=worker)
    client.post(
        f"/api/metrics/{metric.pk}/observations/", {"date": "2026-11-04", "value": "9"}, format="json"
    )
    services.watches_evaluate()  # and the sweep, run here too, finds nothing more to do

    assert Requirement.objects.filter(team=crew.team, title="Complaints above 5%").count() == 1
    assert WatchFiring.objects.count() == 1
