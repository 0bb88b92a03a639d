"""The lead's dashboard page, its CSV files and the analytics API: access, figures, filters, bad input."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client

from analytics.api import METRICS
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, make_team
from tests.workflows.test_worked_loop import replay
from workflows import services
from workflows.models import Requirement, Stage
from worktime import services as calendar_services

pytestmark = pytest.mark.django_db

CUSTOM = "period=custom&start=2026-03-01&end=2026-03-10"

# Queries per request, whatever the amount of data: measured, pinned, the same on SQLite and PostgreSQL.
# A change is deliberate: re-measure and say why in the commit. Each API request starts with three:
# the session, the user and the team; working time adds the team's calendar (one query per reading).
DASHBOARD_QUERIES = 30
API_QUERIES = {
    ("cycle-time", "calendar"): 4,
    ("cycle-time", "working"): 5,
    ("time-in-stage", "calendar"): 6,
    ("time-in-stage", "working"): 7,
    ("control-chart", "calendar"): 4,
    ("control-chart", "working"): 6,
    ("cumulative-flow", "calendar"): 6,
    ("cumulative-flow", "working"): 6,
    ("throughput", "calendar"): 4,
    ("throughput", "working"): 4,
    ("wip", "calendar"): 6,
    ("wip", "working"): 10,
    ("sla", "calendar"): 6,
    ("sla", "working"): 7,
    ("rework", "calendar"): 6,
    ("rework", "working"): 6,
    ("loops-per-requirement", "calendar"): 4,
    ("loops-per-requirement", "working"): 4,
}


def populate(crew: Crew, copies: int) -> None:
    """`copies` times over, early in March 2026: a requirement through a whole loop with one rework,
    iterated (its loop 2 left open in propose), one closed after a visit to design, and one left open in
    design. Build has a 24 h SLA the first one breaches, and the team's working-hours calendar is on, so
    that every figure, calendar and working time alike, has something to count. The lead makes the moves
    into analyze and optimize (overrides), which keeps the data independent of those moves' guards."""
    Stage.objects.filter(workflow__team=crew.team, slug="build").update(sla_hours=24)
    calendar_services.calendar_update(
        team=crew.team,
        actor=crew.lead,
        enabled=True,
        work_days=[0, 1, 2, 3, 4],
        start_time=dt.time(9),
        end_time=dt.time(18),
    )
    hours = lambda h: dt.timedelta(hours=h)  # noqa: E731
    for n in range(copies):
        day = dt.datetime(2026, 3, 1 + n % 2, 9, n % 60, tzinfo=dt.UTC)
        looped = services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"Looped {n}", at=day, **READY_FIELDS
        )
        _move(looped, crew.ops, "design", day + hours(6))
        _move(looped, crew.pm, "propose", day + hours(27))
        _move(looped, crew.ops, "design", day + hours(33))
        services.requirement_update(requirement_id=looped.pk, actor=crew.pm, design="https://wiki/spec")
        _move(looped, crew.pm, "build", day + hours(57))
        _move(looped, crew.engineer, "instrument", day + hours(105))
        _move(looped, crew.lead, "analyze", day + hours(117))
        _move(looped, crew.lead, "optimize", day + hours(165))
        _move(looped, crew.ops, "iterate", day + hours(171))
        closed = services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"Closed {n}", at=day, **READY_FIELDS
        )
        _move(closed, crew.ops, "design", day + hours(3))
        _move(closed, crew.lead, "close", day + hours(29), outcome="done")
        waiting = services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"Open {n}", at=day, **READY_FIELDS
        )
        _move(waiting, crew.ops, "design", day + hours(1))


def _move(requirement: Requirement, actor: Any, to: str, when: dt.datetime, **kwargs: Any) -> None:
    current = Requirement.objects.get(pk=requirement.pk).stage.slug
    services.requirement_transition(
        requirement_id=requirement.pk, actor=actor, from_stage=current, to_stage=to, at=when, **kwargs
    )


def test_member_sees_the_dashboard_with_the_worked_loop(client: Client, crew: Crew) -> None:
    replay(crew)
    client.force_login(crew.engineer)
    response = client.get(f"/teams/{crew.team.pk}/analytics/?{CUSTOM}")
    assert response.status_code == 200
    assert response.context["cycle"]["p50"] == 615_600
    html = response.content.decode()
    assert "7.1 d" in html  # 615,600 s
    assert html.count("<svg") == 8
    assert 'href="/requirements/GROW-1/"' in html  # the control-chart point links to the requirement


def test_outsider_gets_404_and_anonymous_goes_to_login(client: Client, crew: Crew) -> None:
    assert client.get(f"/teams/{crew.team.pk}/analytics/")["Location"].startswith("/login/")
    outsider = UserFactory()
    make_team(lead=outsider)
    client.force_login(outsider)
    assert client.get(f"/teams/{crew.team.pk}/analytics/").status_code == 404
    assert client.get(f"/teams/{crew.team.pk}/analytics/wip.csv").status_code == 404
    assert client.get(f"/api/analytics/cycle-time/?team={crew.team.pk}").status_code == 404


