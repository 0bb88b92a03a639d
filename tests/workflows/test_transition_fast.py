"""The transition's hot path runs prepared queries (compiled once per connection): they must send the
SQL Django would compile and hand back what Django's querysets would."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from opsteam.exceptions import NotFound, RoleNotAllowed
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import reminders, selectors, services
from workflows.models import Label, Requirement, Stage, Transition, Workflow, workflow_revise

pytestmark = pytest.mark.django_db


@pytest.fixture
def focus(crew: Crew) -> Requirement:
    return services.requirement_create(team=crew.team, actor=crew.ops, title="Focus", **READY_FIELDS)


def state(obj: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(obj).items() if name != "_state"}


def selects(queries: CaptureQueriesContext) -> list[str]:
    """The statements but the savepoints a test's transaction brings."""
    return [query["sql"] for query in queries.captured_queries if "SAVEPOINT" not in query["sql"]]


@pytest.mark.parametrize("by", ["id", "key"])
def test_the_lock_sends_the_sql_django_compiles_and_reads_the_same_requirement(
    crew: Crew, focus: Requirement, by: str
) -> None:
    lookup, value = ("pk", focus.pk) if by == "id" else ("key", focus.key)
    reference = selectors._requirement_for_move(user_id=crew.pm.pk, lookup=lookup, value=value)
    with CaptureQueriesContext(connection) as expected, transaction.atomic():
        wanted = next(iter(reference))
    with CaptureQueriesContext(connection) as sent, transaction.atomic():
        found, roles = selectors.requirement_lock_for_move(
            user=crew.pm, **({"requirement_id": focus.pk} if by == "id" else {"key": focus.key.lower()})
        )
    assert selects(sent) == selects(expected) and len(selects(sent)) == 1
    assert roles == frozenset({"pm"})
    assert state(found) == state(wanted)
    assert found._state.db == wanted._state.db and not found._state.adding
    assert state(found.team) == state(wanted.team)
    assert state(found.workflow) == state(wanted.workflow)
    assert (
        found.current_loop_id is not None
        and found.stage_count == Stage.objects.filter(workflow_id=focus.workflow_id).count()
    )


def test_the_lock_finds_nothing_for_an_outsider_an_anonymous_user_or_an_id_out_of_range(
    crew: Crew, focus: Requirement, django_user_model: Any
) -> None:
    outsider = django_user_model.objects.create(username="outsider")
    with transaction.atomic():
        for user, requirement_id in ((outsider, focus.pk), (AnonymousUser(), focus.pk), (crew.pm, 2**70)):
            with pytest.raises(NotFound):
                selectors.requirement_lock_for_move(user=user, requirement_id=requirement_id)


def test_site_staff_outside_the_team_lock_it_with_no_roles(
    crew: Crew, focus: Requirement, django_user_model: Any
) -> None:
    staff = django_user_model.objects.create(username="staff", is_staff=True)
    with transaction.atomic():
        found, roles = selectors.requirement_lock_for_move(user=staff, requirement_id=focus.pk)
    assert found.pk == focus.pk and roles == frozenset()


@pytest.mark.skipif(not connection.features.has_select_for_update, reason="no row locks")
@pytest.mark.django_db(transaction=True)
def test_the_lock_refuses_to_run_outside_a_transaction(crew: Crew, focus: Requirement) -> None:
    for _ in range(2):  # compiled, then prepared
        with pytest.raises(TransactionManagementError):
            selectors.requirement_lock_for_move(user=crew.pm, requirement_id=focus.pk)


def test_stages_and_transitions_are_those_the_orm_reads(crew: Crew, focus: Requirement) -> None:
    with transaction.atomic():
        requirement, _ = selectors.requirement_lock_for_move(user=crew.pm, requirement_id=focus.pk)
    stages, transitions = selectors.workflow_stages_and_transitions(requirement=requirement)
    wanted = list(selectors._transitions_of(focus.workflow_id))
    assert [state(t) for t in transitions] == [state(t) for t in wanted]
    assert [(state(t.from_stage), t.to_stage and state(t.to_stage)) for t in transitions] == [
        (state(t.from_stage), t.to_stage and state(t.to_stage)) for t in wanted
    ]
    assert [s.pk for s in stages] == list(
        Stage.objects.filter(workflow_id=focus.workflow_id).order_by("order").values_list("pk", flat=True)
    )


