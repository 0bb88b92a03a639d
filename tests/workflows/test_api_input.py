"""Bad input to the REST API gets a clear 4xx, JSON with a `detail` string and a message per field, and
writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from roles.models import Membership, Team
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory
from workflows import services
from workflows.models import Comment, IterationLoop, Requirement, Stage, StageEvent, Transition, Workflow

pytestmark = pytest.mark.django_db

OUT_OF_RANGE_ID = 10**20


def client_for(user: Any) -> APIClient:
    client = APIClient()
    token, _created = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def db_state() -> dict[str, Any]:
    """The counts the brief names, and every row an accepted request could have changed."""
    return {
        "counts": {
            model.__name__: model.objects.count()
            for model in (Requirement, StageEvent, IterationLoop, Comment, Membership, Workflow, Team)
        },
        "requirements": list(Requirement.objects.order_by("pk").values()),
        "labels": list(Requirement.labels.through.objects.order_by("pk").values()),
        "watchers": list(Requirement.watchers.through.objects.order_by("pk").values()),
        "loops": list(IterationLoop.objects.order_by("pk").values()),
        "comments": list(Comment.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values()),
        "teams": list(Team.objects.order_by("pk").values()),
        "stages": list(Stage.objects.order_by("pk").values()),
        "transitions": list(Transition.objects.order_by("pk").values()),
    }


@pytest.fixture
def ids(crew: Crew) -> dict[str, Any]:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="Day-2 red packet", **READY_FIELDS
    )
    comment = services.comment_create(requirement_id=requirement.pk, actor=crew.ops, body="Which cohort?")
    return {
        "team": crew.team.pk,
        "requirement": requirement.pk,
        "comment": comment.pk,
        "membership": Membership.objects.get(team=crew.team, user=crew.pm).pk,
        "outsider": UserFactory(username="outsider").pk,
    }


Body = Callable[[dict[str, Any]], Any]

BAD_INPUT = [
    # Creating a requirement.
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": ["Red", "packet"]},
        "title",
        id="create-title-as-list",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": "abc", "title": "Red packet"},
        "team",
        id="create-team-as-text",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "assignee": "x"},
        "assignee",
        id="create-assignee-as-text",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "due_date": "2026-13-45"},
        "due_date",
        id="create-impossible-due-date",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "labels": "growth"},
        "labels",
        id="create-labels-as-text",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "priority": "P9"},
        "priority",
        id="create-priority-p9",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "aarrr_stage": "awareness"},
        "aarrr_stage",
        id="create-aarrr-awareness",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "x" * 201},
        "title",
        id="create-title-201",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "description": "x" * 20_001},
        "description",
        id="create-description-20001",
    ),
    pytest.param(
        "ops", "post", "/api/requirements/", lambda i: {"team": i["team"]}, "title", id="create-without-title"
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"title": "Red packet"},
        "team",
        id="create-without-team",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "assignee": i["outsider"]},
        "assignee",
        id="create-assignee-outside-team",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/",
        lambda i: {"team": i["team"], "title": "Red packet", "watchers": [i["outsider"]]},
        "watchers",
        id="create-watcher-outside-team",
    ),
    # Changing a requirement.
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"title": ["Red", "packet"]},
        "title",
        id="patch-title-as-list",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"title": "x" * 201},
        "title",
        id="patch-title-201",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"title": "   "},
        "title",
        id="patch-title-blank",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"due_date": "2026-13-45"},
        "due_date",
        id="patch-impossible-due-date",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"labels": "growth"},
        "labels",
        id="patch-labels-as-text",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"priority": "P9"},
        "priority",
        id="patch-priority-p9",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"aarrr_stage": "awareness"},
        "aarrr_stage",
        id="patch-aarrr-awareness",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"description": "x" * 20_001},
        "description",
        id="patch-description-20001",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"assignee": "x"},
        "assignee",
        id="patch-assignee-as-text",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/requirements/{requirement}/",
        lambda i: {"assignee": i["outsider"]},
        "assignee",
        id="patch-assignee-outside-team",
    ),
    # Moving a requirement.
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/transition/",
        lambda i: {"from": "propose", "to": "close", "outcome": "maybe"},
        "outcome",
        id="transition-outcome-maybe",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/transition/",
        lambda i: {"from": "propose", "to": "design", "note": "x" * 10_001},
        "note",
        id="transition-note-10001",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/transition/",
        lambda i: {"from": "propose"},
        "to",
        id="transition-without-to",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/transition/",
        lambda i: {"to": "design"},
        "from",
        id="transition-without-from",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/transition/",
        lambda i: {"from": "propose", "to": "deploy"},
        "to",
        id="transition-to-unknown-stage",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/transition/",
        lambda i: {"from": "propose", "to": "design", "outcome": "done"},
        "outcome",
        id="transition-outcome-without-closing",
    ),
    # Analysis and comments.
    pytest.param(
        "analyst",
        "post",
        "/api/requirements/{requirement}/analysis/",
        lambda i: {"conclusion": "D1 +3pt", "verdict": "great"},
        "verdict",
        id="analysis-verdict-great",
    ),
    pytest.param(
        "analyst",
        "post",
        "/api/requirements/{requirement}/analysis/",
        lambda i: {"verdict": "flat"},
        "conclusion",
        id="analysis-without-conclusion",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/comments/",
        lambda i: {"body": "x" * 10_001},
        "body",
        id="comment-body-10001",
    ),
    pytest.param(
        "ops",
        "post",
        "/api/requirements/{requirement}/comments/",
        lambda i: {"body": "   "},
        "body",
        id="comment-body-blank",
    ),
    pytest.param(
        "ops",
        "patch",
        "/api/comments/{comment}/",
        lambda i: {"body": "x" * 10_001},
        "body",
        id="comment-edit-body-10001",
    ),
    # Teams, members and the workflow.
    pytest.param(
        "lead",
        "post",
        "/api/teams/",
        lambda i: {"name": "Growth again", "key_prefix": "GROW"},
        "key_prefix",
        id="team-duplicate-key-prefix",
    ),
    pytest.param(
        "lead",
        "post",
        "/api/teams/",
        lambda i: {"name": "Growth again", "key_prefix": "grow"},
        "key_prefix",
        id="team-duplicate-key-prefix-lowercase",
    ),
    pytest.param(
        "lead",
        "post",
        "/api/teams/",
        lambda i: {"name": "Growth one", "key_prefix": "grow-1"},
        "key_prefix",
        id="team-bad-key-prefix",
    ),
    pytest.param(
        "lead",
        "post",
        "/api/teams/",
        lambda i: {"name": "Mars", "key_prefix": "MARS", "time_zone": "Mars/Olympus"},
        "time_zone",
        id="team-unknown-time-zone",
    ),
    pytest.param(
        "lead",
        "patch",
        "/api/teams/{team}/",
        lambda i: {"time_zone": "Mars/Olympus"},
        "time_zone",
        id="team-patch-unknown-time-zone",
    ),
    pytest.param(
        "lead",
        "post",
        "/api/teams/{team}/members/",
        lambda i: {"user": "nobody-by-this-name", "roles": ["ops"]},
        "user",
        id="member-add-unknown-username",
    ),
    pytest.param(
        "lead",
        "post",
        "/api/teams/{team}/members/",
        lambda i: {"user": "outsider", "roles": ["boss"]},
        "roles",
        id="member-add-role-boss",
    ),
    pytest.param(
        "lead",
        "post",
        "/api/teams/{team}/members/",
        lambda i: {"user": "pm", "roles": ["analyst"]},
        "user",
        id="member-add-existing-member",
    ),
    pytest.param(
        "lead",
        "patch",
        "/api/teams/{team}/members/{membership}/",
        lambda i: {"roles": ["boss"]},
        "roles",
        id="member-roles-boss",
    ),
    pytest.param(
        "lead",
        "patch",
        "/api/teams/{team}/members/{membership}/",
        lambda i: {"roles": []},
        "roles",
        id="member-roles-empty",
    ),
    pytest.param(
        "lead",
        "patch",
        "/api/teams/{team}/workflow/",
        lambda i: {"stages": {"design": {"sla_hours": -1}}},
        "stages",
        id="workflow-sla-negative",
    ),
    pytest.param(
        "lead",
        "patch",
        "/api/teams/{team}/workflow/",
        lambda i: {"stages": {"deploy": {"sla_hours": 24}}},
        "stages",
        id="workflow-unknown-stage",
    ),
    pytest.param(
        "lead",
        "patch",
        "/api/teams/{team}/workflow/",
        lambda i: {"transitions": [{"from": "propose", "to": "deploy", "allowed_roles": ["ops"]}]},
        "transitions",
        id="workflow-unknown-transition",
    ),
]


@pytest.mark.parametrize(("role", "method", "url", "body", "field"), BAD_INPUT)
def test_bad_input_is_400_with_a_message_for_the_field_and_writes_nothing(
    crew: Crew, ids: dict[str, Any], role: str, method: str, url: str, body: Body, field: str
) -> None:
    before = db_state()

    response = getattr(client_for(crew.by_role(role)), method)(url.format(**ids), body(ids), format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()[field]
    assert isinstance(response.json()["detail"], str)
    assert response.json()["detail"]
    assert db_state() == before


def test_malformed_json_is_400_with_a_detail(crew: Crew, ids: dict[str, Any]) -> None:
    before = db_state()

    response = client_for(crew.ops).generic(
        "POST", "/api/requirements/", '{"team": 1, "title": ', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert db_state() == before


def test_a_list_instead_of_an_object_is_400_with_a_detail(crew: Crew, ids: dict[str, Any]) -> None:
    before = db_state()

    response = client_for(crew.ops).post(
        f"/api/requirements/{ids['requirement']}/transition/", ["design"], format="json"
    )

    assert response.status_code == 400
    assert response.json()["non_field_errors"]
    assert isinstance(response.json()["detail"], str)
    assert db_state() == before


def test_transition_from_a_stale_stage_is_409_naming_the_stage_and_who_moved_it(
    crew: Crew, ids: dict[str, Any]
) -> None:
    services.requirement_transition(
        requirement_id=ids["requirement"], actor=crew.ops, from_stage="propose", to_stage="design"
    )
    before = db_state()

    response = client_for(crew.ops).post(
        f"/api/requirements/{ids['requirement']}/transition/",
        {"from": "propose", "to": "design"},
        format="json",
    )

    assert response.status_code == 409
    assert (response.json()["current_stage"], response.json()["moved_by"]) == ("design", "ops")
    assert response.json()["detail"] == "GROW-1 is no longer in propose: ops moved it to design."
    assert db_state() == before


def test_wrong_token_is_401_and_writes_nothing(crew: Crew, ids: dict[str, Any]) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    before = db_state()

    response = client.post("/api/requirements/", {"team": ids["team"], "title": "Planted"}, format="json")

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."
    assert db_state() == before


def test_revoked_token_is_401_and_writes_nothing(crew: Crew, ids: dict[str, Any]) -> None:
    client = client_for(crew.ops)
    assert client.delete("/api/auth/token/").status_code == 204
    before = db_state()

    response = client.patch(
        f"/api/requirements/{ids['requirement']}/", {"title": "After revoking"}, format="json"
    )

    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)
    assert db_state() == before


def test_workflow_patch_with_a_negative_sla_makes_no_new_version(crew: Crew, ids: dict[str, Any]) -> None:
    response = client_for(crew.lead).patch(
        f"/api/teams/{ids['team']}/workflow/", {"stages": {"design": {"sla_hours": -1}}}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["stages"]["design"]["sla_hours"]
    assert list(Workflow.objects.filter(team=crew.team).values_list("version", "is_current")) == [(1, True)]


def test_assignee_id_out_of_range_is_400(crew: Crew, ids: dict[str, Any]) -> None:
    before = db_state()

    response = client_for(crew.ops).post(
        "/api/requirements/",
        {"team": ids["team"], "title": "Red packet", "assignee": OUT_OF_RANGE_ID},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["assignee"]
    assert db_state() == before


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/requirements/?team={n}", "team"),
        ("/api/requirements/?assignee={n}", "assignee"),
        ("/api/loops/?requirement={n}", "requirement"),
        ("/api/loops/?team={n}", "team"),
        ("/api/workflows/?team={n}", "team"),
    ],
)
def test_list_filter_by_an_id_out_of_range_is_400_naming_the_filter(
    crew: Crew, ids: dict[str, Any], url: str, field: str
) -> None:
    response = client_for(crew.ops).get(url.format(n=OUT_OF_RANGE_ID))

    assert response.status_code == 400, response.content
    assert response.json()[field]
    assert isinstance(response.json()["detail"], str)
