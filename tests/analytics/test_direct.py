"""On PostgreSQL each calendar-time metric reads only the events its definition needs (analytics/selectors.py,
"each metric's own read"). Those reads must give exactly the figures of the visits pipeline, which derives
every visit from the log first: compared here metric by metric, over generated histories in two time
zones and hand-made logs with same-instant events, sub-second times and a lead's backward override, for
many periods and filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import api, selectors
from analytics.selectors import Filters, Scope
from bench.analytics_data import build_loops
from roles.models import Team
from tests.factories import UserFactory, add_member, make_team
from workflows import services
from workflows.models import Label, Requirement

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the direct reads are PostgreSQL's"),
]

# Every metric the API serves, by its selector's name.
METRICS = tuple(compute.__name__ for compute, _summary, _shape in api.METRICS.values())
NOW = dt.datetime(2026, 11, 20, 7, 30, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Data:
    utc: Team
    shanghai: Team
    edges: Team
    assignee_id: int


def _edge_cases(lead: Any) -> Team:
    """Logs the generator never writes: moves at the same instant, sub-second times, a lead's override
    back past a stage, a loop that closes the instant it starts, and a requirement created and closed
    before most periods begin."""
    team = make_team(lead=lead, name="Edges", key_prefix="EDGE", time_zone="America/New_York")
    base = NOW - dt.timedelta(days=20, microseconds=250_001)

    def life(title: str, start: dt.datetime, steps: list[tuple[str, str, dt.timedelta]]) -> None:
        requirement = services.requirement_create(
            team=team, actor=lead, title=title, design="spec", at=start, hypothesis="h", target_metric="m"
        )
        at = start
        for here, there, after in steps:
            at += after
            services.requirement_transition(
                requirement_id=requirement.pk,
                actor=lead,
                from_stage=here,
                to_stage=there,
                at=at,
                outcome="done" if there == "close" else "",
            )

    zero = dt.timedelta(0)
    hour = dt.timedelta(hours=1, microseconds=333)
    life(
        "same instant",
        base,
        [("propose", "design", zero), ("design", "build", zero), ("build", "design", hour)],
    )
    life(
        "override back",
        base + dt.timedelta(hours=3),
        [
            ("propose", "design", hour),
            ("design", "build", hour),
            ("build", "instrument", hour),
            ("instrument", "propose", hour),  # the lead sends it back past three stages
            ("propose", "design", hour),
        ],
    )
    life(
        "instant loops",
        base + dt.timedelta(days=2),
        [
            ("propose", "design", hour),
            ("design", "build", hour),
            ("build", "instrument", hour),
            ("instrument", "analyze", hour),
            ("analyze", "optimize", hour),
            ("optimize", "iterate", hour),
            ("propose", "close", zero),  # the second loop closes the instant it began
        ],
    )
    life(
        "long ago",
        NOW - dt.timedelta(days=500),
        [("propose", "design", dt.timedelta(days=3)), ("design", "close", dt.timedelta(days=40))],
    )
    life("just opened", NOW - dt.timedelta(minutes=5), [])
    return team


@pytest.fixture(scope="module")
def data(django_db_setup: None, django_db_blocker: Any) -> Iterator[Data]:
    with django_db_blocker.unblock(), transaction.atomic():
        lead = UserFactory(username="direct-lead")
        teams = []
        for name, prefix, zone, seed in (
            ("Direct UTC", "DUTC", "UTC", 11),
            ("Direct SH", "DSH", "Asia/Shanghai", 12),
        ):
            team = make_team(lead=lead, name=name, key_prefix=prefix, time_zone=zone)
            actors = {
                role: add_member(team, [role], username=f"{prefix.lower()}-{role}")
                for role in ("ops", "pm", "engineer", "analyst")
            }
            build_loops(team=team, actors=actors, loops=700, now=NOW, seed=seed, requirements=300)
            teams.append(team)
        label = Label.objects.create(team=teams[0], name="growth")
        label.requirements.add(*Requirement.objects.filter(team=teams[0]).order_by("pk")[::3])
        edges = _edge_cases(lead)
        assignee_id = Requirement.objects.filter(team=teams[1]).exclude(assignee=None).first().assignee_id
        yield Data(utc=teams[0], shanghai=teams[1], edges=edges, assignee_id=assignee_id)
        transaction.set_rollback(True)


def scopes(data: Data) -> Iterator[tuple[str, Scope]]:
    periods = {
        "week": (NOW - dt.timedelta(days=7), NOW),
        "month": (NOW - dt.timedelta(days=30), NOW),
        "180 days": (NOW - dt.timedelta(days=180), NOW),
        "midday to midday": (NOW - dt.timedelta(days=45, hours=5), NOW - dt.timedelta(days=12, hours=2)),
        "long past": (NOW - dt.timedelta(days=900), NOW - dt.timedelta(days=60)),
    }
    teams = {
        "UTC": (data.utc,),
        "Shanghai": (data.shanghai,),
        "edges": (data.edges,),
        "all": (data.utc, data.shanghai, data.edges),
    }
    for team_name, team in teams.items():
        for period_name, (start, end) in periods.items():
            yield f"{team_name}, {period_name}", Scope(teams=team, start=start, end=end, now=NOW)
    month = periods["month"]
    for name, filters in (
        ("priority", Filters(priority="P1")),
        ("AARRR", Filters(aarrr_stage="activation")),
        ("label", Filters(label="growth")),
        ("assignee", Filters(assignee_id=data.assignee_id)),
    ):
        both = (data.utc, data.shanghai)
        yield (
            f"both, month, {name}",
            Scope(teams=both, start=month[0], end=month[1], filters=filters, now=NOW),
        )


def test_each_direct_read_gives_the_pipelines_figures(data: Data) -> None:
    compared = 0
    for name, scope in scopes(data):
        assert selectors._direct(scope)
        for metric in METRICS:
            with CaptureQueriesContext(connection) as direct_queries:
                direct = getattr(selectors, metric)(scope)
            with selectors.reference_pipeline():
                reference = getattr(selectors, metric)(scope)
            assert direct == reference, f"{metric} over {name}"
            # The direct read really ran: it never derives every visit with the pipeline's window.
            assert not any("LEAD(" in query["sql"] for query in direct_queries.captured_queries), metric
            compared += 1
    assert compared == 24 * len(METRICS)


def test_the_comparison_sees_real_figures(data: Data) -> None:
    """Not empty against empty: the periods hold closed loops, open loops, breaches and rework."""
    scope = Scope(
        teams=(data.utc, data.shanghai, data.edges), start=NOW - dt.timedelta(days=180), end=NOW, now=NOW
    )
    assert selectors.cycle_time(scope)["count"] > 500
    assert selectors.wip(scope)["total"] > 50
    assert selectors.rework(scope)["loops_with_rework"] > 50
    assert any(row["breached"] for row in selectors.sla(scope)["stages"])
    edges = Scope(teams=(data.edges,), start=NOW - dt.timedelta(days=30), end=NOW, now=NOW)
    assert selectors.loops_per_requirement(edges)["distribution"] == [{"loops": 2, "requirements": 1}]
    backward = {row["stage"]: row["backward"] for row in selectors.rework(edges)["stages"] if row["backward"]}
    assert backward == {"build": 1, "instrument": 1}  # a rework, and the lead's override back


def test_working_time_keeps_the_pipeline() -> None:
    team = Team(pk=1, name="t", key_prefix="T", time_zone="UTC")
    assert not selectors._direct(Scope(teams=(team,), start=NOW, end=NOW, working=True))
    with selectors.reference_pipeline():
        assert not selectors._direct(Scope(teams=(team,), start=NOW, end=NOW))
    assert timezone.is_aware(NOW)
