"""Query counts of the API endpoints, pinned, and the same whether a few or many rows lie behind them.

Requests are authenticated with `force_authenticate`, so the counts are the view's own: a token adds
one query (the token and its user), a session two."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import Crew
from tests.factories import READY_FIELDS, add_member, make_team
from workflows import services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db

FEW, MANY = 5, 50


@pytest.fixture
def api(crew: Crew) -> APIClient:
    client = APIClient()
    client.force_authenticate(crew.lead)
    return client


@pytest.fixture
def focus(crew: Crew) -> Requirement:
    """The requirement the detail endpoints look at."""
    return services.requirement_create(team=crew.team, actor=crew.ops, title="Focus", **READY_FIELDS)


def populate(crew: Crew, count: int) -> None:
    """`count` more requirements, each with watchers, labels, comments and three stage events."""
    start = Requirement.objects.count()
    for n in range(start, start + count):
        requirement = services.requirement_create(
            team=crew.team,
            actor=crew.ops,
            title=f"Requirement {n}",
            watchers=[crew.pm.pk, crew.engineer.pk],
            labels=[f"a{n}", f"b{n}"],
            **READY_FIELDS,
        )
        services.comment_create(requirement_id=requirement.pk, actor=crew.pm, body="one")
        services.comment_create(requirement_id=requirement.pk, actor=crew.engineer, body="two")
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.pm, from_stage="design", to_stage="propose"
        )


def pile_on(crew: Crew, requirement: Requirement, count: int) -> None:
    """`count` more members of the team, each watching the requirement, labelling and commenting on it
    and sending it to design and back: rows behind every detail endpoint grow together."""
    start = requirement.watchers.count()
    members = [
        add_member(crew.team, ["pm", "ops"], username=f"member{n}") for n in range(start, start + count)
    ]
    requirement.refresh_from_db()
    services.requirement_update(
        requirement_id=requirement.pk,
        actor=crew.lead,
        watchers=[*requirement.watchers.values_list("pk", flat=True), *(m.pk for m in members)],
        labels=[
            *requirement.labels.values_list("name", flat=True),
            *(f"label{n}" for n in range(start, start + count)),
        ],
    )
    for member in members:
        services.comment_create(requirement_id=requirement.pk, actor=member, body=f"by {member.username}")
        services.requirement_transition(
            requirement_id=requirement.pk, actor=member, from_stage="propose", to_stage="design"
        )
        services.requirement_transition(
            requirement_id=requirement.pk, actor=member, from_stage="design", to_stage="propose"
        )


def join_teams(crew: Crew, count: int) -> None:
    """`count` more teams the lead belongs to, each with a requirement."""
    start = crew.lead.memberships.count()
    for n in range(start, start + count):
        team = make_team(name=f"Team {n}", key_prefix=f"TQ{n}")
        add_member(team, ["pm"], user=crew.lead)
        services.requirement_create(team=team, actor=crew.lead, title="x")


def get(api: APIClient, url: str) -> Any:
    response = api.get(url)
    assert response.status_code == 200, response.content
    return response.json()


# ------------------------------------------------------------------------------------- requirements


REQUIREMENT_LIST = 3  # the page (with the teams the lead sees as a subquery), its labels, its watchers


def test_requirement_list_queries_do_not_grow(
    api: APIClient, crew: Crew, django_assert_num_queries: Any
) -> None:
    populate(crew, FEW)
    with django_assert_num_queries(REQUIREMENT_LIST):
        assert len(get(api, "/api/requirements/")["results"]) == FEW
    populate(crew, MANY - FEW)
    with django_assert_num_queries(REQUIREMENT_LIST):
        assert len(get(api, "/api/requirements/")["results"]) == MANY


REQUIREMENT_DETAIL = 3  # the requirement with team, stage, workflow and assignee; labels; watchers


def test_requirement_detail_queries_do_not_grow(
    api: APIClient, crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    pile_on(crew, focus, FEW)
    with django_assert_num_queries(REQUIREMENT_DETAIL):
        assert len(get(api, f"/api/requirements/{focus.key}/")["watchers"]) == FEW
    pile_on(crew, focus, MANY - FEW)
    with django_assert_num_queries(REQUIREMENT_DETAIL):
        assert len(get(api, f"/api/requirements/{focus.key}/")["watchers"]) == MANY


REQUIREMENT_HISTORY = 2  # the requirement; the page of events with their actors and loops


def test_requirement_history_queries_do_not_grow(
    api: APIClient, crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    pile_on(crew, focus, 2)
    with django_assert_num_queries(REQUIREMENT_HISTORY):
        assert len(get(api, f"/api/requirements/{focus.pk}/history/")["results"]) == 5
    pile_on(crew, focus, 23)
    with django_assert_num_queries(REQUIREMENT_HISTORY):
        assert len(get(api, f"/api/requirements/{focus.pk}/history/")["results"]) == 50


AVAILABLE_TRANSITIONS = 5  # the requirement; stages; transitions; the current loop; the roles


def test_available_transitions_queries_do_not_grow(
    api: APIClient, crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    pile_on(crew, focus, FEW)
    with django_assert_num_queries(AVAILABLE_TRANSITIONS):
        get(api, f"/api/requirements/{focus.pk}/available-transitions/")
    pile_on(crew, focus, MANY - FEW)
    with django_assert_num_queries(AVAILABLE_TRANSITIONS):
        get(api, f"/api/requirements/{focus.pk}/available-transitions/")


# The requirement; in the service: savepoint, scope, lock, re-read, roles, stages, transitions, loop,
# event, work calendar, update; then the next stage's owners are told: owners, their settings,
# notifications, webhooks, deliveries and their links (one query each, however many owners: `pile_on`
# adds some); release; the answer: requirement, labels, watchers.
TRANSITION = 22


def test_transition_queries_do_not_grow(
    crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    api = APIClient()
    api.force_authenticate(crew.ops)
    move = {"from": "propose", "to": "design"}
    back = {"from": "design", "to": "propose"}
    pile_on(crew, focus, FEW)
    with django_assert_num_queries(TRANSITION):
        assert api.post(f"/api/requirements/{focus.pk}/transition/", move, format="json").status_code == 200
    api.force_authenticate(crew.pm)
    assert api.post(f"/api/requirements/{focus.pk}/transition/", back, format="json").status_code == 200
    api.force_authenticate(crew.ops)
    pile_on(crew, focus, MANY - FEW)
    with django_assert_num_queries(TRANSITION):
        assert api.post(f"/api/requirements/{focus.pk}/transition/", move, format="json").status_code == 200


REQUIREMENT_COMMENTS = 2  # the requirement; the page of comments with their authors


def test_requirement_comments_queries_do_not_grow(
    api: APIClient, crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    pile_on(crew, focus, FEW)
    with django_assert_num_queries(REQUIREMENT_COMMENTS):
        assert len(get(api, f"/api/requirements/{focus.pk}/comments/")["results"]) == FEW
    pile_on(crew, focus, MANY - FEW)
    with django_assert_num_queries(REQUIREMENT_COMMENTS):
        assert len(get(api, f"/api/requirements/{focus.pk}/comments/")["results"]) == MANY


LOOP_LIST = 1  # the page of loops with their requirements


def test_loop_list_queries_do_not_grow(api: APIClient, crew: Crew, django_assert_num_queries: Any) -> None:
    populate(crew, FEW)
    with django_assert_num_queries(LOOP_LIST):
        assert len(get(api, "/api/loops/")["results"]) == FEW
    populate(crew, MANY - FEW)
    with django_assert_num_queries(LOOP_LIST):
        assert len(get(api, "/api/loops/")["results"]) == MANY


# -------------------------------------------------------------------------------------------- teams


TEAM_LIST = 1


def test_team_list_queries_do_not_grow(api: APIClient, crew: Crew, django_assert_num_queries: Any) -> None:
    join_teams(crew, FEW - 1)
    with django_assert_num_queries(TEAM_LIST):
        assert len(get(api, "/api/teams/")["results"]) == FEW
    join_teams(crew, MANY - FEW)
    with django_assert_num_queries(TEAM_LIST):
        assert len(get(api, "/api/teams/")["results"]) == MANY


TEAM_MEMBERS = 2  # the team; its memberships with their users


def test_team_members_queries_do_not_grow(
    api: APIClient, crew: Crew, focus: Requirement, django_assert_num_queries: Any
) -> None:
    pile_on(crew, focus, FEW)
    with django_assert_num_queries(TEAM_MEMBERS):
        assert len(get(api, f"/api/teams/{crew.team.pk}/members/")) == 5 + FEW
    pile_on(crew, focus, MANY - FEW)
    with django_assert_num_queries(TEAM_MEMBERS):
        assert len(get(api, f"/api/teams/{crew.team.pk}/members/")) == 5 + MANY


TEAM_WORKFLOW = 6  # the team; its current workflow; stages; transitions; their from and to stages


def test_team_workflow_queries_do_not_grow(
    api: APIClient, crew: Crew, django_assert_num_queries: Any
) -> None:
    populate(crew, FEW)
    with django_assert_num_queries(TEAM_WORKFLOW):
        assert get(api, f"/api/teams/{crew.team.pk}/workflow/")["version"] == 1
    populate(crew, MANY - FEW)
    for hours in range(1, 10):
        services.workflow_new_version(
            team_id=crew.team.pk, actor=crew.lead, stages={"build": {"sla_hours": hours}}
        )
    with django_assert_num_queries(TEAM_WORKFLOW):
        assert get(api, f"/api/teams/{crew.team.pk}/workflow/")["version"] == 10


ME = 2  # memberships; teams


def test_me_queries_do_not_grow(api: APIClient, crew: Crew, django_assert_num_queries: Any) -> None:
    join_teams(crew, FEW - 1)
    with django_assert_num_queries(ME):
        assert len(get(api, "/api/me/")["teams"]) == FEW
    join_teams(crew, MANY - FEW)
    with django_assert_num_queries(ME):
        assert len(get(api, "/api/me/")["teams"]) == MANY
