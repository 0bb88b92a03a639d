"""The REST API end to end: a requirement walks the whole ops iteration loop, each move made over HTTP
by the person whose job it is, each signed in with a token of their own."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import Crew
from tests.factories import READY_FIELDS, add_member, make_team, verify_tracking
from workflows import services
from workflows.models import IterationLoop, Requirement, StageEvent

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"


def signed_in(username: str) -> APIClient:
    """A client holding the token the API hands out for the user's password."""
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def moved(client: APIClient, requirement_id: int, from_stage: str, to: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/requirements/{requirement_id}/transition/",
        {"from": from_stage, "to": to, **extra},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def optimizing_requirement(crew: Crew) -> Requirement:
    """A requirement with every guard field filled in, moved straight to optimize by the lead."""
    requirement = services.requirement_create(
        team=crew.team,
        actor=crew.lead,
        title="Day-2 red packet",
        design="https://wiki.example.com/spec",
        launch_date=dt.date(2026, 3, 7),
        **READY_FIELDS,
    )
    verify_tracking(requirement)
    services.loop_record_analysis(
        requirement_id=requirement.pk,
        actor=crew.lead,
        conclusion="D1 +3pt",
        verdict="improved",
        core_metric_moved=True,
        behaviour_moved=True,
        feedback_positive=True,
    )
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="optimize"
    )
    return requirement


