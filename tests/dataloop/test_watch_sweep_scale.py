"""The hourly sweep at scale (issue #8): it works through the watches in batches whose queries do not grow
with the number of watches or observations, reads each metric only over the recent window its watches
need, and still fires a streak once."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dataloop import services
from dataloop.models import Metric, MetricWatch, WatchFiring
from tests.conftest import Crew
from workflows import services as workflow_services
from workflows.models import Requirement

LAST_DAY = dt.date(2026, 11, 30)
METRICS = ["DAU", "Complaint rate", "Churn rate", "D7 retention", "Conversion rate", "NPS"]
# (comparison, threshold, periods, period): none fires on a metric that stays at 3.
QUIET = [
    ("gt", "5", 3, "day"),
    ("lt", "1", 1, "day"),
    ("rises", None, 2, "week"),
    ("falls", "0.5", 3, "month"),
    ("gte", "4", 2, "week"),
]


def import_days(crew: Crew, metric: str, last_day: dt.date, values: list[str]) -> None:
    """One whole-product value a day for `metric`, the last one on `last_day`, through the CSV import."""
    first = last_day - dt.timedelta(days=len(values) - 1)
    lines = ["metric,date,value"] + [
        f"{metric},{(first + dt.timedelta(days=offset)).isoformat()},{value}"
        for offset, value in enumerate(values)
    ]
    services.observations_import(actor=crew.analyst, team_id=crew.team.pk, content="\n".join(lines).encode())


def add_watch(
    crew: Crew, metric: str, comparison: str, threshold: str | None, periods: int, period: str
) -> Any:
    return services.watch_create(
        actor=crew.ops,
        team_id=crew.team.pk,
        name=f"{metric} {comparison} {threshold} for {periods} {period}",
        metric=Metric.objects.get(team=crew.team, name=metric).pk,
        comparison=comparison,
        threshold=threshold,
        periods=periods,
        period=period,
        title=f"Look at {metric}",
        owner_role="ops",
    )


def quiet_watches(crew: Crew, count: int) -> None:
    """`count` watches over six metrics with 400 days of data each, none of which fires."""
    for metric in METRICS:
        import_days(crew, metric, LAST_DAY, ["3"] * 400)
    for index in range(count):
        add_watch(crew, METRICS[index % len(METRICS)], *QUIET[index % len(QUIET)])


@pytest.mark.parametrize("watches", [3, 30])
def test_the_sweep_makes_the_same_queries_for_3_watches_as_for_30(
    crew: Crew, watches: int, django_assert_num_queries: Any
) -> None:
    quiet_watches(crew, watches)

    # savepoint, lock the watches, read the windows, mark them evaluated, release
    with django_assert_num_queries(5):
        assert services.watches_evaluate() == 0

    assert MetricWatch.objects.filter(evaluated_at__isnull=True).count() == 0


def test_a_firing_costs_the_same_queries_among_3_watches_as_among_30(crew: Crew) -> None:
    counts = []
    for quiet in (2, 29):
        MetricWatch.objects.all().delete()
        quiet_watches(crew, quiet)
        import_days(crew, "LTV", LAST_DAY, ["6", "7", "8"])
        add_watch(crew, "LTV", "gt", "5", 3, "day")
        with CaptureQueriesContext(connection) as queries:
            assert services.watches_evaluate() == 1
        counts.append(len(queries))

    assert counts[0] == counts[1]


def test_the_sweep_works_through_every_watch_in_batches(crew: Crew, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "WATCH_BATCH", 4)
    quiet_watches(crew, 9)
    import_days(crew, "LTV", LAST_DAY, ["6", "7", "8"])
    add_watch(crew, "LTV", "gt", "5", 3, "day")  # the tenth watch, alone in the third batch

    assert services.watches_evaluate() == 1
    assert MetricWatch.objects.filter(evaluated_at__isnull=True).count() == 0


def test_a_streak_fires_once_however_often_the_sweep_runs(crew: Crew) -> None:
    quiet_watches(crew, 5)
    import_days(crew, "LTV", LAST_DAY, ["6", "7", "8"])
    watch = add_watch(crew, "LTV", "gt", "5", 3, "day")

    assert services.watches_evaluate() == 1
    assert services.watches_evaluate() == 0
    [requirement] = Requirement.objects.filter(team=crew.team, title="Look at LTV")
    workflow_services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="close", outcome="done"
    )
    assert services.watches_evaluate() == 0  # closed, but the same streak

    firing = WatchFiring.objects.get()
    assert (firing.watch_id, firing.streak_end, firing.requirement) == (watch.pk, LAST_DAY, requirement)
    assert MetricWatch.objects.get(pk=watch.pk).fired_through == LAST_DAY


def test_a_streak_older_than_the_window_does_not_fire(crew: Crew) -> None:
    import_days(crew, "LTV", LAST_DAY - dt.timedelta(days=100), ["6", "7", "8"])
    import_days(crew, "LTV", LAST_DAY, ["3"] * 30)
    add_watch(crew, "LTV", "gt", "5", 3, "day")

    assert services.watches_evaluate() == 0
    assert WatchFiring.objects.count() == 0


def test_each_metric_is_read_up_to_its_own_latest_day(crew: Crew) -> None:
    # The first metric's data stopped a year before the second's: its last three days still decide.
    import_days(crew, "LTV", LAST_DAY - dt.timedelta(days=365), ["6", "7", "8"])
    import_days(crew, "ARPU", LAST_DAY, ["3"] * 30)
    watch = add_watch(crew, "LTV", "gt", "5", 3, "day")
    add_watch(crew, "ARPU", "gt", "5", 3, "day")

    assert services.watches_evaluate() == 1
    assert WatchFiring.objects.get().watch_id == watch.pk


def test_watches_of_one_metric_each_read_their_own_periods(crew: Crew) -> None:
    # Monthly means 4 to 8 from July to November, rising every month; the daily watch on the same metric
    # (over 10 two days running) stays quiet. Each reads its own periods from the one window read.
    values = ["4"] * 31 + ["5"] * 31 + ["6"] * 30 + ["7"] * 31 + ["8"] * 30
    import_days(crew, "Churn rate", LAST_DAY, values)
    monthly = add_watch(crew, "Churn rate", "rises", None, 3, "month")
    add_watch(crew, "Churn rate", "gt", "10", 2, "day")

    assert services.watches_evaluate() == 1
    firing = WatchFiring.objects.get()
    assert (firing.watch_id, firing.streak_start, firing.values) == (
        monthly.pk,
        dt.date(2026, 9, 1),
        ["6", "7", "8"],
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_concurrent_sweeps_fire_each_streak_once(crew: Crew) -> None:
    for metric in METRICS:
        import_days(crew, metric, LAST_DAY, ["6", "7", "8"])
        add_watch(crew, metric, "gt", "5", 3, "day")
    barrier = threading.Barrier(4)
    fired: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            fired.append(services.watches_evaluate())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(fired) == len(METRICS)
    assert WatchFiring.objects.count() == len(METRICS)
    assert Requirement.objects.filter(team=crew.team).count() == len(METRICS)
