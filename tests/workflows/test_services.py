"""Services on the database: what each write does, and that refused writes change nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from opsteam.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    NotPermitted,
    RequiredFieldMissing,
    RequirementClosed,
    RoleNotAllowed,
    UnknownStage,
)
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team, verify_tracking
from workflows import services
from workflows.models import IterationLoop, Requirement, StageEvent

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def counts() -> tuple[int, int, int]:
    return Requirement.objects.count(), IterationLoop.objects.count(), StageEvent.objects.count()


def move(crew: Crew, requirement: Requirement, role: str, to: str, **kwargs: object) -> StageEvent:
    requirement.refresh_from_db()
    return services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.by_role(role),
        from_stage=requirement.stage.slug,
        to_stage=to,
        **kwargs,
    )


def test_create_gives_the_next_key_loop_one_and_a_create_event(crew: Crew) -> None:
    first = services.requirement_create(team=crew.team, actor=crew.ops, title="First")
    second = services.requirement_create(team=crew.team, actor=crew.ops, title="Second", **READY_FIELDS)
    event = StageEvent.objects.get(requirement=second)
    assert (first.key, second.key) == ("GROW-1", "GROW-2")
    assert (second.stage.slug, second.loop_number) == ("propose", 1)
    assert (event.from_stage, event.to_stage, event.kind, event.actor) == ("", "propose", "create", crew.ops)
    assert IterationLoop.objects.get(requirement=second).started_at == second.created_at == event.at


def test_create_without_title_writes_nothing(crew: Crew) -> None:
    with pytest.raises(InvalidInput) as info:
        services.requirement_create(team=crew.team, actor=crew.ops, title="   ")
    assert "title" in info.value.errors
    assert counts() == (0, 0, 0)


def test_create_with_unknown_aarrr_stage_and_priority_names_both_fields(crew: Crew) -> None:
    with pytest.raises(InvalidInput) as info:
        services.requirement_create(
            team=crew.team, actor=crew.ops, title="x", aarrr_stage="awareness", priority="P9"
        )
    assert set(info.value.errors) == {"aarrr_stage", "priority"}
    assert counts() == (0, 0, 0)


def test_create_with_assignee_outside_the_team_writes_nothing(crew: Crew) -> None:
    outsider = UserFactory()
    with pytest.raises(InvalidInput) as info:
        services.requirement_create(team=crew.team, actor=crew.ops, title="x", assignee=outsider)
    assert "assignee" in info.value.errors
    assert counts() == (0, 0, 0)


def test_create_by_a_non_member_is_not_found(crew: Crew) -> None:
    with pytest.raises(NotFound):
        services.requirement_create(team=crew.team, actor=UserFactory(), title="x")
    assert counts() == (0, 0, 0)


def test_create_sets_labels_and_watchers(crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="x", labels=["新客", "618"], watchers=[crew.pm, crew.lead]
    )
    assert sorted(requirement.labels.values_list("name", flat=True)) == ["618", "新客"]
    assert set(requirement.watchers.all()) == {crew.pm, crew.lead}


def test_keys_are_per_team(crew: Crew) -> None:
    other = make_team(key_prefix="SHOP")
    services.requirement_create(team=crew.team, actor=crew.ops, title="a")
    b = services.requirement_create(team=other, actor=other.memberships.get().user, title="b")
    assert b.key == "SHOP-1"


def test_forward_transition_writes_one_event_and_moves_the_stage(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    event = move(crew, requirement, "ops", "design", note="ready for design")
    requirement.refresh_from_db()
    assert (event.from_stage, event.to_stage, event.kind, event.note) == (
        "propose",
        "design",
        "forward",
        "ready for design",
    )
    assert requirement.stage.slug == "design"
    assert requirement.stage_entered_at == event.at


def test_stale_from_stage_is_a_conflict_naming_who_moved_it(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    move(crew, requirement, "ops", "design")
    with pytest.raises(Conflict) as info:
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )
    assert (info.value.current, info.value.moved_by) == ("design", "ops")
    assert StageEvent.objects.count() == 2


def test_wrong_role_is_refused_and_writes_nothing(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    with pytest.raises(RoleNotAllowed) as info:
        move(crew, requirement, "analyst", "design")
    requirement.refresh_from_db()
    assert info.value.allowed_roles == ("lead", "ops")
    assert requirement.stage.slug == "propose"
    assert StageEvent.objects.count() == 1


def test_missing_hypothesis_is_named_and_writes_nothing(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    with pytest.raises(RequiredFieldMissing) as info:
        move(crew, requirement, "ops", "design")
    assert info.value.field == "hypothesis"
    assert StageEvent.objects.count() == 1


def test_unknown_target_stage_writes_nothing(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    with pytest.raises(UnknownStage):
        move(crew, requirement, "lead", "deploy")
    assert StageEvent.objects.count() == 1


def test_outsider_cannot_see_the_requirement(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    with pytest.raises(NotFound):
        services.requirement_transition(
            requirement_id=requirement.pk, actor=UserFactory(), from_stage="propose", to_stage="design"
        )
    assert StageEvent.objects.count() == 1


def test_staff_who_is_not_a_member_may_look_but_not_move(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    with pytest.raises(RoleNotAllowed):
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=UserFactory(is_staff=True),
            from_stage="propose",
            to_stage="design",
        )
    assert StageEvent.objects.count() == 1


def test_lead_skip_is_recorded_as_override(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    event = move(crew, requirement, "lead", "build")
    assert (event.from_stage, event.to_stage, event.kind) == ("propose", "build", "override")


def test_iterate_closes_loop_one_and_opens_loop_two_at_propose_same_instant(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    move(crew, requirement, "lead", "optimize")
    event = move(crew, requirement, "ops", "iterate")
    requirement.refresh_from_db()
    loop1, loop2 = IterationLoop.objects.filter(requirement=requirement).order_by("number")
    assert (event.kind, event.to_stage, event.loop) == ("iterate", "propose", loop1)
    assert (loop1.closed_at, loop1.outcome) == (event.at, "iterate")
    assert (loop2.started_at, loop2.closed_at) == (event.at, None)
    assert (requirement.loop_number, requirement.stage.slug, requirement.stage_entered_at) == (
        2,
        "propose",
        event.at,
    )


def test_close_needs_an_outcome_and_writes_nothing_without(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    move(crew, requirement, "lead", "optimize")
    with pytest.raises(InvalidInput) as info:
        move(crew, requirement, "ops", "close")
    assert "outcome" in info.value.errors
    assert StageEvent.objects.count() == 2


def test_close_closes_loop_and_requirement(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    move(crew, requirement, "lead", "optimize")
    event = move(crew, requirement, "ops", "close", outcome="wont_do")
    requirement.refresh_from_db()
    loop = IterationLoop.objects.get(requirement=requirement)
    assert (event.kind, event.from_stage, event.to_stage) == ("close", "optimize", "")
    assert (requirement.closed_at, requirement.outcome, requirement.stage.slug) == (
        event.at,
        "wont_do",
        "optimize",
    )
    assert (loop.closed_at, loop.outcome) == (event.at, "close")


def test_closed_requirement_refuses_every_move(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    move(crew, requirement, "lead", "close", outcome="done")
    with pytest.raises(RequirementClosed):
        move(crew, requirement, "lead", "propose")
    assert StageEvent.objects.count() == 2


def test_backdated_transition_before_the_previous_one_is_refused(crew: Crew) -> None:
    at = dt.datetime(2026, 3, 2, 9, tzinfo=UTC)
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="x", at=at, **READY_FIELDS
    )
    with pytest.raises(InvalidInput):
        move(crew, requirement, "ops", "design", at=at - dt.timedelta(minutes=1))
    assert StageEvent.objects.count() == 1


def test_analysis_is_recorded_on_the_current_loop_and_opens_the_guard(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    move(crew, requirement, "lead", "analyze")
    services.loop_record_analysis(
        requirement_id=requirement.pk,
        actor=crew.analyst,
        conclusion="D1 +3pt",
        verdict="improved",
        core_metric_moved=True,
        behaviour_moved=True,
        feedback_positive=True,
    )
    event = move(crew, requirement, "analyst", "optimize")
    assert event.kind == "forward"


def test_analysis_without_the_three_checks_names_each_and_writes_nothing(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    with pytest.raises(InvalidInput) as info:
        services.loop_record_analysis(
            requirement_id=requirement.pk,
            actor=crew.analyst,
            conclusion="D1 +3pt",
            verdict="improved",
            core_metric_moved=True,
        )
    assert set(info.value.errors) == {"behaviour_moved", "feedback_positive"}
    assert IterationLoop.objects.get().conclusion == ""


def test_analysis_records_the_three_checks_and_the_metric_values(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    services.loop_record_analysis(
        requirement_id=requirement.pk,
        actor=crew.analyst,
        conclusion="Conversion flat",
        verdict="flat",
        core_metric_moved=False,
        behaviour_moved=True,
        feedback_positive=False,
        metric_name="Order conversion",
        metric_before=Decimal("0.1200"),
        metric_after=Decimal("0.1210"),
    )
    loop = IterationLoop.objects.get()
    assert (loop.core_metric_moved, loop.behaviour_moved, loop.feedback_positive) == (False, True, False)
    assert (loop.metric_name, loop.metric_before, loop.metric_after) == (
        "Order conversion",
        Decimal("0.1200"),
        Decimal("0.1210"),
    )


def instrumented(crew: Crew) -> Requirement:
    """A requirement in instrument with its launch date set, so only the tracking plan guards analyze."""
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="x", launch_date=dt.date(2026, 3, 7)
    )
    move(crew, requirement, "lead", "instrument")
    return requirement


def test_instrument_to_analyze_without_a_tracking_plan_is_refused_and_writes_nothing(crew: Crew) -> None:
    requirement = instrumented(crew)
    with pytest.raises(RequiredFieldMissing) as info:
        move(crew, requirement, "analyst", "analyze")
    requirement.refresh_from_db()
    assert info.value.field == "tracking_plan"
    assert (requirement.stage.slug, StageEvent.objects.count()) == ("instrument", 2)


def test_instrument_to_analyze_with_an_unverified_event_is_refused(crew: Crew) -> None:
    requirement = instrumented(crew)
    verify_tracking(requirement)
    services.tracking_event_add(
        requirement_id=requirement.pk, actor=crew.engineer, name="coupon_open", trigger="Coupon opened"
    )
    with pytest.raises(RequiredFieldMissing) as info:
        move(crew, requirement, "analyst", "analyze")
    assert info.value.field == "tracking_plan"


def test_instrument_to_analyze_with_every_event_verified_is_a_forward_move(crew: Crew) -> None:
    requirement = instrumented(crew)
    verify_tracking(requirement)
    verify_tracking(requirement, name="coupon_open")
    assert move(crew, requirement, "analyst", "analyze").kind == "forward"


def test_a_verified_plan_of_the_previous_loop_does_not_open_the_guard(crew: Crew) -> None:
    requirement = instrumented(crew)
    verify_tracking(requirement)
    move(crew, requirement, "lead", "iterate")
    move(crew, requirement, "lead", "instrument")
    with pytest.raises(RequiredFieldMissing) as info:
        move(crew, requirement, "analyst", "analyze")
    assert info.value.field == "tracking_plan"


def test_analysis_by_ops_is_refused(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    with pytest.raises(RoleNotAllowed):
        services.loop_record_analysis(
            requirement_id=requirement.pk,
            actor=crew.ops,
            conclusion="c",
            verdict="flat",
            core_metric_moved=False,
            behaviour_moved=False,
            feedback_positive=False,
        )
    assert IterationLoop.objects.get().conclusion == ""


def test_update_changes_fields_but_rejects_bad_dates_whole(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    services.requirement_update(requirement_id=requirement.pk, actor=crew.pm, design="https://wiki/spec-42")
    with pytest.raises(InvalidInput) as info:
        services.requirement_update(
            requirement_id=requirement.pk, actor=crew.pm, title="changed", due_date="not a date"
        )
    requirement.refresh_from_db()
    assert "due_date" in info.value.errors
    assert (requirement.title, requirement.design) == ("x", "https://wiki/spec-42")


def test_update_cannot_set_the_stage(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    with pytest.raises(InvalidInput) as info:
        services.requirement_update(requirement_id=requirement.pk, actor=crew.lead, stage="build")
    assert "stage" in info.value.errors


def test_stage_events_are_append_only(crew: Crew) -> None:
    services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    event = StageEvent.objects.get()
    event.note = "rewritten"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        StageEvent.objects.update(note="rewritten")
    with pytest.raises(TypeError):
        StageEvent.objects.all().delete()
    assert StageEvent.objects.get().note == ""


def test_new_workflow_version_applies_to_new_requirements_only(crew: Crew) -> None:
    old = services.requirement_create(team=crew.team, actor=crew.ops, title="old", **READY_FIELDS)
    services.workflow_new_version(
        team_id=crew.team.pk,
        actor=crew.lead,
        stages={"design": {"sla_hours": 24}},
        transitions=[{"from": "propose", "to": "design", "allowed_roles": ["ops", "analyst"]}],
    )
    new = services.requirement_create(team=crew.team, actor=crew.ops, title="new", **READY_FIELDS)
    assert (old.workflow.version, new.workflow.version) == (1, 2)
    assert new.workflow.stages.get(slug="design").sla_hours == 24
    assert old.workflow.stages.get(slug="design").sla_hours == 72
    assert move(crew, new, "analyst", "design").kind == "forward"
    with pytest.raises(RoleNotAllowed):
        move(crew, old, "analyst", "design")


def test_workflow_change_by_non_lead_is_refused(crew: Crew) -> None:
    with pytest.raises(NotPermitted):
        services.workflow_new_version(
            team_id=crew.team.pk, actor=crew.pm, stages={"design": {"sla_hours": 1}}
        )
    assert crew.team.workflows.count() == 1


def test_workflow_change_with_bad_values_names_them_and_writes_nothing(crew: Crew) -> None:
    with pytest.raises(InvalidInput) as info:
        services.workflow_new_version(
            team_id=crew.team.pk,
            actor=crew.lead,
            stages={"design": {"sla_hours": -3}, "deploy": {"name": "x"}},
            transitions=[{"from": "build", "to": "optimize", "allowed_roles": ["ops"]}],
        )
    assert set(info.value.errors) == {"stages", "transitions"}
    assert crew.team.workflows.count() == 1


def test_new_team_gets_the_default_workflow_and_its_creator_as_lead() -> None:
    creator = UserFactory()
    team = make_team(lead=creator, key_prefix="OPS")
    workflow = team.workflows.get()
    assert list(workflow.stages.values_list("slug", "sla_hours")) == [
        ("propose", 48),
        ("design", 72),
        ("build", 240),
        ("instrument", 48),
        ("analyze", 168),
        ("optimize", 48),
    ]
    assert workflow.transitions.count() == 11
    assert team.memberships.get(user=creator).roles == {"lead"}
    assert team.time_zone == "Asia/Shanghai"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the count is the same; run once")
def test_transition_query_count_is_fixed(crew: Crew, django_assert_num_queries: object) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    # One locking read (with team, workflow, loop and the actor's roles), the workflow's transitions with
    # their stages, the event, the update; then the design owners with their settings, the notifications,
    # the deliveries, the links (8), inside a savepoint pair (2).
    with django_assert_num_queries(10):  # type: ignore[operator]
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )


def test_member_of_two_teams_holds_different_roles(crew: Crew) -> None:
    other = make_team(key_prefix="SHOP")
    add_member(other, ["analyst"], user=crew.ops)
    services.requirement_create(team=other, actor=crew.ops, title="x", **READY_FIELDS)
    requirement = Requirement.objects.get(team=other)
    with pytest.raises(RoleNotAllowed):
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )
