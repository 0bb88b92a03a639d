"""Each stage event carries `since`, when the stage it leaves was entered (the time of the requirement's
event before it), so the visit it ends is readable from the one row. What writes it: the services here;
the history import, generate_load and the analytics data builder in their own tests; the migration's
backfill below."""

from __future__ import annotations

import datetime as dt
import importlib
import io

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection

from tests.conftest import Crew
from workflows import services
from workflows.models import StageEvent

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def walk(crew: Crew) -> list[StageEvent]:
    """A creation, a rework, an override, an iterate and a close, some at the same instant."""
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="Red packet", at=T0)
    steps = [
        ("lead", "propose", "build", T0 + dt.timedelta(hours=5)),
        ("engineer", "build", "design", T0 + dt.timedelta(hours=5)),  # back, the same instant
        ("lead", "design", "optimize", T0 + dt.timedelta(days=2, microseconds=7)),
        ("ops", "optimize", "iterate", T0 + dt.timedelta(days=3)),  # loop 2 begins at propose
        ("lead", "propose", "optimize", T0 + dt.timedelta(days=4)),
    ]
    for role, from_stage, to_stage, at in steps:
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=crew.by_role(role),
            from_stage=from_stage,
            to_stage=to_stage,
            at=at,
        )
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.ops,
        from_stage="optimize",
        to_stage="close",
        outcome="done",
        at=T0 + dt.timedelta(days=5),
    )
    return list(StageEvent.objects.filter(requirement=requirement).order_by("at", "id"))


def test_each_move_records_when_the_stage_it_leaves_was_entered(crew: Crew) -> None:
    log = walk(crew)
    assert [e.kind for e in log] == [
        "create",
        "override",
        "rework",
        "override",
        "iterate",
        "override",
        "close",
    ]
    assert log[0].since is None
    assert [e.since for e in log[1:]] == [e.at for e in log[:-1]]
    # The first move of loop 2 leaves the stage the iterate entered.
    assert log[5].since == log[4].at == T0 + dt.timedelta(days=3)


class _Editor:
    """What the backfill uses of a schema editor (SQLite's refuses to open inside the test's transaction)."""

    def quote_name(self, name: str) -> str:
        return connection.ops.quote_name(name)

    def execute(self, sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)


def test_the_migration_backfill_gives_what_the_services_write(crew: Crew) -> None:
    log = walk(crew)
    other = walk(crew)
    written = {e.pk: e.since for e in [*log, *other]}
    with connection.cursor() as cursor:  # the queryset refuses updates: the log is append-only
        cursor.execute(f"UPDATE {StageEvent._meta.db_table} SET since = NULL")  # noqa: S608
    assert not StageEvent.objects.filter(since__isnull=False).exists()
    fill_since = importlib.import_module("workflows.migrations.0008_event_since").fill_since
    fill_since(apps, _Editor())
    assert dict(StageEvent.objects.values_list("pk", "since")) == written


def test_the_log_check_finds_and_repairs_a_since_that_disagrees(crew: Crew) -> None:
    log = walk(crew)
    written = {e.pk: e.since for e in log}
    call_command("check_event_log")  # all agree: no error
    table = StageEvent._meta.db_table
    with connection.cursor() as cursor:  # three rows written by other means than the services
        cursor.execute(f"UPDATE {table} SET since = NULL WHERE id = %s", [log[2].pk])  # noqa: S608
        cursor.execute(f"UPDATE {table} SET since = %s WHERE id = %s", [T0, log[0].pk])  # noqa: S608
        cursor.execute(f"UPDATE {table} SET since = %s WHERE id = %s", [T0, log[4].pk])  # noqa: S608
    with pytest.raises(CommandError, match="3 stage events"):
        call_command("check_event_log")
    out = io.StringIO()
    call_command("check_event_log", "--repair", stdout=out)
    assert "Corrected the since of 3 stage events." in out.getvalue()
    assert dict(StageEvent.objects.values_list("pk", "since")) == written
    call_command("check_event_log")
