"""Issue #6: over 10,000 loops (about 69,000 stage events) every analytics endpoint makes the queries it makes
over a handful, and answers without loading the event log into Python."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.api import METRICS
from bench.analytics_data import Built, build_loops, statement_limit
from roles.models import Team
from tests.analytics.test_dashboard import API_QUERIES
from tests.factories import UserFactory, add_member, make_team
from workflows.models import IterationLoop, StageEvent

pytestmark = pytest.mark.django_db

LOOPS = 10_000
# The slowest statement takes under 3 s here (cumulative flow on PostgreSQL, a 2-core machine); a plan that
# turns quadratic takes minutes, and should fail the test rather than hold up the suite.
STATEMENT_LIMIT_SECONDS = 15
# Loading the team's events as model instances peaks at about 55 MB of Python memory, whichever the
# database. Most answers are a few figures per stage, day or week (wip lists at most 200 open loops), and
# peak under 1 MB: a twentieth of the events is a loose bound. The control chart's answer is one point per
# closed loop (8,519 of them, 1 MB of JSON), so its peak grows with the closed loops, not with their
# events: about 9 MB, held to a quarter of the events.
FRACTION_OF_EVENTS = {metric: 20 for metric in METRICS} | {"control-chart": 4}


@dataclass(frozen=True)
class Scale:
    team: Team
    lead: Any
    built: Built
    events_peak: int  # bytes of Python memory at peak to load the team's events as model instances


def python_peak(work: Callable[[], object]) -> int:
    """The most memory Python allocations held at once while `work` ran, in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def scale(django_db_setup: None, django_db_blocker: Any) -> Iterator[Scale]:
    """10,000 loops written once for the module and rolled back after it; each test runs in a savepoint."""
    with django_db_blocker.unblock(), transaction.atomic():
        lead = UserFactory(username="scale-lead")
        team = make_team(lead=lead, name="Scale", key_prefix="SCALE", time_zone="UTC")
        actors = {
            role: add_member(team, [role], username=f"scale-{role}")
            for role in ("ops", "pm", "engineer", "analyst")
        }
        built = build_loops(team=team, actors=actors, loops=LOOPS, now=timezone.now())
        events_peak = python_peak(lambda: list(StageEvent.objects.filter(requirement__team=team)))
        with statement_limit(STATEMENT_LIMIT_SECONDS):
            yield Scale(team=team, lead=lead, built=built, events_peak=events_peak)
        transaction.set_rollback(True)


def lead_client(scale: Scale) -> APIClient:
    # Logged in by session, as the pinned counts were measured (session, user, team, then the metric's).
    client = APIClient()
    client.force_login(scale.lead)
    return client


def url(scale: Scale, metric: str) -> str:
    return f"/api/analytics/{metric}/?team={scale.team.pk}&period=180"


def test_the_data_is_ten_thousand_loops_of_about_seven_events(scale: Scale) -> None:
    built = scale.built
    assert (built.requirements, built.loops) == (5_000, LOOPS)
    assert IterationLoop.objects.filter(requirement__team=scale.team).count() == LOOPS
    assert StageEvent.objects.filter(requirement__team=scale.team).count() == built.events
    assert 60_000 < built.events < 80_000
    assert 1_000 < built.open_loops < 2_000
    assert StageEvent.objects.filter(requirement__team=scale.team, kind="rework").count() > 1_000


@pytest.mark.parametrize("metric", list(METRICS))
def test_queries_stay_at_the_pinned_count(scale: Scale, metric: str, django_assert_num_queries: Any) -> None:
    client = lead_client(scale)
    with django_assert_num_queries(API_QUERIES[metric, "calendar"]):
        assert client.get(url(scale, metric)).status_code == 200


@pytest.mark.parametrize("metric", list(METRICS))
def test_python_memory_stays_far_below_loading_the_events(scale: Scale, metric: str) -> None:
    client = lead_client(scale)
    responses: list[Any] = []
    peak = python_peak(lambda: responses.append(client.get(url(scale, metric))))
    assert responses[0].status_code == 200
    assert peak < scale.events_peak / FRACTION_OF_EVENTS[metric], (peak, scale.events_peak)


def test_cycle_time_counts_every_loop_closed_in_the_period(scale: Scale) -> None:
    answer = lead_client(scale).get(url(scale, "cycle-time")).json()
    start, end = (dt.datetime.fromisoformat(answer["query"][bound]) for bound in ("start", "end"))
    closed = IterationLoop.objects.filter(
        requirement__team=scale.team, closed_at__gte=start, closed_at__lt=end
    ).count()
    assert answer["count"] == closed == scale.built.closed_loops


def test_wip_counts_every_open_loop(scale: Scale) -> None:
    answer = lead_client(scale).get(url(scale, "wip")).json()
    open_loops = IterationLoop.objects.filter(requirement__team=scale.team, closed_at__isnull=True).count()
    assert answer["total"] == open_loops == scale.built.open_loops
    assert len(answer["items"]) == 200
