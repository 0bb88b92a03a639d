"""A team backed up and restored has the same analytics (docs/backup.md), both ways:

- `export_history` to a file, the team deleted, set up again and `import_history`-ed from the file;
- on PostgreSQL, `pg_dump` of the whole database restored with `pg_restore` into a scratch database.

The history is months of backdated work made through the services by a seeded random walk: forward
steps, reworks, a lead's skips, iterations, closes done and won't-do, over requirements with different
AARRR stages, priorities and labels, so that every figure and filter has something to count."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from roles.models import Team
from tests.conftest import Crew
from tests.factories import READY_FIELDS, verify_tracking
from tests.reliability.figures import START, figures
from workflows import services
from workflows.models import IterationLoop, Requirement, StageEvent, StageReminder

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["propose", "design", "build", "instrument", "analyze", "optimize"]
OWNERS = {
    "propose": "ops",
    "design": "pm",
    "build": "engineer",
    "instrument": "engineer",
    "analyze": "analyst",
}


def prepare(crew: Crew, requirement: Requirement, stage: str, when: dt.datetime) -> None:
    """Fill in what the forward move out of `stage` is guarded by."""
    if stage == "design":
        services.requirement_update(requirement_id=requirement.pk, actor=crew.pm, design="https://wiki/spec")
    if stage == "instrument":
        services.requirement_update(
            requirement_id=requirement.pk, actor=crew.engineer, launch_date=when.date()
        )
        verify_tracking(requirement)
    if stage == "analyze":
        services.loop_record_analysis(
            requirement_id=requirement.pk,
            actor=crew.analyst,
            conclusion="flat",
            verdict="flat",
            core_metric_moved=False,
            behaviour_moved=True,
            feedback_positive=True,
        )


def random_history(crew: Crew, *, seed: int = 9, count: int = 12) -> None:
    """Backdated requirements walked at random through the workflow from January 2026 on."""
    rng = random.Random(seed)
    for n in range(count):
        when = START + dt.timedelta(days=n * 5, hours=rng.randint(0, 23))
        requirement = services.requirement_create(
            team=crew.team,
            actor=crew.ops,
            title=f"experiment {n}",
            at=when,
            priority=rng.choice(["P0", "P1", "P2", "P3"]),
            labels=rng.sample(["growth", "infra", "pricing"], k=rng.randint(0, 2)),
            **{**READY_FIELDS, "aarrr_stage": rng.choice(["acquisition", "activation", "retention"])},
        )
        stage = "propose"
        for _step in range(rng.randint(3, 16)):
            when += dt.timedelta(hours=rng.randint(1, 90), minutes=rng.randint(0, 59))
            roll = rng.random()
            if stage == "optimize":
                target, actor = ("close" if roll < 0.4 else "iterate"), crew.ops
            elif roll < 0.15 and stage != "propose":
                target, actor = STAGES[STAGES.index(stage) - 1], crew.by_role(OWNERS[stage])  # a rework
            elif roll < 0.25:
                target, actor = rng.choice([s for s in STAGES if s != stage]), crew.lead  # a lead's jump
            else:
                target, actor = STAGES[STAGES.index(stage) + 1], crew.by_role(OWNERS[stage])
                prepare(crew, requirement, stage, when)
            services.requirement_transition(
                requirement_id=requirement.pk,
                actor=actor,
                from_stage=stage,
                to_stage=target,
                at=when,
                outcome=rng.choice(["done", "wont_do"]) if target == "close" else "",
            )
            if target == "close":
                break
            stage = "propose" if target == "iterate" else target
    # An overall lead closes one requirement straight from where it is (a close outside optimize).
    open_one = (
        Requirement.objects.filter(team=crew.team, closed_at__isnull=True).select_related("stage").first()
    )
    assert open_one is not None
    services.requirement_transition(
        requirement_id=open_one.pk,
        actor=crew.lead,
        from_stage=open_one.stage.slug,
        to_stage="close",
        at=dt.datetime(2026, 5, 20, tzinfo=dt.UTC),
        outcome="wont_do",
    )


def lose_the_record(team: Team) -> None:
    """Delete every requirement of the team with its log: the loss a backup is for. The log is
    append-only and protected, so it goes in SQL, from the bottom up; the team and its workflow stay."""
    StageReminder.objects.filter(visit__requirement__team=team).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {StageEvent._meta.db_table} WHERE requirement_id IN "  # noqa: S608 - table names
            f"(SELECT id FROM {Requirement._meta.db_table} WHERE team_id = %s)",
            [team.pk],
        )
    IterationLoop.objects.filter(requirement__team=team).delete()
    Requirement.objects.filter(team=team).delete()


def kinds(team: Team) -> set[str]:
    return set(StageEvent.objects.filter(requirement__team=team).values_list("kind", flat=True))


def export_lose_import(crew: Crew, backup: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The team's figures before, and after its export was imported back into the emptied team."""
    random_history(crew)
    assert {"forward", "rework", "override", "iterate", "close"} <= kinds(crew.team)
    before = figures("GROW")
    assert before["all/calendar/cycle_time"]["count"] >= 5
    call_command("export_history", "GROW", output=str(backup))
    lose_the_record(crew.team)
    assert figures("GROW")["all/calendar/cycle_time"]["count"] == 0
    call_command("import_history", str(backup), team="GROW")
    return before, figures("GROW")


