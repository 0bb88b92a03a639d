"""The SLA sweep's queries, pinned: a batch costs the same whether one requirement is overdue or many, in
one stage or several, in one team or several, reminded or escalated, assigned or not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.db import connection

from notifications.models import Kind, Notification
from tests.conftest import Crew
from tests.factories import READY_FIELDS, add_member, make_team
from workflows import reminders, services
from workflows.models import Requirement, StageReminder

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)
T = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # the crew's team counts calendar time in UTC

# In the caller's transaction (a savepoint and its release, 2, as each test runs in one): the batch,
# locked, with each visit's event and loop (1); the reminders already sent (1); the new ones (1); the next
# reminder times (1); the members of the batch's teams with their roles (1); then `notify`: the
# recipients with their settings and the teams' webhooks (2), then the notifications, the deliveries
# and their links: one statement on PostgreSQL, whatever their number; three on SQLite, where a
# statement holds at most 999 parameters, so a batch whose notifications number more than 124 inserts
# them in several statements.
SLA_SWEEP = 10 if connection.vendor == "postgresql" else 12
IDLE_SLA_SWEEP = 3  # the savepoint, the batch (empty), the release


def overdue(movers: dict[str, Any], *, stage: str, at: dt.datetime, title: str, **fields: Any) -> Requirement:
    """A requirement that entered `stage` (propose, design or build) at `at`, moved by `movers` (the
    member who moves it out of each stage); backdated, so the moves notify nobody."""
    first = movers["propose"]
    requirement = services.requirement_create(
        team=first.memberships.get().team,
        actor=first,
        title=title,
        at=at,
        design="spec",
        **READY_FIELDS,
        **fields,
    )
    for before, after in (("propose", "design"), ("design", "build")):
        if before == stage:
            break
        services.requirement_transition(
            requirement_id=requirement.pk, actor=movers[before], from_stage=before, to_stage=after, at=at
        )
    return requirement


def sweep_at(moment: dt.datetime, django_assert_num_queries: Any, queries: int = SLA_SWEEP) -> int:
    with time_machine.travel(moment, tick=False), django_assert_num_queries(queries):
        sent, more = reminders.sla_sweep()
    assert more is False
    return sent


def test_sla_sweep_queries_are_the_same_for_one_overdue_requirement_or_many_of_every_kind(
    crew: Crew, django_assert_num_queries: Any
) -> None:
    grow = {"propose": crew.ops, "design": crew.pm}
    overdue(grow, stage="design", at=T, title="alone")

    assert sweep_at(T + 73 * HOUR, django_assert_num_queries) == 1

    shop = make_team(key_prefix="SHOP")
    movers = {"propose": add_member(shop, ["ops"]), "design": add_member(shop, ["pm"])}
    owner = add_member(shop, ["engineer", "analyst"])
    late = T + 100 * HOUR
    for n in range(12):
        stage = ("propose", "design", "build")[n % 3]
        overdue(grow, stage=stage, at=late, title=f"grow {n}")
        overdue(movers, stage=stage, at=late, title=f"shop {n}", assignee=owner.pk if n % 2 else None)

    # 300 h on, every new one is past its SLA; those in propose (48 h) and design (72 h) are past twice
    # it too, those in build (240 h) not yet; the first one is escalated.
    sent = sweep_at(late + 300 * HOUR, django_assert_num_queries)

    assert sent == 1 + 2 * 16 + 8
    assert StageReminder.objects.count() == 1 + sent
    assert Notification.objects.filter(kind=Kind.ESCALATION).values("requirement").distinct().count() == 17
    # The shop's engineer owns build (four there) and is the assignee of six, two of them in build.
    assert Notification.objects.filter(kind=Kind.STAGE_OVERDUE, recipient=owner).count() == 8


def test_a_sweep_with_nothing_overdue_costs_one_query(crew: Crew, django_assert_num_queries: Any) -> None:
    overdue({"propose": crew.ops, "design": crew.pm}, stage="design", at=T, title="on time")

    assert sweep_at(T + 71 * HOUR, django_assert_num_queries, IDLE_SLA_SWEEP) == 0


def test_a_capped_sweep_says_whether_more_are_waiting(crew: Crew) -> None:
    grow = {"propose": crew.ops, "design": crew.pm}
    for n in range(3):
        overdue(grow, stage="design", at=T, title=f"late {n}")

    with time_machine.travel(T + 73 * HOUR, tick=False):
        assert reminders.sla_sweep(batch=2) == (2, True)
        assert reminders.sla_sweep(batch=2) == (1, False)
        assert reminders.sla_sweep() == (0, False)
    assert StageReminder.objects.count() == 3