def test_requirement_walks_the_whole_loop_over_http_by_five_roles(crew: Crew) -> None:
    ops, pm, engineer, analyst, lead = (
        signed_in(name) for name in ("ops", "pm", "engineer", "analyst", "lead")
    )

    created = ops.post(
        "/api/requirements/",
        {
            "team": crew.team.pk,
            "title": "新用户首单红包",
            "hypothesis": "A red packet on day 2 lifts D1 retention",
            "target_metric": "D1 retention",
            "aarrr_stage": "retention",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    requirement = created.json()
    assert (requirement["key"], requirement["stage"], requirement["loop"]) == ("GROW-1", "propose", 1)
    rid = requirement["id"]

    assert moved(ops, rid, "propose", "design")["stage"] == "design"
    assert moved(pm, rid, "design", "propose", note="needs info: which cohort?")["stage"] == "propose"
    assert moved(ops, rid, "propose", "design")["stage"] == "design"
    patched = pm.patch(
        f"/api/requirements/{rid}/", {"design": "https://wiki.example.com/spec"}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["design"] == "https://wiki.example.com/spec"
    assert moved(pm, rid, "design", "build")["stage"] == "build"
    assert moved(engineer, rid, "build", "instrument")["stage"] == "instrument"
    launched = engineer.patch(f"/api/requirements/{rid}/", {"launch_date": "2026-03-07"}, format="json")
    assert launched.status_code == 200, launched.content
    assert launched.json()["launch_date"] == "2026-03-07"
    verify_tracking(Requirement.objects.get(pk=rid))
    assert moved(analyst, rid, "instrument", "analyze")["stage"] == "analyze"
    analysis = analyst.post(
        f"/api/requirements/{rid}/analysis/",
        {
            "conclusion": "D1 retention +3pt against control",
            "verdict": "improved",
            "core_metric_moved": True,
            "behaviour_moved": True,
            "feedback_positive": True,
        },
        format="json",
    )
    assert analysis.status_code == 200, analysis.content
    assert (analysis.json()["loop"]["number"], analysis.json()["loop"]["verdict"]) == (1, "improved")
    assert moved(analyst, rid, "analyze", "optimize")["stage"] == "optimize"
    iterated = moved(ops, rid, "optimize", "iterate")
    assert (iterated["stage"], iterated["loop"], iterated["closed_at"]) == ("propose", 2, None)
    assert moved(ops, rid, "propose", "design")["loop"] == 2

    history = lead.get(f"/api/requirements/{rid}/history/")
    assert history.status_code == 200
    events = history.json()["results"]
    assert [
        (e["loop"], e["from_stage"], e["to_stage"], e["kind"], e["actor"]["username"]) for e in events
    ] == [
        (1, "", "propose", "create", "ops"),
        (1, "propose", "design", "forward", "ops"),
        (1, "design", "propose", "rework", "pm"),
        (1, "propose", "design", "forward", "ops"),
        (1, "design", "build", "forward", "pm"),
        (1, "build", "instrument", "forward", "engineer"),
        (1, "instrument", "analyze", "forward", "analyst"),
        (1, "analyze", "optimize", "forward", "analyst"),
        (1, "optimize", "propose", "iterate", "ops"),
        (2, "propose", "design", "forward", "ops"),
    ]
    assert events[2]["note"] == "needs info: which cohort?"
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)

    loops = lead.get(f"/api/loops/?requirement={rid}")
    assert loops.status_code == 200
    by_number = {loop["number"]: loop for loop in loops.json()["results"]}
    assert sorted(by_number) == [1, 2]
    assert by_number[1]["closed_at"] is not None
    assert (by_number[1]["outcome"], by_number[1]["verdict"]) == ("iterate", "improved")
    assert (by_number[2]["closed_at"], by_number[2]["outcome"]) == (None, "")

    by_key = lead.get("/api/requirements/GROW-1/")
    assert by_key.status_code == 200
    assert (by_key.json()["id"], by_key.json()["stage"], by_key.json()["loop"]) == (rid, "design", 2)


def test_ops_closing_from_optimize_sets_closed_at_and_outcome(crew: Crew) -> None:
    requirement = optimizing_requirement(crew)

    closed = moved(signed_in("ops"), requirement.pk, "optimize", "close", outcome="done")

    assert closed["closed_at"] is not None
    assert closed["outcome"] == "done"
    loop = IterationLoop.objects.get(requirement=requirement, number=1)
    assert loop.closed_at is not None
    assert loop.outcome == "close"
    assert StageEvent.objects.filter(requirement=requirement).last().kind == "close"


def test_close_without_outcome_is_refused_with_an_outcome_message(crew: Crew) -> None:
    requirement = optimizing_requirement(crew)
    events = StageEvent.objects.count()

    response = signed_in("ops").post(
        f"/api/requirements/{requirement.pk}/transition/", {"from": "optimize", "to": "close"}, format="json"
    )

    assert response.status_code == 400
    assert "outcome" in response.json()["outcome"][0]
    assert isinstance(response.json()["detail"], str)
    requirement.refresh_from_db()
    assert (requirement.closed_at, requirement.outcome) == (None, "")
    assert StageEvent.objects.count() == events


def test_me_lists_each_team_with_the_users_roles_in_it(crew: Crew) -> None:
    other = make_team(name="Community", key_prefix="COMM")
    add_member(other, ["ops", "analyst"], user=crew.engineer)

    response = signed_in("engineer").get("/api/me/")

    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["is_staff"]) == ("engineer", False)
    assert [(t["key_prefix"], t["roles"]) for t in body["teams"]] == [
        ("COMM", ["analyst", "ops"]),
        ("GROW", ["engineer"]),
    ]


def test_revoked_token_is_refused_with_401(crew: Crew) -> None:
    client = signed_in("pm")

    revoked = client.delete("/api/auth/token/")
    after = client.get("/api/me/")

    assert revoked.status_code == 204
    assert after.status_code == 401
    assert Token.objects.filter(user=crew.pm).count() == 0


def test_wrong_password_is_400_and_hands_out_no_token(crew: Crew) -> None:
    response = APIClient().post(
        "/api/auth/token/", {"username": "ops", "password": "not-the-password"}, format="json"
    )

    assert response.status_code == 400
    assert "token" not in response.json()
    assert isinstance(response.json()["detail"], str)
    assert Token.objects.count() == 0


def test_available_transitions_name_the_missing_field_for_the_owner(crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Referral badge",
        target_metric="K-factor",
        aarrr_stage="referral",
    )

    response = signed_in("ops").get(f"/api/requirements/{requirement.pk}/available-transitions/")

    assert response.status_code == 200
    assert response.json() == [
        {
            "to": "design",
            "kind": "forward",
            "allowed": False,
            "reason": "A hypothesis must be set before this move.",
            "missing_fields": ["hypothesis"],
        }
    ]


def test_available_transitions_name_the_roles_that_may_for_another_role(crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="Referral badge", **READY_FIELDS
    )

    response = signed_in("pm").get(f"/api/requirements/{requirement.pk}/available-transitions/")

    assert response.status_code == 200
    assert response.json() == [
        {
            "to": "design",
            "kind": "forward",
            "allowed": False,
            "reason": "Only these roles may do this: lead, ops.",
            "missing_fields": [],
        }
    ]
