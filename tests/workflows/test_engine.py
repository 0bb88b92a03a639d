"""The pure engine, without a database: every move of the default workflow for every role."""

from __future__ import annotations

import itertools

import pytest

from opsteam.exceptions import (
    NoSuchTransition,
    RequiredFieldMissing,
    RequirementClosed,
    RoleNotAllowed,
    UnknownStage,
)
from workflows import engine
from workflows.defaults import DEFAULT_STAGES, DEFAULT_TRANSITIONS

STAGES = ["propose", "design", "build", "instrument", "analyze", "optimize"]
TARGETS = [*STAGES, "iterate", "close"]
ROLES = ["ops", "pm", "engineer", "analyst", "lead"]

# Written out from PRODUCT.md §3, independently of workflows/defaults.py, so a wrong default fails here.
EXPECTED: dict[tuple[str, str], tuple[str, set[str]]] = {
    ("propose", "design"): ("forward", {"ops"}),
    ("design", "build"): ("forward", {"pm"}),
    ("build", "instrument"): ("forward", {"engineer"}),
    ("instrument", "analyze"): ("forward", {"engineer", "analyst"}),
    ("analyze", "optimize"): ("forward", {"analyst"}),
    ("optimize", "iterate"): ("iterate", {"ops"}),
    ("optimize", "close"): ("close", {"ops"}),
    ("design", "propose"): ("rework", {"pm"}),
    ("build", "design"): ("rework", {"engineer"}),
    ("instrument", "build"): ("rework", {"engineer", "analyst"}),
    ("analyze", "instrument"): ("rework", {"analyst"}),
}

ALL_FIELDS = {
    "title": "t",
    "hypothesis": "h",
    "target_metric": "m",
    "aarrr_stage": "retention",
    "design": "https://wiki/spec",
    "launch_date": "2026-03-06",
    "conclusion": "moved",
    "verdict": "improved",
    "tracking_plan": True,
}

# The guards of each defined move, written out like EXPECTED.
EXPECTED_REQUIRED: dict[tuple[str, str], set[str]] = {
    ("propose", "design"): {"title", "hypothesis", "target_metric", "aarrr_stage"},
    ("design", "build"): {"design"},
    ("instrument", "analyze"): {"launch_date", "tracking_plan"},
    ("analyze", "optimize"): {"conclusion", "verdict"},
}

TRACKING_PLAN_MESSAGE = (
    "The tracking plan needs at least one event, and every event verified, before this move."
)


def default_definition() -> engine.WorkflowDef:
    return engine.WorkflowDef(
        stages=tuple(
            engine.StageDef(slug=slug, name=name, order=i, owner_roles=frozenset(owners), sla_hours=sla)
            for i, (slug, name, owners, sla) in enumerate(DEFAULT_STAGES, start=1)
        ),
        transitions=tuple(
            engine.TransitionDef(
                from_stage=f, to_stage=t, kind=k, allowed_roles=frozenset(r), required_fields=tuple(req)
            )
            for f, t, k, r, req in DEFAULT_TRANSITIONS
        ),
    )


WORKFLOW = default_definition()
CASES = [
    (role, current, target)
    for role, current, target in itertools.product(ROLES, STAGES, TARGETS)
    if current != target
]


@pytest.mark.parametrize(("role", "current", "target"), CASES)
def test_default_workflow_move_for_role(role: str, current: str, target: str) -> None:
    expected = EXPECTED.get((current, target))
    kwargs = {"current": current, "target": target, "roles": frozenset({role}), "fields": ALL_FIELDS}
    if expected and role in expected[1]:
        move = engine.decide(WORKFLOW, **kwargs)
        assert move.kind == expected[0]
    elif role == "lead":
        move = engine.decide(WORKFLOW, **kwargs)
        assert move.kind == (target if target in ("iterate", "close") else "override")
    elif expected:
        with pytest.raises(RoleNotAllowed) as info:
            engine.decide(WORKFLOW, **kwargs)
        assert set(info.value.allowed_roles) == expected[1] | {"lead"}
    else:
        with pytest.raises(RoleNotAllowed) as info:
            engine.decide(WORKFLOW, **kwargs)
        assert info.value.allowed_roles == ("lead",)


def test_exactly_the_expected_transitions_are_defined() -> None:
    defined = {(t.from_stage, t.target): (t.kind, set(t.allowed_roles)) for t in WORKFLOW.transitions}
    assert defined == EXPECTED


def test_each_transition_requires_exactly_the_expected_fields() -> None:
    required = {(t.from_stage, t.target): set(t.required_fields) for t in WORKFLOW.transitions}
    assert required == {move: EXPECTED_REQUIRED.get(move, set()) for move in EXPECTED}


@pytest.mark.parametrize(
    ("current", "target", "role", "missing"),
    [
        ("propose", "design", "ops", "title"),
        ("propose", "design", "ops", "hypothesis"),
        ("propose", "design", "ops", "target_metric"),
        ("propose", "design", "ops", "aarrr_stage"),
        ("design", "build", "pm", "design"),
        ("instrument", "analyze", "analyst", "launch_date"),
        ("instrument", "analyze", "analyst", "tracking_plan"),
        ("analyze", "optimize", "analyst", "conclusion"),
        ("analyze", "optimize", "analyst", "verdict"),
    ],
)
def test_forward_move_names_the_missing_field(current: str, target: str, role: str, missing: str) -> None:
    fields = {**ALL_FIELDS, missing: ""}
    with pytest.raises(RequiredFieldMissing) as info:
        engine.decide(WORKFLOW, current=current, target=target, roles=frozenset({role}), fields=fields)
    assert info.value.field == missing


