"""Metric watches: a streak of N periods opens one requirement from the template, never a second while it
is open, and again only when the condition has held anew after it closed."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from dataloop import services
from dataloop.models import Metric, MetricWatch, WatchFiring
from notifications.models import Kind, Notification
from tests.conftest import Crew
from workflows import services as workflow_services
from workflows.models import Requirement, StageEvent

START = dt.date(2026, 11, 1)


def complaint_watch(crew: Crew, **fields: Any) -> MetricWatch:
    metric = Metric.objects.get(team=crew.team, name="Complaint rate")
    return services.watch_create(
        actor=crew.ops,
        team_id=crew.team.pk,
        **{
            "name": "Complaints above 5% for 3 days",
            "metric": metric.pk,
            "comparison": "gt",
            "threshold": "5",
            "periods": 3,
            "title": "Complaints above 5%",
            "aarrr_stage": "retention",
            "priority": "P0",
            "owner_role": "ops",
            "description": "Read the complaints and stop the cause.",
            **fields,
        },
    )


def observe(crew: Crew, watch: MetricWatch, first_day: int, values: list[str]) -> None:
    for offset, value in enumerate(values):
        services.observation_record(
            actor=crew.analyst,
            metric_id=watch.metric_id,
            date=START + dt.timedelta(days=first_day + offset),
            value=value,
        )


def opened(watch: MetricWatch) -> list[Requirement]:
    return list(Requirement.objects.filter(team=watch.team, title=watch.title).order_by("number"))


def close(crew: Crew, requirement: Requirement) -> None:
    workflow_services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="close", outcome="done"
    )


def test_n_minus_one_days_over_the_threshold_does_not_fire(crew: Crew) -> None:
    watch = complaint_watch(crew)
    observe(crew, watch, 0, ["4.0", "5.5", "6.1"])

    assert services.watch_evaluate(watch_id=watch.pk) is None
    assert opened(watch) == []


def test_n_days_fire_once_and_open_the_template_with_the_watch_as_origin(crew: Crew) -> None:
    watch = complaint_watch(crew)
    observe(crew, watch, 0, ["5.5", "6.1", "7"])

    firing = services.watch_evaluate(watch_id=watch.pk)

    assert firing is not None
    [requirement] = opened(watch)
    assert (requirement.priority, requirement.aarrr_stage, requirement.stage.slug) == (
        "P0",
        "retention",
        "propose",
    )
    assert requirement.description == "Read the complaints and stop the cause."
    created = StageEvent.objects.get(requirement=requirement, kind="create")
    assert created.origin == f"watch:{watch.pk}"
    assert created.actor is None
    assert "5.5%, 6.1%, 7%" in created.note
    assert (firing.streak_start, firing.streak_end, firing.values) == (
        START,
        START + dt.timedelta(days=2),
        ["5.5", "6.1", "7"],
    )
    assert firing.requirement == requirement
    told = Notification.objects.filter(kind=Kind.WATCH_FIRED).values_list("recipient__username", flat=True)
    assert list(told) == ["ops"]


def test_a_further_day_does_not_fire_again_while_the_requirement_is_open(crew: Crew) -> None:
    watch = complaint_watch(crew)
    observe(crew, watch, 0, ["5.5", "6.1", "7"])
    services.watch_evaluate(watch_id=watch.pk)
    observe(crew, watch, 3, ["8"])

    assert services.watch_evaluate(watch_id=watch.pk) is None
    assert services.watches_evaluate() == 0
    assert len(opened(watch)) == 1
    assert WatchFiring.objects.count() == 1


def test_after_the_requirement_closes_it_fires_again_only_when_the_condition_holds_anew(crew: Crew) -> None:
    watch = complaint_watch(crew)
    observe(crew, watch, 0, ["5.5", "6.1", "7"])
    services.watch_evaluate(watch_id=watch.pk)
    close(crew, opened(watch)[0])
    observe(crew, watch, 3, ["8", "9"])

    assert services.watch_evaluate(watch_id=watch.pk) is None  # days 2..4 overlap the streak that fired

    observe(crew, watch, 5, ["9.5"])
    firing = services.watch_evaluate(watch_id=watch.pk)

    assert firing is not None
    assert (firing.streak_start, firing.streak_end) == (
        START + dt.timedelta(days=3),
        START + dt.timedelta(days=5),
    )
    assert [r.is_closed for r in opened(watch)] == [True, False]


def test_a_day_back_under_the_threshold_restarts_the_count(crew: Crew) -> None:
    watch = complaint_watch(crew)
    observe(crew, watch, 0, ["5.5", "6.1", "4.9", "7", "8"])

    assert services.watch_evaluate(watch_id=watch.pk) is None


def test_an_inactive_watch_is_not_evaluated(crew: Crew) -> None:
    watch = complaint_watch(crew, is_active=False)
    observe(crew, watch, 0, ["5.5", "6.1", "7"])

    assert services.watches_evaluate() == 0
    assert opened(watch) == []


def test_the_assignee_of_the_template_gets_the_requirement_and_is_told(crew: Crew) -> None:
    watch = complaint_watch(crew, owner_role="", assignee=crew.pm.pk)
    observe(crew, watch, 0, ["5.5", "6.1", "7"])

    services.watch_evaluate(watch_id=watch.pk)

    assert opened(watch)[0].assignee == crew.pm
    told = Notification.objects.filter(kind=Kind.WATCH_FIRED).values_list("recipient__username", flat=True)
    assert list(told) == ["pm"]


def test_d7_retention_under_25_percent_fires_on_one_day(crew: Crew) -> None:
    metric = Metric.objects.get(team=crew.team, name="D7 retention")
    watch = services.watch_create(
        actor=crew.analyst,
        team_id=crew.team.pk,
        name="D7 retention below 25%",
        metric=metric.pk,
        comparison="lt",
        threshold="25",
        periods=1,
        title="Win back new users",
        owner_role="ops",
    )
    services.observation_record(actor=crew.analyst, metric_id=metric.pk, date=START, value="25")
    assert services.watch_evaluate(watch_id=watch.pk) is None
    services.observation_record(
        actor=crew.analyst, metric_id=metric.pk, date=START + dt.timedelta(days=1), value="24.9"
    )
    assert services.watch_evaluate(watch_id=watch.pk) is not None


def test_a_watch_without_anyone_to_tell_is_refused(crew: Crew) -> None:
    with pytest.raises(services.InvalidInput) as refused:
        complaint_watch(crew, owner_role="")
    assert "owner_role" in refused.value.errors
    assert MetricWatch.objects.count() == 0


def test_an_engineer_may_not_add_a_watch(crew: Crew) -> None:
    with pytest.raises(services.RoleNotAllowed):
        services.watch_create(actor=crew.engineer, team_id=crew.team.pk, name="x")
    assert MetricWatch.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_concurrent_evaluations_fire_once(crew: Crew) -> None:
    watch = complaint_watch(crew)
    observe(crew, watch, 0, ["5.5", "6.1", "7"])
    barrier = threading.Barrier(6)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(services.watch_evaluate(watch_id=watch.pk))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(1 for result in results if result is not None) == 1
    assert len(opened(watch)) == 1
    assert WatchFiring.objects.count() == 1
    assert MetricWatch.objects.get(pk=watch.pk).fired_through == START + dt.timedelta(days=2)
    assert Decimal(WatchFiring.objects.get().values[-1]) == Decimal(7)
