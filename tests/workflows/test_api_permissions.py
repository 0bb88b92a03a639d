"""Who may do what over the REST API: the role matrix of the default workflow, team isolation, leads'
powers, site staff, and anonymous callers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.urls import URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from roles.models import Membership, Team
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team, verify_tracking
from workflows import services
from workflows.models import Comment, IterationLoop, Requirement, StageEvent, Workflow

pytestmark = pytest.mark.django_db

ROLES = ["ops", "pm", "engineer", "analyst", "lead"]
STAGES = ["propose", "design", "build", "instrument", "analyze", "optimize"]

# Written out from PRODUCT.md §3, not read from workflows/defaults.py: (from, to) -> (kind, roles that
# may). A lead may do anything; where the lead is not one of the stage's own roles the move is an override.
DEFAULT_MOVES: dict[tuple[str, str], tuple[str, set[str]]] = {
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
# Moves the default workflow does not define: only a lead makes them, as an override (or iterate/close).
LEAD_ONLY_MOVES: dict[tuple[str, str], str] = {
    ("propose", "build"): "override",
    ("propose", "optimize"): "override",
    ("build", "propose"): "override",
    ("analyze", "iterate"): "iterate",
    ("design", "close"): "close",
}


def expected_kind(role: str, move: tuple[str, str]) -> str:
    kind, roles = DEFAULT_MOVES[move]
    return kind if role in roles or kind in ("iterate", "close") else "override"


ALLOWED = [
    (role, *move, expected_kind(role, move))
    for move in DEFAULT_MOVES
    for role in ROLES
    if role in DEFAULT_MOVES[move][1] | {"lead"}
]
ALLOWED += [("lead", *move, kind) for move, kind in LEAD_ONLY_MOVES.items()]
REFUSED = [
    (role, *move, sorted(DEFAULT_MOVES[move][1] | {"lead"}))
    for move in DEFAULT_MOVES
    for role in ROLES
    if role not in DEFAULT_MOVES[move][1] | {"lead"}
]
REFUSED_SKIPS = [(role, *move) for move in LEAD_ONLY_MOVES for role in ROLES if role != "lead"]


def client_for(user: AbstractBaseUser) -> APIClient:
    client = APIClient()
    token, _created = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def requirement_in(
    team: Team, lead: AbstractBaseUser, stage: str, title: str = "Day-2 red packet"
) -> Requirement:
    """A requirement with every guard field filled in, moved straight to `stage` by the lead (an override)."""
    requirement = services.requirement_create(
        team=team,
        actor=lead,
        title=title,
        design="https://wiki.example.com/spec",
        launch_date=dt.date(2026, 3, 7),
        **READY_FIELDS,
    )
    verify_tracking(requirement)
    services.loop_record_analysis(
        requirement_id=requirement.pk,
        actor=lead,
        conclusion="D1 +3pt",
        verdict="improved",
        core_metric_moved=True,
        behaviour_moved=True,
        feedback_positive=True,
    )
    for target in [later for later in STAGES[1:] if later == stage]:
        services.requirement_transition(
            requirement_id=requirement.pk, actor=lead, from_stage="propose", to_stage=target
        )
    return Requirement.objects.get(pk=requirement.pk)


def transition_body(from_stage: str, to: str) -> dict[str, str]:
    return {"from": from_stage, "to": to, "outcome": "done" if to == "close" else ""}


# ------------------------------------------------------------------------------------ the role matrix


@pytest.mark.parametrize(("role", "from_stage", "to", "kind"), ALLOWED)
def test_role_allowed_by_the_workflow_makes_the_move(
    crew: Crew, role: str, from_stage: str, to: str, kind: str
) -> None:
    requirement = requirement_in(crew.team, crew.lead, from_stage)
    events = StageEvent.objects.filter(requirement=requirement).count()

    response = client_for(crew.by_role(role)).post(
        f"/api/requirements/{requirement.pk}/transition/", transition_body(from_stage, to), format="json"
    )

    assert response.status_code == 200, response.content
    assert StageEvent.objects.filter(requirement=requirement).count() == events + 1
    last = StageEvent.objects.filter(requirement=requirement).last()
    assert (last.from_stage, last.kind, last.actor) == (from_stage, kind, crew.by_role(role))


@pytest.mark.parametrize(
    ("role", "from_stage", "to", "allowed_roles"), REFUSED, ids=[f"{r}-{f}-{t}" for r, f, t, _a in REFUSED]
)
def test_role_not_allowed_by_the_workflow_gets_403_naming_the_roles_that_may(
    crew: Crew, role: str, from_stage: str, to: str, allowed_roles: list[str]
) -> None:
    requirement = requirement_in(crew.team, crew.lead, from_stage)
    events = StageEvent.objects.count()

    response = client_for(crew.by_role(role)).post(
        f"/api/requirements/{requirement.pk}/transition/", transition_body(from_stage, to), format="json"
    )

    assert response.status_code == 403, response.content
    assert response.json()["allowed_roles"] == allowed_roles
    assert response.json()["detail"] == f"Only these roles may do this: {', '.join(allowed_roles)}."
    assert StageEvent.objects.count() == events
    requirement.refresh_from_db()
    assert (requirement.stage.slug, requirement.loop_number, requirement.closed_at) == (from_stage, 1, None)


@pytest.mark.parametrize(("role", "from_stage", "to"), REFUSED_SKIPS)
def test_refused_skip_writes_nothing(crew: Crew, role: str, from_stage: str, to: str) -> None:
    requirement = requirement_in(crew.team, crew.lead, from_stage)
    events = StageEvent.objects.count()

    response = client_for(crew.by_role(role)).post(
        f"/api/requirements/{requirement.pk}/transition/", transition_body(from_stage, to), format="json"
    )

    assert 400 <= response.status_code < 500
    assert StageEvent.objects.count() == events
    requirement.refresh_from_db()
    assert (requirement.stage.slug, requirement.loop_number, requirement.closed_at) == (from_stage, 1, None)


@pytest.mark.parametrize(("role", "from_stage", "to"), REFUSED_SKIPS[:3])
def test_non_lead_asking_a_lead_only_skip_gets_403_naming_the_lead(
    crew: Crew, role: str, from_stage: str, to: str
) -> None:
    requirement = requirement_in(crew.team, crew.lead, from_stage)

    response = client_for(crew.by_role(role)).post(
        f"/api/requirements/{requirement.pk}/transition/", transition_body(from_stage, to), format="json"
    )

    assert response.status_code == 403
    assert response.json()["allowed_roles"] == ["lead"]


# ---------------------------------------------------------------------------------- team isolation


@dataclass
class Rival:
    """Team B, seen by crew.lead of team A."""

    team: Team
    lead: Any
    membership: Membership
    requirement: Requirement
    comment: Comment
    loop: IterationLoop
    workflow: Workflow

    def ids(self, own_team: Team) -> dict[str, Any]:
        return {
            "team": self.team.pk,
            "own_team": own_team.pk,
            "membership": self.membership.pk,
            "requirement": self.requirement.pk,
            "key": self.requirement.key,
            "comment": self.comment.pk,
            "loop": self.loop.pk,
            "workflow": self.workflow.pk,
        }


@pytest.fixture
def rival(crew: Crew) -> Rival:
    lead = UserFactory(username="rival_lead")
    team = make_team(lead=lead, name="Rival", key_prefix="RIVAL")
    member = add_member(team, ["ops"], username="rival_ops")
    requirement = requirement_in(team, lead, "analyze", title="Rival secret plan")
    comment = services.comment_create(requirement_id=requirement.pk, actor=member, body="Launch on Friday")
    return Rival(
        team=team,
        lead=lead,
        membership=Membership.objects.get(team=team, user=member),
        requirement=requirement,
        comment=comment,
        loop=IterationLoop.objects.get(requirement=requirement),
        workflow=Workflow.objects.get(team=team),
    )


def team_state(team: Team) -> dict[str, Any]:
    """Every row of the team that the API could write."""
    return {
        "team": list(Team.objects.filter(pk=team.pk).values()),
        "memberships": list(Membership.objects.filter(team=team).order_by("pk").values()),
        "workflows": list(Workflow.objects.filter(team=team).order_by("pk").values()),
        "requirements": list(Requirement.objects.filter(team=team).order_by("pk").values()),
        "loops": list(IterationLoop.objects.filter(requirement__team=team).order_by("pk").values()),
        "events": list(StageEvent.objects.filter(requirement__team=team).order_by("pk").values()),
        "comments": list(Comment.objects.filter(requirement__team=team).order_by("pk").values()),
        "all_requirements": Requirement.objects.count(),
        "all_memberships": Membership.objects.count(),
    }


OTHER_TEAMS_URLS = [
    ("get", "/api/teams/{team}/", None),
    ("patch", "/api/teams/{team}/", {"name": "Taken over"}),
    ("get", "/api/teams/{team}/members/", None),
    ("post", "/api/teams/{team}/members/", {"user": "lead", "roles": ["lead"]}),
    ("patch", "/api/teams/{team}/members/{membership}/", {"roles": ["lead"]}),
    ("delete", "/api/teams/{team}/members/{membership}/", None),
    ("patch", "/api/teams/{own_team}/members/{membership}/", {"roles": ["lead"]}),
    ("delete", "/api/teams/{own_team}/members/{membership}/", None),
    ("get", "/api/teams/{team}/workflow/", None),
    ("patch", "/api/teams/{team}/workflow/", {"stages": {"design": {"sla_hours": 1}}}),
    ("get", "/api/requirements/{requirement}/", None),
    ("get", "/api/requirements/{key}/", None),
    ("patch", "/api/requirements/{requirement}/", {"title": "Hijacked"}),
    ("patch", "/api/requirements/{key}/", {"title": "Hijacked"}),
    ("post", "/api/requirements/{requirement}/transition/", {"from": "analyze", "to": "optimize"}),
    ("post", "/api/requirements/{key}/transition/", {"from": "analyze", "to": "optimize"}),
    ("get", "/api/requirements/{requirement}/history/", None),
    ("get", "/api/requirements/{requirement}/available-transitions/", None),
    ("post", "/api/requirements/{requirement}/analysis/", {"conclusion": "Flat", "verdict": "flat"}),
    ("get", "/api/requirements/{requirement}/comments/", None),
    ("post", "/api/requirements/{requirement}/comments/", {"body": "Peeking"}),
    ("get", "/api/comments/{comment}/", None),
    ("patch", "/api/comments/{comment}/", {"body": "Edited by a stranger"}),
    ("get", "/api/loops/{loop}/", None),
    ("get", "/api/workflows/{workflow}/", None),
]


@pytest.mark.parametrize(("method", "url", "body"), OTHER_TEAMS_URLS)
def test_member_of_another_team_gets_404_and_changes_nothing(
    crew: Crew, rival: Rival, method: str, url: str, body: dict[str, Any] | None
) -> None:
    before = team_state(rival.team)

    response = getattr(client_for(crew.lead), method)(url.format(**rival.ids(crew.team)), body, format="json")

    assert response.status_code == 404, response.content
    assert response.json()["detail"] == "Not found."
    assert team_state(rival.team) == before


def test_creating_a_requirement_in_another_team_is_404(crew: Crew, rival: Rival) -> None:
    before = team_state(rival.team)

    response = client_for(crew.lead).post(
        "/api/requirements/", {"team": rival.team.pk, "title": "Planted"}, format="json"
    )

    assert response.status_code == 404
    assert team_state(rival.team) == before


LIST_URLS = [
    ("/api/teams/", "team"),
    ("/api/requirements/", "requirement"),
    ("/api/loops/", "loop"),
    ("/api/workflows/", "workflow"),
]


@pytest.mark.parametrize(("url", "kind"), LIST_URLS)
def test_lists_show_own_team_and_never_another(crew: Crew, rival: Rival, url: str, kind: str) -> None:
    own = requirement_in(crew.team, crew.lead, "propose")
    own_ids = {
        "team": crew.team.pk,
        "requirement": own.pk,
        "loop": IterationLoop.objects.get(requirement=own).pk,
        "workflow": Workflow.objects.get(team=crew.team).pk,
    }

    response = client_for(crew.lead).get(url)

    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == {own_ids[kind]}
    assert rival.ids(crew.team)[kind] not in ids


@pytest.mark.parametrize("url", ["/api/requirements/?team={team}", "/api/loops/?team={team}"])
def test_filtering_lists_by_another_team_shows_nothing(crew: Crew, rival: Rival, url: str) -> None:
    response = client_for(crew.lead).get(url.format(team=rival.team.pk))

    assert response.status_code == 200
    assert response.json()["results"] == []


# ------------------------------------------------------------------------------- leads and staff


def test_pm_cannot_add_a_member(crew: Crew) -> None:
    newcomer = UserFactory(username="newcomer")
    before = team_state(crew.team)

    response = client_for(crew.pm).post(
        f"/api/teams/{crew.team.pk}/members/", {"user": newcomer.username, "roles": ["ops"]}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "Only the team's leads may manage its members."
    assert team_state(crew.team) == before


def test_pm_cannot_change_a_members_roles(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.ops)
    before = team_state(crew.team)

    response = client_for(crew.pm).patch(
        f"/api/teams/{crew.team.pk}/members/{membership.pk}/", {"roles": ["lead"]}, format="json"
    )

    assert response.status_code == 403
    assert team_state(crew.team) == before


def test_pm_cannot_remove_a_member(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.ops)
    before = team_state(crew.team)

    response = client_for(crew.pm).delete(f"/api/teams/{crew.team.pk}/members/{membership.pk}/")

    assert response.status_code == 403
    assert team_state(crew.team) == before


def test_pm_cannot_change_the_workflow(crew: Crew) -> None:
    before = team_state(crew.team)

    response = client_for(crew.pm).patch(
        f"/api/teams/{crew.team.pk}/workflow/", {"stages": {"design": {"sla_hours": 24}}}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "Only the team's leads may change its workflow."
    assert team_state(crew.team) == before


def test_lead_changes_the_workflow_into_a_new_version(crew: Crew) -> None:
    response = client_for(crew.lead).patch(
        f"/api/teams/{crew.team.pk}/workflow/", {"stages": {"design": {"sla_hours": 24}}}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["version"], response.json()["is_current"]) == (2, True)
    assert {s["slug"]: s["sla_hours"] for s in response.json()["stages"]}["design"] == 24
    assert Workflow.objects.filter(team=crew.team).count() == 2


def test_lead_cannot_remove_the_last_lead(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.lead)
    before = team_state(crew.team)

    response = client_for(crew.lead).delete(f"/api/teams/{crew.team.pk}/members/{membership.pk}/")

    assert response.status_code == 400
    assert response.json()["roles"] == ["A team must keep at least one lead."]
    assert team_state(crew.team) == before


def test_staff_outside_the_team_can_read_it(crew: Crew, rival: Rival) -> None:
    staff = UserFactory(username="staff", is_staff=True)
    client = client_for(staff)

    team = client.get(f"/api/teams/{rival.team.pk}/")
    requirement = client.get(f"/api/requirements/{rival.requirement.key}/")

    assert team.status_code == 200
    assert team.json()["key_prefix"] == "RIVAL"
    assert requirement.status_code == 200
    assert requirement.json()["title"] == "Rival secret plan"


def test_staff_outside_the_team_cannot_move_its_requirement(crew: Crew, rival: Rival) -> None:
    staff = UserFactory(username="staff", is_staff=True)
    before = team_state(rival.team)

    response = client_for(staff).post(
        f"/api/requirements/{rival.requirement.pk}/transition/",
        {"from": "analyze", "to": "optimize"},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["allowed_roles"] == ["analyst", "lead"]
    assert team_state(rival.team) == before


# --------------------------------------------------------------------------------------- anonymous

# Every route of workflows/api/urls.py, by name, with each method it answers.
ANONYMOUS_REQUESTS: dict[str, list[tuple[str, str]]] = {
    "api-root": [("get", "/api/")],
    "api-token": [("delete", "/api/auth/token/")],
    "api-account-token": [("post", "/api/account/token/"), ("delete", "/api/account/token/")],
    "api-team-audit": [("get", "/api/teams/{team}/audit/")],
    "api-me": [("get", "/api/me/")],
    "api-ping": [("get", "/api/ping/")],
    "team-list": [("get", "/api/teams/"), ("post", "/api/teams/")],
    "team-detail": [
        ("get", "/api/teams/{team}/"),
        ("patch", "/api/teams/{team}/"),
        ("delete", "/api/teams/{team}/"),
    ],
    "team-members": [("get", "/api/teams/{team}/members/"), ("post", "/api/teams/{team}/members/")],
    "team-member": [
        ("patch", "/api/teams/{team}/members/{membership}/"),
        ("delete", "/api/teams/{team}/members/{membership}/"),
    ],
    "team-workflow": [("get", "/api/teams/{team}/workflow/"), ("patch", "/api/teams/{team}/workflow/")],
    "workflow-list": [("get", "/api/workflows/")],
    "workflow-detail": [("get", "/api/workflows/{workflow}/")],
    "requirement-list": [("get", "/api/requirements/"), ("post", "/api/requirements/")],
    "requirement-detail": [
        ("get", "/api/requirements/{requirement}/"),
        ("get", "/api/requirements/{key}/"),
        ("patch", "/api/requirements/{requirement}/"),
    ],
    "requirement-transition": [("post", "/api/requirements/{requirement}/transition/")],
    "requirement-history": [("get", "/api/requirements/{requirement}/history/")],
    "requirement-available-transitions": [("get", "/api/requirements/{requirement}/available-transitions/")],
    "requirement-comments": [
        ("get", "/api/requirements/{requirement}/comments/"),
        ("post", "/api/requirements/{requirement}/comments/"),
    ],
    "comment-detail": [("get", "/api/comments/{comment}/"), ("patch", "/api/comments/{comment}/")],
    "loop-list": [("get", "/api/loops/")],
    "loop-detail": [("get", "/api/loops/{loop}/")],
    "api-notifications": [("get", "/api/notifications/")],
    "api-notifications-unread": [("get", "/api/notifications/unread-count/")],
    "api-notifications-mark-read": [("post", "/api/notifications/mark-read/")],
    "api-notification-settings": [
        ("get", "/api/me/notification-settings/"),
        ("put", "/api/me/notification-settings/"),
    ],
    "api-team-webhooks": [("get", "/api/teams/{team}/webhooks/"), ("post", "/api/teams/{team}/webhooks/")],
    "api-team-webhook": [
        ("patch", "/api/teams/{team}/webhooks/1/"),
        ("delete", "/api/teams/{team}/webhooks/1/"),
    ],
    "api-team-deliveries": [("get", "/api/teams/{team}/deliveries/")],
    "api-team-calendar": [("get", "/api/teams/{team}/calendar/"), ("put", "/api/teams/{team}/calendar/")],
    "api-team-calendar-days": [("post", "/api/teams/{team}/calendar/days/")],
    "api-team-calendar-day": [("delete", "/api/teams/{team}/calendar/days/2026-10-01/")],
    "api-team-history-export": [("get", "/api/teams/{team}/history/export/")],
    "api-team-history-import": [("post", "/api/teams/{team}/history/import/")],
    "api-requirement-analysis": [
        ("get", "/api/requirements/{requirement}/analysis/"),
        ("post", "/api/requirements/{requirement}/analysis/"),
    ],
    "api-tracking-plan": [
        ("get", "/api/requirements/{requirement}/tracking-plan/"),
        ("post", "/api/requirements/{requirement}/tracking-plan/"),
    ],
    "api-tracking-event": [("patch", "/api/tracking-events/1/"), ("delete", "/api/tracking-events/1/")],
    "api-team-metrics": [("get", "/api/teams/{team}/metrics/"), ("post", "/api/teams/{team}/metrics/")],
    "api-metric": [("get", "/api/metrics/1/"), ("patch", "/api/metrics/1/"), ("delete", "/api/metrics/1/")],
    "api-metric-observations": [
        ("get", "/api/metrics/1/observations/"),
        ("post", "/api/metrics/1/observations/"),
    ],
    "api-observation": [("delete", "/api/observations/1/")],
    "api-observations-import": [("post", "/api/teams/{team}/observations/import/")],
    "api-team-funnel": [("get", "/api/teams/{team}/funnel/")],
    "api-team-watches": [("get", "/api/teams/{team}/watches/"), ("post", "/api/teams/{team}/watches/")],
    "api-watch": [("get", "/api/watches/1/"), ("patch", "/api/watches/1/"), ("delete", "/api/watches/1/")],
    "api-watch-firings": [("get", "/api/watches/1/firings/")],
    "api-watch-presets": [("get", "/api/watch-presets/")],
    "api-team-goals": [("get", "/api/teams/{team}/goals/"), ("post", "/api/teams/{team}/goals/")],
    "api-goal": [("get", "/api/goals/1/"), ("patch", "/api/goals/1/"), ("delete", "/api/goals/1/")],
    "api-goal-strategies": [("post", "/api/goals/1/strategies/")],
    "api-strategy": [
        ("get", "/api/strategies/1/"),
        ("patch", "/api/strategies/1/"),
        ("delete", "/api/strategies/1/"),
    ],
    **{
        f"api-analytics-{name}": [("get", f"/api/analytics/{name}/")]
        for name in (
            "cycle-time",
            "time-in-stage",
            "control-chart",
            "cumulative-flow",
            "throughput",
            "wip",
            "sla",
            "rework",
            "loops-per-requirement",
        )
    },
}
ANONYMOUS_CASES = [
    (name, method, url) for name, requests in ANONYMOUS_REQUESTS.items() for method, url in requests
]


# Answered by their own test below (the schema and its documentation pages).
DOCUMENTATION_ROUTES = {"api-schema", "api-docs", "api-redoc"}


def api_route_names() -> set[str]:
    """The name of every route under /api/ in the whole URL configuration."""
    names: set[str] = set()
    pending = [("", pattern) for pattern in get_resolver().url_patterns]
    while pending:
        prefix, pattern = pending.pop()
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            pending.extend((route, inner) for inner in pattern.url_patterns)
        elif route.startswith("api/") and pattern.name not in DOCUMENTATION_ROUTES:
            names.add(pattern.name)
    return names


def test_anonymous_checks_cover_every_api_route() -> None:
    assert set(ANONYMOUS_REQUESTS) == api_route_names()


@pytest.fixture
def crew_ids(crew: Crew) -> dict[str, Any]:
    requirement = requirement_in(crew.team, crew.lead, "propose")
    return {
        "team": crew.team.pk,
        "membership": Membership.objects.get(team=crew.team, user=crew.ops).pk,
        "requirement": requirement.pk,
        "key": requirement.key,
        "comment": services.comment_create(
            requirement_id=requirement.pk, actor=crew.ops, body="Looks good"
        ).pk,
        "loop": IterationLoop.objects.get(requirement=requirement).pk,
        "workflow": Workflow.objects.get(team=crew.team).pk,
    }


@pytest.mark.parametrize(("name", "method", "url"), ANONYMOUS_CASES)
def test_anonymous_caller_gets_401_and_changes_nothing(
    crew: Crew, crew_ids: dict[str, Any], name: str, method: str, url: str
) -> None:
    path = url.format(**crew_ids)
    before = team_state(crew.team)

    response = getattr(APIClient(), method)(path, {}, format="json")

    assert resolve(path).url_name == name
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Token"
    assert isinstance(response.json()["detail"], str)
    assert team_state(crew.team) == before


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_anonymous_caller_gets_401_from_the_schema_and_its_docs(url: str) -> None:
    response = APIClient().get(url)

    assert response.status_code == 401
