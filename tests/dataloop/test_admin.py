"""The data loop in the admin: every list and change page opens; watch state is read-only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from dataloop import services
from dataloop.models import Goal, Metric, MetricWatch, Observation, Strategy
from tests.conftest import Crew
from tests.factories import UserFactory
from workflows.models import TrackingEvent

pytestmark = pytest.mark.django_db


def test_every_data_loop_admin_page_opens(client: Client, crew: Crew) -> None:
    metric = Metric.objects.get(team=crew.team, name="DAU")
    observation = Observation.objects.create(metric=metric, date=dt.date(2026, 3, 1), value=1)
    watch = services.watch_create(
        actor=crew.ops,
        team_id=crew.team.pk,
        name="w",
        metric=metric.pk,
        comparison="lt",
        threshold="1",
        title="t",
        owner_role="ops",
    )
    goal = Goal.objects.create(
        team=crew.team, title="g", metric=metric, target=1, start=observation.date, end=observation.date
    )
    Strategy.objects.create(goal=goal, title="s")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    pages = [
        "/admin/dataloop/metric/",
        f"/admin/dataloop/metric/{metric.pk}/change/",
        "/admin/dataloop/observation/",
        f"/admin/dataloop/observation/{observation.pk}/change/",
        "/admin/dataloop/metricwatch/",
        f"/admin/dataloop/metricwatch/{watch.pk}/change/",
        "/admin/dataloop/goal/",
        f"/admin/dataloop/goal/{goal.pk}/change/",
        "/admin/workflows/trackingevent/",
    ]

    assert [client.get(page).status_code for page in pages] == [200] * len(pages)
    assert client.get("/admin/workflows/trackingevent/add/").status_code == 403
    form = client.get(f"/admin/dataloop/metricwatch/{watch.pk}/change/").content.decode()
    assert 'name="fired_through"' not in form
    assert MetricWatch.objects.count() == 1 and TrackingEvent.objects.count() == 0
