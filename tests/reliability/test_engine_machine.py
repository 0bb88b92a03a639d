"""A hypothesis state machine drives requirements through the services by random people in random
roles — members of each role, a lead, a two-role member, a member of another team, site staff — with
random targets (every stage, iterate, close), sometimes from a stage they no longer see, while the
guard fields are filled in and emptied at random.

Each move's outcome is predicted from the workflow's defaults and the database (not from the engine):
who is refused, what is a conflict, what is guarded, what kind of event a success writes. A refused move
must change nothing at all. After every step each requirement's row, loops and SLA deadlines must agree
with a replay of its event log (tests/reliability/logcheck.py). `pytest --long` runs many more examples."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from opsteam.exceptions import (
    Conflict,
    DomainError,
    NoSuchTransition,
    NotFound,
    RequiredFieldMissing,
    RequirementClosed,
    RoleNotAllowed,
)
from tests.conftest import Crew
from tests.factories import READY_FIELDS, add_member, make_team, verify_tracking
from tests.reliability.logcheck import log_problems
from workflows import services
from workflows.defaults import DEFAULT_STAGES, DEFAULT_TRANSITIONS
from workflows.models import IterationLoop, Requirement, StageEvent, TrackingEvent

pytestmark = pytest.mark.django_db

STAGES = [slug for slug, *_rest in DEFAULT_STAGES]
TARGETS = [*STAGES, "iterate", "close"]
# (from, target) → (kind, roles allowed, required fields), from the defaults, independent of the engine.
DEFINED = {
    (from_stage, kind if kind in ("iterate", "close") else str(to_stage)): (
        kind,
        frozenset(roles),
        tuple(fields),
    )
    for from_stage, to_stage, kind, roles, fields in DEFAULT_TRANSITIONS
}
PEOPLE = ("lead", "ops", "pm", "engineer", "analyst", "pm_engineer", "outsider", "staff")


@dataclass(frozen=True)
class Person:
    user: User
    roles: frozenset[str]  # in the requirement's team; empty for the outsider and staff
    sees: bool  # may see the team's requirements at all


def people(crew: Crew) -> dict[str, Person]:
    other = make_team(name="Elsewhere")
    found = {role: Person(crew.by_role(role), frozenset({role}), True) for role in PEOPLE[:5]}
    found["pm_engineer"] = Person(
        add_member(crew.team, ["pm", "engineer"]), frozenset({"pm", "engineer"}), True
    )
    found["outsider"] = Person(add_member(other, ["lead", "ops"]), frozenset(), False)
    found["staff"] = Person(User.objects.create_user("staff", is_staff=True), frozenset(), True)
    return found


def guards_met(requirement_id: int, fields: tuple[str, ...]) -> bool:
    """The move's required fields, read straight from the rows (the tracking plan: some events, all verified)."""
    requirement = Requirement.objects.get(pk=requirement_id)
    loop = IterationLoop.objects.get(requirement=requirement, number=requirement.loop_number)
    statuses = list(TrackingEvent.objects.filter(loop=loop).values_list("status", flat=True))
    values: dict[str, Any] = {
        "conclusion": loop.conclusion,
        "verdict": loop.verdict,
        "tracking_plan": bool(statuses) and all(s == "verified" for s in statuses),
    }
    return all(values[name] if name in values else getattr(requirement, name) for name in fields)


def snapshot(requirement_id: int) -> tuple[Any, ...]:
    """Everything a move may write, for comparing before and after a refused one."""
    row = Requirement.objects.filter(pk=requirement_id).values().get()
    loops = list(IterationLoop.objects.filter(requirement_id=requirement_id).order_by("number").values())
    events = list(
        StageEvent.objects.filter(requirement_id=requirement_id).order_by("id").values_list("id", flat=True)
    )
    return row, loops, events


def expected_outcome(person: Person, requirement_id: int, claimed: str, target: str) -> type[Exception] | str:
    """The error class a move must raise, or the kind of event it must write."""
    requirement = Requirement.objects.select_related("stage").get(pk=requirement_id)
    current = requirement.stage.slug
    if not person.sees:
        return NotFound
    if requirement.closed_at is not None:
        return RequirementClosed
    if claimed != current:
        return Conflict
    if not person.roles:
        return RoleNotAllowed
    if target == current:
        return NoSuchTransition
    defined = DEFINED.get((current, target))
    if defined and person.roles & defined[1] and guards_met(requirement_id, defined[2]):
        return defined[0]
    if "lead" in person.roles:
        return target if target in ("iterate", "close") else "override"
    if defined and person.roles & defined[1]:
        return RequiredFieldMissing
    return RoleNotAllowed


