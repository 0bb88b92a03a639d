"""Every data-loop read endpoint issues a fixed number of queries, however many rows it returns."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rest_framework.test import APIClient

from dataloop.models import Goal, Metric, MetricWatch, Observation, Strategy
from tests.conftest import Crew
from workflows import services as workflow_services
from workflows.models import TrackingEvent

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 1)


def grow(crew: Crew, n: int) -> dict[str, Any]:
    """n requirements, each with n tracking events, n observations per metric, n watches, n strategies."""
    requirements = [
        workflow_services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"R{i}", aarrr_stage="retention", launch_date=DAY
        )
        for i in range(n)
    ]
    loop = requirements[0].loops.get()
    for i in range(n):
        TrackingEvent.objects.create(loop=loop, name=f"event_{i}", trigger="t", owner=crew.engineer)
    metrics = list(Metric.objects.filter(team=crew.team))
    for metric in metrics:
        Observation.objects.bulk_create(
            Observation(
                metric=metric, date=DAY + dt.timedelta(days=i), value=i, recorded_by=crew.analyst, loop=loop
            )
            for i in range(n)
        )
    dau = next(m for m in metrics if m.name == "DAU")
    for i in range(n):
        MetricWatch.objects.create(
            team=crew.team,
            name=f"w{i}",
            metric=dau,
            comparison="gt",
            threshold=1,
            title="t",
            owner_role="ops",
        )
    goal = Goal.objects.create(team=crew.team, title="g", metric=dau, target=100, start=DAY, end=DAY)
    goal.first_level_metrics.set(metrics[:n])
    for i in range(n):
        strategy = Strategy.objects.create(goal=goal, title=f"s{i}", metric=dau)
        strategy.requirements.set(requirements)
    return {"team": crew.team.pk, "metric": dau.pk, "goal": goal.pk, "key": requirements[0].key, "watch": 0}


ENDPOINTS = {
    "metrics": ("/api/teams/{team}/metrics/", 2),
    "metric": ("/api/metrics/{metric}/", 2),
    "observations": ("/api/metrics/{metric}/observations/", 2),
    "watches": ("/api/teams/{team}/watches/", 2),
    "goals": ("/api/teams/{team}/goals/", 4),
    "goal": ("/api/goals/{goal}/", 7),
    "funnel": ("/api/teams/{team}/funnel/", 4),
    "tracking plan": ("/api/requirements/{key}/tracking-plan/", 3),
    "analysis": ("/api/requirements/{key}/analysis/", 3),
}


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("size", [2, 8])
def test_read_endpoints_have_a_fixed_query_count(
    crew: Crew, django_assert_num_queries: Any, name: str, size: int
) -> None:
    ids = grow(crew, size)
    client = APIClient()
    client.force_authenticate(crew.analyst)
    url, queries = ENDPOINTS[name]

    with django_assert_num_queries(queries):
        response = client.get(url.format(**ids))

    assert response.status_code == 200, response.content