@pytest.mark.parametrize("role", ["engineer", "analyst"])
def test_instrument_to_analyze_without_a_verified_tracking_plan_is_refused_in_its_own_words(
    role: str,
) -> None:
    fields = {"launch_date": "2026-03-06", "tracking_plan": False}
    with pytest.raises(RequiredFieldMissing) as info:
        engine.decide(
            WORKFLOW, current="instrument", target="analyze", roles=frozenset({role}), fields=fields
        )
    assert (info.value.field, str(info.value.message)) == ("tracking_plan", TRACKING_PLAN_MESSAGE)


@pytest.mark.parametrize("role", ["engineer", "analyst"])
def test_instrument_to_analyze_with_a_verified_tracking_plan_is_a_forward_move(role: str) -> None:
    fields = {"launch_date": "2026-03-06", "tracking_plan": True}
    move = engine.decide(
        WORKFLOW, current="instrument", target="analyze", roles=frozenset({role}), fields=fields
    )
    assert (move.kind, move.to_stage) == ("forward", "analyze")


def test_lead_override_into_analyze_skips_the_tracking_plan() -> None:
    fields = {"launch_date": "2026-03-06", "tracking_plan": False}
    move = engine.decide(
        WORKFLOW, current="instrument", target="analyze", roles=frozenset({"lead"}), fields=fields
    )
    assert move.kind == "override"


def test_options_in_instrument_give_the_tracking_plan_reason() -> None:
    fields = {"launch_date": "2026-03-06", "tracking_plan": False}
    options = engine.options(WORKFLOW, current="instrument", roles=frozenset({"engineer"}), fields=fields)
    analyze = next(o for o in options if o.target == "analyze")
    assert (analyze.allowed, analyze.missing_fields, analyze.reason) == (
        False,
        ("tracking_plan",),
        TRACKING_PLAN_MESSAGE,
    )


def test_rework_needs_no_fields() -> None:
    move = engine.decide(WORKFLOW, current="design", target="propose", roles=frozenset({"pm"}), fields={})
    assert move.kind == "rework"


def test_lead_override_skips_the_guard() -> None:
    move = engine.decide(WORKFLOW, current="propose", target="design", roles=frozenset({"lead"}), fields={})
    assert move.kind == "override"


def test_lead_who_is_also_ops_makes_a_plain_forward_move_when_the_guard_passes() -> None:
    roles = frozenset({"lead", "ops"})
    move = engine.decide(WORKFLOW, current="propose", target="design", roles=roles, fields=ALL_FIELDS)
    assert move.kind == "forward"


def test_iterate_closes_the_loop_and_opens_the_next_at_the_first_stage() -> None:
    move = engine.decide(WORKFLOW, current="optimize", target="iterate", roles=frozenset({"ops"}), fields={})
    assert (move.to_stage, move.closes_loop, move.opens_loop) == ("propose", True, True)


def test_close_leaves_no_stage_and_opens_no_loop() -> None:
    move = engine.decide(WORKFLOW, current="optimize", target="close", roles=frozenset({"ops"}), fields={})
    assert (move.to_stage, move.closes_loop, move.opens_loop) == (None, True, False)


def test_closed_requirement_cannot_move() -> None:
    with pytest.raises(RequirementClosed):
        engine.decide(
            WORKFLOW, current="optimize", target="iterate", roles=frozenset({"lead"}), fields={}, closed=True
        )


def test_unknown_target_is_named() -> None:
    with pytest.raises(UnknownStage) as info:
        engine.decide(WORKFLOW, current="propose", target="deploy", roles=frozenset({"lead"}), fields={})
    assert info.value.slug == "deploy"


def test_unknown_current_stage_is_named() -> None:
    with pytest.raises(UnknownStage) as info:
        engine.decide(WORKFLOW, current="review", target="design", roles=frozenset({"lead"}), fields={})
    assert info.value.slug == "review"


def test_moving_to_the_same_stage_is_no_transition() -> None:
    with pytest.raises(NoSuchTransition):
        engine.decide(WORKFLOW, current="build", target="build", roles=frozenset({"lead"}), fields={})


def test_user_without_roles_is_refused_with_the_roles_that_may() -> None:
    with pytest.raises(RoleNotAllowed) as info:
        engine.decide(WORKFLOW, current="design", target="build", roles=frozenset(), fields=ALL_FIELDS)
    assert info.value.allowed_roles == ("lead", "pm")


def test_options_for_pm_in_design_list_forward_and_rework_with_reasons() -> None:
    options = engine.options(WORKFLOW, current="design", roles=frozenset({"pm"}), fields={"title": "t"})
    by_target = {o.target: o for o in options}
    assert set(by_target) == {"build", "propose"}
    assert by_target["propose"].allowed
    assert not by_target["build"].allowed
    assert by_target["build"].missing_fields == ("design",)


def test_options_for_ops_in_design_say_which_roles_may() -> None:
    options = engine.options(WORKFLOW, current="design", roles=frozenset({"ops"}), fields=ALL_FIELDS)
    assert [o.allowed for o in options] == [False, False]
    assert all("pm" in o.reason for o in options)


def test_options_for_lead_offer_every_other_stage_and_both_exits() -> None:
    options = engine.options(WORKFLOW, current="build", roles=frozenset({"lead"}), fields={})
    assert {o.target for o in options} == {*STAGES, "iterate", "close"} - {"build"}
    assert all(o.allowed for o in options)


def test_options_for_closed_requirement_are_empty() -> None:
    assert (
        engine.options(WORKFLOW, current="optimize", roles=frozenset({"lead"}), fields={}, closed=True) == []
    )
