"""Eight client processes hammer twenty requirements through the API; afterwards the log is whole.

Each client is a separate OS process with its own database connection (tests/reliability/hammer_client.py),
so the row locks of PostgreSQL decide, as they do between web workers. `pytest --long` runs for minutes
instead of seconds; the counts are printed (`-s`) for RELIABILITY.md."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction

from roles.models import Team
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team
from tests.reliability.logcheck import log_problems
from workflows import services
from workflows.models import Requirement, StageEvent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks and separate connections need PostgreSQL"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8
REQUIREMENTS = 20
SHORT_SECONDS = 10.0
LONG_SECONDS = 180.0
STAGES = ["propose", "design", "build", "instrument", "analyze", "optimize"]


def run_clients(orders: list[dict[str, Any]], timeout: float, workdir: Path) -> list[dict[str, Any]]:
    """Start one process per order, all at once; return every response they recorded. Their output
    goes to files, not pipes: a client must never wait on a full pipe the test is not reading."""
    processes = []
    for n, order in enumerate(orders):
        (workdir / f"orders-{n}.json").write_text(json.dumps(order))
        with (
            (workdir / f"orders-{n}.json").open() as orders_in,
            (workdir / f"out-{n}.jsonl").open("w") as out,
            (workdir / f"err-{n}.log").open("w") as err,
        ):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.reliability.hammer_client"],
                    cwd=ROOT,
                    stdin=orders_in,
                    stdout=out,
                    stderr=err,
                )
            )
    try:
        while not all((workdir / f"ready-{n}").exists() for n in range(len(orders))):
            assert all(process.poll() is None for process in processes), "a client died while starting"
            time.sleep(0.1)
        # Written whole, then renamed: a client never reads a half-written start time.
        (workdir / "go.tmp").write_text(str(time.time() + 0.5))
        (workdir / "go.tmp").replace(workdir / "go")
        records: list[dict[str, Any]] = []
        for n, process in enumerate(processes):
            code = process.wait(timeout=timeout)
            assert code == 0, (workdir / f"err-{n}.log").read_text()[-3000:]
            lines = (workdir / f"out-{n}.jsonl").read_text().splitlines()
            records += [json.loads(line) for line in lines if line.strip()]
    finally:
        for process in processes:  # a failed client leaves no others hammering a database being dropped
            if process.poll() is None:
                process.kill()
                process.wait()
    return records


def database_name() -> str:
    return str(connection.settings_dict["NAME"])


@pytest.fixture
def twenty(crew: Crew) -> list[Requirement]:
    return [
        services.requirement_create(team=crew.team, actor=crew.ops, title=f"hammered {n}", **READY_FIELDS)
        for n in range(REQUIREMENTS)
    ]


def test_eight_processes_hammering_twenty_requirements_lose_and_duplicate_nothing(
    crew: Crew, twenty: list[Requirement], long_run: bool, tmp_path: Path
) -> None:
    seconds = LONG_SECONDS if long_run else SHORT_SECONDS
    leads = [add_member(crew.team, ["lead"], username=f"lead{n}") for n in range(CLIENTS)]
    members = {role: crew.by_role(role).username for role in ("ops", "pm", "engineer", "analyst")}
    ids = [r.pk for r in twenty]
    orders = [
        {
            "mode": "transitions",
            "client": n,
            "database": database_name(),
            "seed": n,
            "folder": str(tmp_path),
            "seconds": seconds,
            "requirements": ids,
            "stages": STAGES,
            "lead": leads[n].username,
            "members": members,
        }
        for n in range(CLIENTS)
    ]
    records = run_clients(orders, timeout=seconds + 120, workdir=tmp_path)

    statuses = Counter(r["status"] for r in records)
    moves = {e.note: e for e in StageEvent.objects.filter(requirement_id__in=ids).exclude(kind="create")}
    successes = {r["op"] for r in records if r["status"] == 200}
    refused = {r["op"] for r in records if r["status"] != 200}
    counts = {
        "clients": CLIENTS,
        "seconds": seconds,
        "operations": len(records),
        "successes": len(successes),
        "conflicts_409": statuses[409],
        "other_refusals": {k: v for k, v in statuses.items() if k not in (200, 409)},
        "events": len(moves),
        "iterates": sum(e.kind == "iterate" for e in moves.values()),
    }
    print(f"\nhammer: {json.dumps(counts)}")

    assert set(statuses) <= {200, 400, 403, 409}, statuses
    assert statuses[200] > 0 and statuses[409] > 0, statuses  # the run raced, and some of it won
    assert len(records) == len({r["op"] for r in records})
    # One event per success (notes are unique, so a duplicate would collapse here: counted below too).
    assert StageEvent.objects.filter(requirement_id__in=ids).exclude(kind="create").count() == len(moves)
    assert set(moves) == successes
    assert not refused & set(moves)
    for record in records:
        if record["status"] == 200:
            event = moves[record["op"]]
            assert (event.requirement_id, event.to_stage) == (record["requirement"], record["stage"])
    problems = {pk: log_problems(pk) for pk in ids}
    assert {pk: p for pk, p in problems.items() if p} == {}


def test_parallel_creation_in_three_teams_keeps_keys_dense_and_unique(
    crew: Crew, long_run: bool, tmp_path: Path
) -> None:
    creator = UserFactory(username="creator")
    teams: list[Team] = [
        crew.team,
        make_team(lead=creator, key_prefix="SEC"),
        make_team(lead=creator, key_prefix="TRD"),
    ]
    add_member(crew.team, ["ops"], user=creator)
    per_client = 60 if long_run else 15
    orders = [
        {
            "mode": "create",
            "client": n,
            "database": database_name(),
            "seed": 100 + n,
            "folder": str(tmp_path),
            "user": creator.username,
            "teams": [t.pk for t in teams],
            "count": per_client,
        }
        for n in range(CLIENTS)
    ]
    records = run_clients(orders, timeout=300, workdir=tmp_path)

    print(f"\nparallel creation: {CLIENTS} clients × {per_client} = {len(records)} requirements in 3 teams")
    assert Counter(r["status"] for r in records) == {201: CLIENTS * per_client}
    made: dict[int, list[str]] = defaultdict(list)
    for record in records:
        made[record["team"]].append(record["key"])
    for team in teams:
        keys = sorted(made[team.pk], key=lambda k: int(k.split("-")[1]))
        assert keys == [f"{team.key_prefix}-{n}" for n in range(1, len(keys) + 1)]
        stored = Requirement.objects.filter(team=team).order_by("number")
        assert list(stored.values_list("key", flat=True)) == keys


def test_a_move_that_waited_on_the_lock_for_an_iterate_lands_in_the_new_loop(crew: Crew) -> None:
    """The lock query reads the requirement's current loop in a subquery. When it waited for a
    transaction that iterated the requirement, PostgreSQL hands back the row as it is now (loop 2) but
    evaluates the subquery in the snapshot from before the wait, where loop 2 did not exist: the move
    was written with no loop (a 500, found by the hammer). It must land in loop 2."""
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    iterating, waiting = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def iterate() -> None:
        try:
            with transaction.atomic():
                services.requirement_transition(
                    requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="iterate"
                )
                iterating.set()
                waiting.wait(timeout=10)
                time.sleep(1)  # the move below is now queued on the row lock
        finally:
            connections.close_all()

    def move() -> None:
        try:
            iterating.wait(timeout=10)
            waiting.set()
            results["move"] = services.requirement_transition(
                requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
            )
        except Exception as exc:
            results["move"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=iterate), threading.Thread(target=move)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert isinstance(results["move"], StageEvent), results
    assert results["move"].loop.number == 2
    assert log_problems(requirement.pk) == []