@pytest.mark.parametrize("how", ["save", "delete", "revise"])
def test_a_workflow_edited_in_place_is_seen_by_the_next_move(
    crew: Crew, focus: Requirement, how: str
) -> None:
    """The moves keep the workflow version per process under its revision; a stage or transition saved
    or deleted (as the admin does) gives it a new one, and so does workflow_revise after a bulk edit."""
    services.requirement_transition(
        requirement_id=focus.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    before = Workflow.objects.get(pk=focus.workflow_id).revision
    if how == "save":
        stage = Stage.objects.get(workflow_id=focus.workflow_id, slug="propose")
        stage.name = "Pitch"
        stage.save()
    elif how == "delete":
        Transition.objects.get(
            workflow_id=focus.workflow_id, from_stage__slug="design", to_stage__slug="propose"
        ).delete()
    else:
        Stage.objects.filter(workflow_id=focus.workflow_id, slug="propose").update(name="Pitch")
        workflow_revise(focus.workflow_id)
    assert Workflow.objects.get(pk=focus.workflow_id).revision != before

    if how == "delete":
        with pytest.raises(RoleNotAllowed):  # no such move any more: only a lead's override
            services.requirement_transition(
                requirement_id=focus.pk, actor=crew.pm, from_stage="design", to_stage="propose"
            )
        return
    services.requirement_transition(
        requirement_id=focus.pk, actor=crew.pm, from_stage="design", to_stage="propose"
    )
    told = Notification.objects.filter(requirement=focus).order_by("-id").first()
    assert told is not None and told.text.endswith("is now in Pitch")


def test_a_stale_save_of_the_workflow_does_not_bring_back_an_old_revision(
    crew: Crew, focus: Requirement
) -> None:
    """Two admins at once: B holds the workflow as it was, A restricts a move, then B saves the workflow
    (renaming it). The move must stay restricted."""
    services.requirement_transition(
        requirement_id=focus.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    services.requirement_transition(
        requirement_id=focus.pk, actor=crew.pm, from_stage="design", to_stage="propose"
    )  # the process keeps this revision
    held_by_b = Workflow.objects.get(pk=focus.workflow_id)
    forward = Transition.objects.get(
        workflow_id=focus.workflow_id, from_stage__slug="propose", to_stage__slug="design"
    )
    forward.allowed_roles = ["lead"]
    forward.save()
    held_by_b.name = "Renamed"
    held_by_b.save()

    with pytest.raises(RoleNotAllowed):
        services.requirement_transition(
            requirement_id=focus.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )


def test_a_process_reads_a_workflow_version_once(
    crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    services.requirement_transition(
        requirement_id=focus.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    with CaptureQueriesContext(connection) as second:
        services.requirement_transition(
            requirement_id=focus.pk, actor=crew.pm, from_stage="design", to_stage="propose"
        )
    assert not any('FROM "workflows_transition"' in sql for sql in selects(second))
    selectors._WORKFLOWS.clear()
    with CaptureQueriesContext(connection) as cold:
        services.requirement_transition(
            requirement_id=focus.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )
    assert len(selects(cold)) == len(selects(second)) + 1


@pytest.mark.parametrize(
    ("owner_roles", "assigned"),
    [(["pm"], False), (["pm", "engineer"], True), ([], True), ([], False), (["analyst", "lead"], False)],
)
def test_the_people_told_of_a_stage_are_those_the_orm_reads(
    crew: Crew, focus: Requirement, owner_roles: list[str], assigned: bool
) -> None:
    focus.assignee = crew.engineer if assigned else None
    stage = Stage(owner_roles=owner_roles)
    prepared = reminders._stage_people_prepared(tuple(owner_roles), assigned)
    values = {"actor_id": crew.lead.pk, "team_id": crew.team.pk, "assignee_id": focus.assignee_id}
    found = prepared.run(**{name: values[name] for name in prepared.placeholders})
    wanted = list(
        reminders._stage_people(
            owner_roles=stage.owner_roles,
            team_id=crew.team.pk,
            assignee_id=focus.assignee_id,
            actor_id=crew.lead.pk,
        )
    )
    assert sorted(u.pk for u in found) == sorted(u.pk for u in wanted)
    by_pk = {u.pk: u for u in wanted}
    for user in found:
        assert state(user) == state(by_pk[user.pk])
        assert hasattr(user, "notification_settings") == hasattr(by_pk[user.pk], "notification_settings")


def test_the_labels_read_names_every_column_of_a_label() -> None:
    # requirement_prefetch_labels_and_watchers selects these columns by name and makes labels of them
    # without converters: a new field (or one a backend converts) must be added there first.
    assert [(f.attname, f.get_internal_type()) for f in Label._meta.concrete_fields] == [
        ("id", "BigAutoField"),
        ("team_id", "ForeignKey"),
        ("name", "CharField"),
    ]


def test_labels_and_watchers_are_prefetched_as_the_orm_does(crew: Crew, focus: Requirement) -> None:
    services.requirement_update(
        requirement_id=focus.pk,
        actor=crew.lead,
        watchers=[crew.pm.pk, crew.engineer.pk],
        labels=["zeta", "alpha", "mid"],
    )
    wanted = Requirement.objects.get(pk=focus.pk)
    prefetch_related_objects([wanted], "labels", Prefetch("watchers", queryset=User.objects.only("pk")))
    found = Requirement.objects.get(pk=focus.pk)
    with CaptureQueriesContext(connection) as queries:
        selectors.requirement_prefetch_labels_and_watchers(requirement=found)
        labels = [label.name for label in found.labels.all()]
        watchers = sorted(user.pk for user in found.watchers.all())
    assert len(queries.captured_queries) == 1
    assert labels == [label.name for label in wanted.labels.all()] == ["alpha", "mid", "zeta"]
    assert (
        watchers
        == sorted(user.pk for user in wanted.watchers.all())
        == sorted([crew.pm.pk, crew.engineer.pk])
    )
    assert found.watchers.all()[0].get_deferred_fields() == wanted.watchers.all()[0].get_deferred_fields()
    assert list(found.labels.filter(name="mid")) == list(wanted.labels.filter(name="mid"))