@pytest.mark.django_db
def test_a_team_that_lost_its_record_and_imported_its_json_export_has_the_same_analytics(
    crew: Crew, tmp_path: Path
) -> None:
    before, after = export_lose_import(crew, tmp_path / "grow.json")
    assert {key: value for key, value in after.items() if before[key] != value} == {}


@pytest.mark.django_db
def test_a_csv_export_restores_the_unfiltered_analytics_but_not_the_filters(
    crew: Crew, tmp_path: Path
) -> None:
    """The CSV holds the log, not the requirements' AARRR stage, priority and labels (docs/backup.md)."""
    before, after = export_lose_import(crew, tmp_path / "grow.csv")
    differ = {key.split("/")[0] for key, value in after.items() if before[key] != value}
    assert differ == {"acquisition", "p1", "growth"}


@pytest.mark.django_db
def test_a_restore_into_a_fresh_team_beside_the_original_has_the_same_analytics(
    crew: Crew, tmp_path: Path
) -> None:
    random_history(crew, seed=4)
    backup = tmp_path / "grow.json"
    call_command("export_history", "GROW", output=str(backup))
    services.team_setup(name="Growth again", key_prefix="AGAIN", creator=crew.lead, time_zone="UTC")
    call_command("import_history", str(backup), team="AGAIN")

    before, after = figures("GROW"), figures("AGAIN")
    strip = json.dumps(after).replace("AGAIN-", "GROW-")
    assert json.loads(strip) == before


def run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our arguments
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_dump and pg_restore need PostgreSQL")
def test_pg_dump_restored_into_a_scratch_database_has_the_same_analytics(crew: Crew, tmp_path: Path) -> None:
    random_history(crew, seed=21)
    before = figures("GROW")
    source = connection.settings_dict
    scratch = f"{source['NAME']}_restored"
    server = ["--host", source["HOST"] or "127.0.0.1", "--port", str(source["PORT"] or 5432)]
    server += ["--username", source["USER"] or "postgres"]
    dump = tmp_path / "opsteam.dump"
    run("pg_dump", *server, "--format=custom", "--no-owner", f"--file={dump}", source["NAME"])
    run("dropdb", *server, "--if-exists", scratch)
    run("createdb", *server, scratch)
    try:
        run("pg_restore", *server, "--no-owner", "--exit-on-error", f"--dbname={scratch}", str(dump))
        done = subprocess.run(  # noqa: S603 - our arguments
            [sys.executable, "-m", "tests.reliability.figures", scratch, "GROW"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        after = json.loads(done.stdout)
    finally:
        run("dropdb", *server, "--if-exists", scratch)
    assert before["all/calendar/cycle_time"]["count"] >= 5
    assert after == before
