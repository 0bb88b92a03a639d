"""The lead's dashboard page, its CSV files and the analytics API: access, figures, filters, bad input."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from tests.conftest import Crew
from tests.factories import UserFactory, make_team
from tests.workflows.test_worked_loop import replay
from workflows import services

pytestmark = pytest.mark.django_db

CUSTOM = "period=custom&start=2026-03-01&end=2026-03-10"


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


def test_dashboard_queries_do_not_grow(
    client: Client, crew: Crew, django_assert_max_num_queries: Any
) -> None:
    client.force_login(crew.lead)
    replay(crew)
    with django_assert_max_num_queries(40) as first:
        client.get(f"/teams/{crew.team.pk}/analytics/?{CUSTOM}")
    for _ in range(3):
        replay(crew)
    with django_assert_max_num_queries(40) as second:
        client.get(f"/teams/{crew.team.pk}/analytics/?{CUSTOM}")
    assert len(first.captured_queries) == len(second.captured_queries)
