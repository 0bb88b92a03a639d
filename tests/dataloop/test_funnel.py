"""The AARRR funnel page: per stage, requirements open and closed, loops started and closed, and the
verdicts of the loops closed, over a period; as a table, as bars, and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client

from tests.conftest import Crew
from tests.factories import UserFactory, make_team
from workflows import services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db

JANUARY = "?period=custom&start=2026-01-01&end=2026-01-31"


def at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")


def proposed(crew: Crew, title: str, day: str, stage: str = "") -> Requirement:
    return services.requirement_create(
        team=crew.team, actor=crew.ops, title=title, aarrr_stage=stage, at=at(day)
    )


def judge(crew: Crew, requirement: Requirement, verdict: str) -> None:
    services.loop_record_analysis(
        requirement_id=requirement.pk,
        actor=crew.analyst,
        conclusion=f"{verdict}.",
        verdict=verdict,
        core_metric_moved=True,
        behaviour_moved=True,
        feedback_positive=True,
    )


def leave(crew: Crew, requirement: Requirement, to: str, day: str) -> None:
    """The lead ends the current loop: iterate, or close (done)."""
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.lead,
        from_stage=Requirement.objects.get(pk=requirement.pk).stage.slug,
        to_stage=to,
        outcome="done" if to == "close" else "",
        at=at(day),
    )


def small_history(crew: Crew) -> None:
    """Hand-built: what each requirement contributes to January 2026 is noted beside it."""
    proposed(crew, "A1", "2025-12-15", "acquisition")  # open at the end; its loop started before
    a2 = proposed(crew, "A2", "2026-01-05", "acquisition")  # loop started, judged improved, closed
    judge(crew, a2, "improved")
    leave(crew, a2, "close", "2026-01-20")
    r1 = proposed(crew, "R1", "2026-01-10", "retention")  # loop 1 flat (closed), loop 2 started
    judge(crew, r1, "flat")
    leave(crew, r1, "iterate", "2026-01-15")
    judge(crew, r1, "worse")
    leave(crew, r1, "iterate", "2026-02-10")  # loop 2 closes after the period
    proposed(crew, "V1", "2026-02-05", "revenue")  # after the period: nothing
    f1 = proposed(crew, "F1", "2025-11-01", "referral")  # closed before the period: nothing
    leave(crew, f1, "close", "2025-12-01")
    proposed(crew, "N1", "2026-01-02")  # no AARRR stage: open, loop started


EXPECTED = {
    # stage: (open, closed, loops started, loops closed, improved, flat, worse)
    "acquisition": (1, 1, 1, 1, 1, 0, 0),
    "activation": (0, 0, 0, 0, 0, 0, 0),
    "retention": (1, 0, 2, 1, 0, 1, 0),
    "revenue": (0, 0, 0, 0, 0, 0, 0),
    "referral": (0, 0, 0, 0, 0, 0, 0),
    "": (1, 0, 1, 0, 0, 0, 0),
}
COLUMNS = ("open", "closed", "loops_started", "loops_closed", "improved", "flat", "worse")


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def funnel_url(crew: Crew) -> str:
    return f"/teams/{crew.team.pk}/funnel/"


def test_funnel_counts_each_aarrr_stage_over_the_period(client: Client, crew: Crew) -> None:
    small_history(crew)
    response = login(client, crew.engineer).get(funnel_url(crew) + JANUARY)
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [row["stage"] for row in rows] == list(EXPECTED)
    assert {row["stage"]: tuple(row[c] for c in COLUMNS) for row in rows} == EXPECTED
    assert response.context["totals"] == dict(zip(COLUMNS, (3, 1, 4, 2, 1, 1, 0), strict=True))
    html = response.content.decode()
    assert "2026-01-01 – 2026-01-31" in html
    assert f'<a href="/teams/{crew.team.pk}/board/?aarrr=retention">Retention</a>' in html
    assert "No AARRR stage" in html and "?aarrr=&" not in html
    assert 'aria-current="page">Funnel<' in html


def test_funnel_bars_share_one_scale_and_split_closed_loops_by_verdict(client: Client, crew: Crew) -> None:
    small_history(crew)
    response = login(client, crew.ops).get(funnel_url(crew) + JANUARY)
    bars = {bar["row"]["stage"]: bar for bar in response.context["bars"]}
    assert bars["retention"]["started_width"] == 100.0  # 2, the largest number, spans the bar
    assert bars["acquisition"]["open_width"] == 50.0
    assert [(s["width"], s["title"]) for s in bars["acquisition"]["segments"]] == [(50.0, "improved: 1")]
    assert [s["title"] for s in bars["retention"]["segments"]] == ["flat: 1"]
    assert bars["activation"]["segments"] == []
    html = response.content.decode()
    assert html.count('<svg class="fb-bar"') == 18


def test_another_period_counts_differently(client: Client, crew: Crew) -> None:
    small_history(crew)
    response = login(client, crew.ops).get(
        funnel_url(crew) + "?period=custom&start=2026-02-01&end=2026-02-28"
    )
    rows = {row["stage"]: row for row in response.context["rows"]}
    assert (
        rows["retention"]["loops_started"],
        rows["retention"]["loops_closed"],
        rows["retention"]["worse"],
    ) == (
        1,
        1,
        1,
    )
    assert (rows["revenue"]["open"], rows["revenue"]["loops_started"]) == (1, 1)
    assert rows["acquisition"]["closed"] == 0


def test_funnel_csv_has_the_same_numbers(client: Client, crew: Crew) -> None:
    small_history(crew)
    response = login(client, crew.ops).get(f"/teams/{crew.team.pk}/funnel.csv" + JANUARY)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="GROW-funnel-2026-01-01-2026-01-31.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:6] == [
        "aarrr_stage",
        "name",
        "requirements_open",
        "requirements_closed",
        "loops_started",
        "loops_closed",
    ]
    assert {row[0]: tuple(int(n) for n in row[2:9]) for row in rows[1:]} == EXPECTED
    page = client.get(funnel_url(crew) + JANUARY).content.decode()
    assert (
        f'href="/teams/{crew.team.pk}/funnel.csv?period=custom&amp;start=2026-01-01&amp;end=2026-01-31"'
        in page
    )


def test_a_bad_period_is_explained_and_the_csv_refused(client: Client, crew: Crew) -> None:
    login(client, crew.ops)
    response = client.get(funnel_url(crew) + "?period=custom&start=2026-02-01&end=2026-01-01")
    assert response.status_code == 400
    assert "The end is on or after the start" in response.content.decode()
    response = client.get(funnel_url(crew) + "?period=7")
    assert response.status_code == 400 and "Choose 30, 90, 180 or custom." in response.content.decode()
    assert client.get(f"/teams/{crew.team.pk}/funnel.csv?period=custom").status_code == 400


def test_the_default_period_is_the_last_90_days(client: Client, crew: Crew) -> None:
    response = login(client, crew.ops).get(funnel_url(crew))
    assert response.status_code == 200
    scope = response.context["scope"]
    assert (response.context["last_day"] - response.context["first_day"]).days == 89
    assert scope.end > scope.start
    assert '<option value="90" selected>' in response.content.decode()


def test_another_teams_funnel_is_a_404(client: Client, crew: Crew) -> None:
    outsider = UserFactory(username="outsider")
    make_team(lead=outsider)
    login(client, outsider)
    assert client.get(funnel_url(crew)).status_code == 404
    assert client.get(f"/teams/{crew.team.pk}/funnel.csv").status_code == 404
    assert Client().get(funnel_url(crew))["Location"].startswith("/login/")


FUNNEL_QUERIES = 8


def test_funnel_queries_do_not_grow(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    login(client, crew.ops)
    with django_assert_num_queries(FUNNEL_QUERIES):
        client.get(funnel_url(crew) + JANUARY)
    small_history(crew)
    for i in range(5):
        proposed(crew, f"more {i}", "2026-01-0" + str(i + 1), "activation")
    with django_assert_num_queries(FUNNEL_QUERIES):
        response = client.get(funnel_url(crew) + JANUARY)
    assert response.context["totals"]["open"] == 8