def test_bad_parameters_are_named(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.get(f"/teams/{crew.team.pk}/analytics/?period=7&aarrr=nope&start=yesterday")
    assert response.status_code == 400
    assert set(response.context["errors"]) == {"period", "aarrr", "start"}
    api = client.get(f"/api/analytics/wip/?team={crew.team.pk}&period=custom&start=2026-03-10&end=2026-03-01")
    assert api.status_code == 400 and "end" in api.json()


def test_csv_export_neutralises_formulas(client: Client, crew: Crew) -> None:
    services.requirement_create(team=crew.team, actor=crew.ops, title='=HYPERLINK("http://evil","x")')
    client.force_login(crew.lead)
    response = client.get(f"/teams/{crew.team.pk}/analytics/wip.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["key", "title", "stage"]
    assert rows[1][1] == '\'=HYPERLINK("http://evil","x")'


def test_every_csv_matches_the_api(client: Client, crew: Crew) -> None:
    replay(crew)
    client.force_login(crew.lead)
    for metric in (
        "cycle-time",
        "time-in-stage",
        "control-chart",
        "cumulative-flow",
        "throughput",
        "wip",
        "sla",
        "rework",
        "loops-per-requirement",
    ):
        assert client.get(f"/teams/{crew.team.pk}/analytics/{metric}.csv?{CUSTOM}").status_code == 200
        assert client.get(f"/api/analytics/{metric}/?team={crew.team.pk}&{CUSTOM}").status_code == 200
    cycle = client.get(f"/teams/{crew.team.pk}/analytics/cycle-time.csv?{CUSTOM}").content.decode("utf-8-sig")
    api = client.get(f"/api/analytics/cycle-time/?team={crew.team.pk}&{CUSTOM}").json()
    assert cycle.splitlines()[1].split(",")[2] == str(api["p50"]) == "615600"
    assert client.get(f"/teams/{crew.team.pk}/analytics/nonsense.csv").status_code == 404


def test_dashboard_queries_do_not_grow(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    client.force_login(crew.lead)
    populate(crew, 1)
    with django_assert_num_queries(DASHBOARD_QUERIES):
        assert client.get(f"/teams/{crew.team.pk}/analytics/?{CUSTOM}").status_code == 200
    populate(crew, 5)
    with django_assert_num_queries(DASHBOARD_QUERIES):
        assert client.get(f"/teams/{crew.team.pk}/analytics/?{CUSTOM}").status_code == 200


@pytest.mark.parametrize("time", ["calendar", "working"])
@pytest.mark.parametrize("metric", list(METRICS))
def test_api_queries_do_not_grow(
    client: Client, crew: Crew, django_assert_num_queries: Any, metric: str, time: str
) -> None:
    client.force_login(crew.lead)
    url = f"/api/analytics/{metric}/?team={crew.team.pk}&{CUSTOM}&time={time}"
    populate(crew, 1)
    with django_assert_num_queries(API_QUERIES[metric, time]):
        assert client.get(url).status_code == 200
    populate(crew, 5)
    with django_assert_num_queries(API_QUERIES[metric, time]):
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("time", ["calendar", "working"])
def test_control_chart_json_is_the_document_drf_would_render(client: Client, crew: Crew, time: str) -> None:
    """The control chart's JSON is written a slice at a time (analytics.api.control_chart_response); byte
    for byte it is what DRF's renderer makes of the selector's answer."""
    from rest_framework.renderers import JSONRenderer

    from analytics import api, selectors
    from analytics.params import describe, scope_from_query

    client.force_login(crew.lead)
    populate(crew, 3)
    query = f"team={crew.team.pk}&{CUSTOM}&time={time}"
    response = client.get(f"/api/analytics/control-chart/?{query}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    scope = scope_from_query(dict(item.split("=") for item in query.split("&")), user=crew.lead)
    chart = selectors.control_chart(scope)
    assert len(chart["points"]) > 2, "the test needs closed loops to compare"
    expected = JSONRenderer().render({"query": describe(scope), **api._jsonable(chart)})
    assert response.content == expected
    assert response["Content-Length"] == str(len(expected))
    assert api.POINTS_PER_CHUNK > 1  # several slices: the separator between them is checked below


def test_control_chart_json_across_slices(crew: Crew, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from analytics import api, selectors
    from analytics.params import describe, scope_from_query

    populate(crew, 3)
    monkeypatch.setattr(api, "POINTS_PER_CHUNK", 2)
    scope = scope_from_query(
        {"team": str(crew.team.pk), "period": "custom", "start": "2026-03-01", "end": "2026-03-10"},
        user=crew.lead,
    )
    document = json.loads(api.control_chart_response(scope).content)
    assert document == {"query": describe(scope), **api._jsonable(selectors.control_chart(scope))}
    assert len(document["points"]) > 4


def test_the_control_chart_is_collected_once_sent(
    client: Client, crew: Crew, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DRF's view, request and response refer to one another; the control chart's body, megabytes over
    every team, must not wait in that cycle for a rare full collection (analytics.api.LargeResponse)."""
    import gc

    from analytics import api

    populate(crew, 2)
    client.force_login(crew.lead)
    collections: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(1) or 0)
    response = client.get(f"/api/analytics/control-chart/?team={crew.team.pk}&{CUSTOM}")
    assert isinstance(response, api.LargeResponse)
    assert collections == [1]  # the test client closes the response as a WSGI server would
