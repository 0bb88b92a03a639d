"""Races on PostgreSQL with real connections: row locks decide, the log stays whole."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections

from opsteam.exceptions import Conflict
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services
from workflows.models import Requirement, StageEvent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` threads released at the same instant; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_racing_transitions_from_the_same_stage_one_wins(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    services.requirement_update(requirement_id=requirement.pk, actor=crew.pm, design="spec")
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    # pm moves forward while, at the same instant, pm's colleague sends it back: both saw "design".
    targets = ["build", "propose"]
    results = run_together(
        2,
        lambda i: services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.pm, from_stage="design", to_stage=targets[i]
        ),
    )
    winners = [r for r in results if isinstance(r, StageEvent)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert (len(winners), len(losers)) == (1, 1), results
    requirement.refresh_from_db()
    events = list(StageEvent.objects.filter(requirement=requirement).order_by("at", "id"))
    assert len(events) == 3
    assert events[-1].pk == winners[0].pk
    assert requirement.stage.slug == events[-1].to_stage
    assert requirement.stage_entered_at == events[-1].at


def test_fifty_parallel_creations_get_fifty_consecutive_keys(crew: Crew) -> None:
    results = run_together(
        50, lambda i: services.requirement_create(team=crew.team, actor=crew.ops, title=f"parallel {i}").key
    )
    assert all(isinstance(r, str) for r in results), [r for r in results if not isinstance(r, str)]
    assert sorted(results, key=lambda k: int(k.split("-")[1])) == [f"GROW-{n}" for n in range(1, 51)]
    assert Requirement.objects.filter(team=crew.team).count() == 50