class EngineMachine(RuleBasedStateMachine):
    """Bound to a crew by `machine_for`; each example opens its own requirements."""

    crew: Crew
    cast: dict[str, Person]
    tallies: list[dict[str, int]]  # one per example, for the summary

    def __init__(self) -> None:
        super().__init__()
        self.requirements: list[int] = []
        self.tally: dict[str, int] = {}

    def teardown(self) -> None:
        self.tallies.append(self.tally)

    def count(self, name: str) -> None:
        self.tally[name] = self.tally.get(name, 0) + 1

    @initialize(ready=st.booleans())
    def open_first(self, ready: bool) -> None:
        self.open_another(ready)

    @precondition(lambda self: len(self.requirements) < 3)
    @rule(ready=st.booleans())
    def open_another(self, ready: bool) -> None:
        fields = READY_FIELDS if ready else {}
        requirement = services.requirement_create(
            team=self.crew.team, actor=self.crew.ops, title="machine", **fields
        )
        self.requirements.append(requirement.pk)

    @rule(
        index=st.integers(0, 2),
        who=st.sampled_from([*PEOPLE, "owner", "owner", "lead"]),
        to=st.sampled_from(["next", "next", "back", "close", *TARGETS]),
        stale=st.tuples(st.integers(0, 4), st.sampled_from(STAGES)),
        outcome=st.sampled_from(["done", "wont_do"]),
    )
    def move(self, index: int, who: str, to: str, stale: tuple[int, str], outcome: str) -> None:
        """`next` and `back` are the workflow's own step forward (iterate or close at the end) and back
        from where the requirement is; the `owner` is someone whose role may make the move. One move in
        five claims a random stage, which is stale unless it happens to be the current one."""
        requirement_id = self.requirements[index % len(self.requirements)]
        current = Requirement.objects.select_related("stage").get(pk=requirement_id).stage.slug
        wanted = {"next": ("forward", "iterate", "close"), "back": ("rework",)}.get(to)
        steps = [
            key[1] for key, (kind, *_r) in DEFINED.items() if key[0] == current and kind in (wanted or ())
        ]
        if wanted and not steps:  # no step back from the first stage: go forward instead
            steps = [
                key[1] for key, (kind, *_r) in DEFINED.items() if key[0] == current and kind == "forward"
            ]
        target = (steps[index % len(steps)] if steps else current) if wanted else to
        if who == "owner":
            allowed = DEFINED.get((current, target), ("", frozenset({"ops"}), ()))[1]
            who = next(name for name in PEOPLE if self.cast[name].roles & allowed)
        person = self.cast[who]
        claimed = stale[1] if stale[0] == 0 else current
        expected = expected_outcome(person, requirement_id, claimed, target)
        before = snapshot(requirement_id)
        try:
            event = services.requirement_transition(
                requirement_id=requirement_id,
                actor=person.user,
                from_stage=claimed,
                to_stage=target,
                outcome=outcome if target == "close" else "",
            )
        except DomainError as exc:
            assert isinstance(expected, type) and type(exc) is expected, (who, claimed, target, exc, expected)
            assert snapshot(requirement_id) == before, (
                f"a refused move ({type(exc).__name__}) changed something"
            )
            self.count(type(exc).__name__)
            return
        assert event.kind == expected, (who, claimed, target, event.kind, expected)
        assert (event.from_stage, event.actor_id) == (current, person.user.pk)
        assert event.to_stage == ("" if target == "close" else STAGES[0] if target == "iterate" else target)
        assert snapshot(requirement_id)[2] == [*before[2], event.pk]
        self.count(event.kind)

    @rule(
        index=st.integers(0, 2),
        who=st.sampled_from(PEOPLE),
        what=st.sampled_from(["fill", "empty", "analyse"]),
    )
    def prepare(self, index: int, who: str, what: str) -> None:
        """Fill in or empty the fields the forward moves are guarded by, or record the loop's analysis
        (analysts and leads only) and verify its tracking plan, as whoever it is."""
        requirement_id = self.requirements[index % len(self.requirements)]
        person = self.cast[who]
        before = snapshot(requirement_id)
        try:
            if what == "analyse":
                services.loop_record_analysis(
                    requirement_id=requirement_id,
                    actor=person.user,
                    conclusion="D1 +3pt",
                    verdict="improved",
                    core_metric_moved=True,
                    behaviour_moved=True,
                    feedback_positive=True,
                )
            else:
                fill = what == "fill"
                services.requirement_update(
                    requirement_id=requirement_id,
                    actor=person.user,
                    design="https://wiki/spec" if fill else "",
                    launch_date=dt.date(2026, 3, 7) if fill else None,
                    hypothesis=READY_FIELDS["hypothesis"] if fill else "",
                )
        except DomainError:
            assert snapshot(requirement_id) == before, f"a refused {what} changed something"
            self.count(f"{what} refused")
            return
        if what == "analyse":
            assert person.roles & {"analyst", "lead"}, f"{who} recorded an analysis"
            verify_tracking(Requirement.objects.get(pk=requirement_id))

    @invariant()
    def every_log_replays_to_its_requirement(self) -> None:
        problems = {pk: log_problems(pk) for pk in self.requirements}
        assert {pk: p for pk, p in problems.items() if p} == {}


def test_random_moves_by_random_roles_keep_every_invariant(crew: Crew, long_run: bool) -> None:
    tallies: list[dict[str, int]] = []
    machine = type(
        "BoundEngineMachine", (EngineMachine,), {"crew": crew, "cast": people(crew), "tallies": tallies}
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=300 if long_run else 25,
            stateful_step_count=60 if long_run else 30,
            deadline=None,
            derandomize=not long_run,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    total: dict[str, int] = {}
    for tally in tallies:
        for name, n in tally.items():
            total[name] = total.get(name, 0) + n
    print(f"\nengine machine: {len(tallies)} runs, {dict(sorted(total.items()))}")
    # The run reached the interesting places: successes of every kind and each refusal.
    assert {"forward", "override", "iterate", "close", "Conflict", "RoleNotAllowed", "NotFound"} <= set(total)
