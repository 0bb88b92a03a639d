"""The data loop over the REST API: the guards with their reasons, tracking plans by role, conclusions
with before/after, metrics and observations, the CSV import, watches, goals and the funnel; other teams
see nothing and roles are enforced on the server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from dataloop.models import Goal, Metric, MetricWatch, Observation, Strategy
from tests.conftest import Crew
from tests.factories import READY_FIELDS, add_member, make_team
from workflows import services as workflow_services
from workflows.models import IterationLoop, Requirement, TrackingEvent

pytestmark = pytest.mark.django_db

LAUNCH = dt.date(2026, 3, 10)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def in_instrument(crew: Crew) -> Requirement:
    requirement = workflow_services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Day-2 red packet",
        design="https://wiki.example.com/spec",
        launch_date=LAUNCH,
        **READY_FIELDS,
    )
    workflow_services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="instrument"
    )
    return requirement


def move(client: APIClient, requirement: Requirement, from_stage: str, to: str) -> Any:
    return client.post(
        f"/api/requirements/{requirement.key}/transition/", {"from": from_stage, "to": to}, format="json"
    )


def add_event(client: APIClient, requirement: Requirement, name: str = "coupon_popup_show") -> Any:
    return client.post(
        f"/api/requirements/{requirement.key}/tracking-plan/",
        {"name": name, "trigger": "The red-packet pop-up is shown", "properties": ["user_id", "amount"]},
        format="json",
    )


def set_status(client: APIClient, event_id: int, status: str) -> Any:
    return client.patch(f"/api/tracking-events/{event_id}/", {"status": status}, format="json")


def test_instrument_to_analyze_is_refused_while_an_event_is_unverified(crew: Crew) -> None:
    requirement = in_instrument(crew)
    event_id = add_event(client_for(crew.pm), requirement).json()["id"]
    assert set_status(client_for(crew.engineer), event_id, "implemented").status_code == 200

    refused = move(client_for(crew.analyst), requirement, "instrument", "analyze")

    assert refused.status_code == 400
    assert refused.json()["tracking_plan"] == [
        "The tracking plan needs at least one event, and every event verified, before this move."
    ]
    assert Requirement.objects.get(pk=requirement.pk).stage.slug == "instrument"
    options = (
        client_for(crew.analyst).get(f"/api/requirements/{requirement.key}/available-transitions/").json()
    )
    [analyze] = [o for o in options if o["to"] == "analyze"]
    assert (analyze["allowed"], analyze["missing_fields"]) == (False, ["tracking_plan"])


def test_instrument_to_analyze_goes_once_every_event_is_verified(crew: Crew) -> None:
    requirement = in_instrument(crew)
    event_id = add_event(client_for(crew.pm), requirement).json()["id"]
    set_status(client_for(crew.engineer), event_id, "implemented")
    verified = set_status(client_for(crew.analyst), event_id, "verified")

    moved = move(client_for(crew.analyst), requirement, "instrument", "analyze")

    assert verified.json()["status"] == "verified"
    assert moved.status_code == 200, moved.content
    plan = client_for(crew.ops).get(f"/api/requirements/{requirement.key}/tracking-plan/").json()
    assert (plan["total"], plan["verified"], plan["complete"]) == (1, 1, True)


def test_an_empty_plan_does_not_open_the_guard(crew: Crew) -> None:
    requirement = in_instrument(crew)

    refused = move(client_for(crew.engineer), requirement, "instrument", "analyze")

    assert refused.status_code == 400
    assert "tracking_plan" in refused.json()


def test_an_engineer_may_not_verify_and_nothing_changes(crew: Crew) -> None:
    requirement = in_instrument(crew)
    event_id = add_event(client_for(crew.pm), requirement).json()["id"]
    set_status(client_for(crew.engineer), event_id, "implemented")

    refused = set_status(client_for(crew.engineer), event_id, "verified")

    assert refused.status_code == 403
    assert "analyst" in refused.json()["detail"]
    assert TrackingEvent.objects.get(pk=event_id).status == "implemented"


def test_ops_may_not_add_to_the_tracking_plan(crew: Crew) -> None:
    requirement = in_instrument(crew)

    assert add_event(client_for(crew.ops), requirement).status_code == 403
    assert TrackingEvent.objects.count() == 0


def test_a_duplicate_event_name_is_a_field_error(crew: Crew) -> None:
    requirement = in_instrument(crew)
    add_event(client_for(crew.pm), requirement)

    again = add_event(client_for(crew.pm), requirement)

    assert again.status_code == 400
    assert "name" in again.json()
    assert TrackingEvent.objects.count() == 1


def analyzing(crew: Crew) -> Requirement:
    requirement = in_instrument(crew)
    event_id = add_event(client_for(crew.pm), requirement).json()["id"]
    set_status(client_for(crew.engineer), event_id, "implemented")
    set_status(client_for(crew.analyst), event_id, "verified")
    assert move(client_for(crew.analyst), requirement, "instrument", "analyze").status_code == 200
    return requirement


CONCLUSION = {
    "conclusion": "D1 retention **+3 pt**; more day-2 visits; feedback positive.",
    "verdict": "improved",
    "core_metric_moved": True,
    "behaviour_moved": True,
    "feedback_positive": True,
}


def test_analyze_to_optimize_is_refused_without_a_conclusion(crew: Crew) -> None:
    requirement = analyzing(crew)

    refused = move(client_for(crew.analyst), requirement, "analyze", "optimize")

    assert refused.status_code == 400
    assert refused.json()["conclusion"] == ["An analysis conclusion must be set before this move."]


def test_the_conclusion_records_the_checks_and_the_metric_before_and_after_the_launch(crew: Crew) -> None:
    requirement = analyzing(crew)
    metric = Metric.objects.get(team=crew.team, name="D1 retention")
    for offset in range(-7, 7):
        Observation.objects.create(
            metric=metric, date=LAUNCH + dt.timedelta(days=offset), value=Decimal(30 if offset < 0 else 33)
        )

    answer = client_for(crew.analyst).post(
        f"/api/requirements/{requirement.key}/analysis/", CONCLUSION, format="json"
    )

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["loop"]["verdict"] == "improved"
    assert "<strong>+3 pt</strong>" in body["loop"]["conclusion_html"]
    assert (body["loop"]["metric_name"], body["loop"]["metric_before"], body["loop"]["metric_after"]) == (
        "D1 retention",
        "30.0000",
        "33.0000",
    )
    assert (body["reading"]["before_days"], body["reading"]["after_days"], body["reading"]["change"]) == (
        7,
        7,
        "3.0000",
    )
    loop = IterationLoop.objects.get(requirement=requirement, number=1)
    assert (loop.core_metric_moved, loop.behaviour_moved, loop.feedback_positive) == (True, True, True)
    assert move(client_for(crew.analyst), requirement, "analyze", "optimize").status_code == 200


def test_a_conclusion_without_the_checks_is_refused_field_by_field(crew: Crew) -> None:
    requirement = analyzing(crew)

    refused = client_for(crew.analyst).post(
        f"/api/requirements/{requirement.key}/analysis/",
        {"conclusion": "ok", "verdict": "flat"},
        format="json",
    )

    assert refused.status_code == 400
    assert {"core_metric_moved", "behaviour_moved", "feedback_positive"} <= set(refused.json())
    assert IterationLoop.objects.get(requirement=requirement).conclusion == ""


def test_ops_may_not_write_the_conclusion(crew: Crew) -> None:
    requirement = analyzing(crew)

    refused = client_for(crew.ops).post(
        f"/api/requirements/{requirement.key}/analysis/", CONCLUSION, format="json"
    )

    assert refused.status_code == 403
    assert IterationLoop.objects.get(requirement=requirement).conclusion == ""


def test_a_new_team_has_the_usual_metrics(crew: Crew) -> None:
    names = [m["name"] for m in client_for(crew.engineer).get(f"/api/teams/{crew.team.pk}/metrics/").json()]

    assert {
        "DAU",
        "MAU",
        "DAU/MAU",
        "D1 retention",
        "D7 retention",
        "D30 retention",
        "Conversion rate",
        "ARPU",
        "LTV",
        "Complaint rate",
        "NPS",
    } <= set(names)


def test_observations_are_recorded_replaced_and_listed_newest_first(crew: Crew) -> None:
    metric = Metric.objects.get(team=crew.team, name="DAU")
    client = client_for(crew.analyst)
    url = f"/api/metrics/{metric.pk}/observations/"
    client.post(url, {"date": "2026-03-01", "value": "1000"}, format="json")
    client.post(url, {"date": "2026-03-02", "value": "1100"}, format="json")
    replaced = client.post(url, {"date": "2026-03-02", "value": "1150"}, format="json")

    listed = client.get(url).json()["results"]

    assert replaced.status_code == 201
    assert [(o["date"], o["value"], o["source"]) for o in listed] == [
        ("2026-03-02", "1150.0000", "api"),
        ("2026-03-01", "1000.0000", "api"),
    ]
    assert client.get(f"/api/metrics/{metric.pk}/").json()["latest_value"] == "1150.0000"


def test_bad_observation_input_gets_a_message_per_field(crew: Crew) -> None:
    metric = Metric.objects.get(team=crew.team, name="DAU")

    refused = client_for(crew.analyst).post(
        f"/api/metrics/{metric.pk}/observations/", {"date": "yesterday", "value": "lots"}, format="json"
    )

    assert refused.status_code == 400
    assert {"date", "value"} <= set(refused.json())
    assert Observation.objects.count() == 0


def test_an_engineer_may_read_but_not_record_observations(crew: Crew) -> None:
    metric = Metric.objects.get(team=crew.team, name="DAU")
    client = client_for(crew.engineer)

    assert client.get(f"/api/metrics/{metric.pk}/observations/").status_code == 200
    refused = client.post(
        f"/api/metrics/{metric.pk}/observations/", {"date": "2026-03-01", "value": "1"}, format="json"
    )
    assert refused.status_code == 403
    assert Observation.objects.count() == 0


def test_metric_names_are_unique_in_a_team_whatever_the_case(crew: Crew) -> None:
    refused = client_for(crew.ops).post(f"/api/teams/{crew.team.pk}/metrics/", {"name": "dau"}, format="json")

    assert refused.status_code == 400
    assert "name" in refused.json()


def test_a_metric_with_observations_cannot_be_deleted(crew: Crew) -> None:
    metric = Metric.objects.get(team=crew.team, name="DAU")
    Observation.objects.create(metric=metric, date=LAUNCH, value=1)

    refused = client_for(crew.lead).delete(f"/api/metrics/{metric.pk}/")

    assert refused.status_code == 400
    assert Metric.objects.filter(pk=metric.pk).exists()


def upload(client: APIClient, team_id: int, text: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/api/teams/{team_id}/observations/import/",
        {"file": SimpleUploadedFile("observations.csv", text.encode(), content_type="text/csv")},
        format="multipart",
    )


GOOD_CSV = "metric,date,value,segment\nDAU,2026-03-01,1000,\nDAU,2026-03-01,600,iOS\nD7 retention,2026-03-01,24.5%,\n"


def test_a_csv_import_writes_every_row_and_a_second_import_adds_nothing(crew: Crew) -> None:
    client = client_for(crew.analyst)

    first = upload(client, crew.team.pk, GOOD_CSV)
    second = upload(client, crew.team.pk, GOOD_CSV)

    assert first.json() == {"created": 3, "updated": 0, "unchanged": 0}
    assert second.json() == {"created": 0, "updated": 0, "unchanged": 3}
    assert Observation.objects.count() == 3
    assert Observation.objects.get(metric__name="D7 retention").value == Decimal("24.5")


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("Daily orders,2026-03-02,10,", "line 3, metric: Unknown metric “Daily orders”"),
        ("DAU,2026-03-02,many,", "line 3, value: Not a number"),
        ("DAU,2026-02-30,10,", "line 3, date: Not a date"),
        ('DAU,2026-03-02,=HYPERLINK("http://x"),', "line 3, value: Not a number"),
    ],
)
def test_a_bad_row_rejects_the_whole_file_with_its_line(crew: Crew, bad_row: str, problem: str) -> None:
    text = f"metric,date,value,segment\nDAU,2026-03-01,1000,\n{bad_row}\nMAU,2026-03-01,9000,\n"

    refused = upload(client_for(crew.analyst), crew.team.pk, text)

    assert refused.status_code == 400
    assert refused.json()["rows"][0].startswith(problem), refused.json()
    assert Observation.objects.count() == 0


def watch_body(crew: Crew, **fields: Any) -> dict[str, Any]:
    metric = Metric.objects.get(team=crew.team, name="Complaint rate")
    return {
        "name": "Complaints",
        "metric": metric.pk,
        "comparison": "gt",
        "threshold": "5",
        "periods": 3,
        "title": "Complaints above 5%",
        "owner_role": "ops",
        **fields,
    }


def test_watches_are_created_listed_and_updated(crew: Crew) -> None:
    client = client_for(crew.ops)
    created = client.post(f"/api/teams/{crew.team.pk}/watches/", watch_body(crew), format="json")
    watch_id = created.json()["id"]

    updated = client.patch(f"/api/watches/{watch_id}/", {"periods": 5, "is_active": False}, format="json")

    assert created.status_code == 201, created.content
    assert (updated.json()["periods"], updated.json()["is_active"]) == (5, False)
    assert [w["name"] for w in client.get(f"/api/teams/{crew.team.pk}/watches/").json()] == ["Complaints"]
    assert client.get(f"/api/watches/{watch_id}/firings/").json() == []


def test_a_threshold_comparison_without_a_threshold_is_refused(crew: Crew) -> None:
    refused = client_for(crew.ops).post(
        f"/api/teams/{crew.team.pk}/watches/", watch_body(crew, threshold=None), format="json"
    )

    assert refused.status_code == 400
    assert "threshold" in refused.json()
    assert MetricWatch.objects.count() == 0


def test_the_presets_come_in_the_callers_language(crew: Crew) -> None:
    english = client_for(crew.ops).get("/api/watch-presets/").json()

    assert [p["key"] for p in english] == ["d7-retention", "complaints", "churn-rising"]
    assert english[1]["periods"] == 3 and english[2]["period"] == "month"


def test_goals_carry_strategies_and_their_requirements(crew: Crew) -> None:
    requirement = in_instrument(crew)
    client = client_for(crew.ops)
    orders = client.post(
        f"/api/teams/{crew.team.pk}/metrics/", {"name": "Daily orders", "unit": "orders"}, format="json"
    )
    metric_id = orders.json()["id"]
    Observation.objects.create(metric_id=metric_id, date=dt.date(2026, 1, 1), value=120)
    Observation.objects.create(metric_id=metric_id, date=dt.date(2026, 3, 1), value=160)
    goal = client.post(
        f"/api/teams/{crew.team.pk}/goals/",
        {
            "title": "200 orders a day",
            "metric": metric_id,
            "target": "200",
            "start": "2026-01-01",
            "end": "2026-06-30",
        },
        format="json",
    )
    goal_id = goal.json()["id"]

    strategy = client.post(
        f"/api/goals/{goal_id}/strategies/",
        {"title": "First-order conversion", "requirements": [requirement.key]},
        format="json",
    )
    tree = client.get(f"/api/goals/{goal_id}/").json()

    assert strategy.status_code == 201, strategy.content
    assert (tree["baseline"], tree["latest_value"], tree["progress"]) == ("120.0000", "160.0000", 0.5)
    [row] = tree["strategies"]
    assert row["requirements"] == [
        {
            "id": requirement.pk,
            "key": requirement.key,
            "title": "Day-2 red packet",
            "stage": "instrument",
            "loop_number": 1,
            "closed": False,
        }
    ]


def test_a_strategy_may_not_carry_another_teams_requirement(crew: Crew) -> None:
    other = make_team(name="Other", key_prefix="OTH")
    foreign = workflow_services.requirement_create(team=other, actor=other.memberships.get().user, title="x")
    metric = Metric.objects.get(team=crew.team, name="DAU")
    goal = Goal.objects.create(team=crew.team, title="g", metric=metric, target=1, start=LAUNCH, end=LAUNCH)

    refused = client_for(crew.lead).post(
        f"/api/goals/{goal.pk}/strategies/", {"title": "s", "requirements": [foreign.key]}, format="json"
    )

    assert refused.status_code == 400
    assert "requirements" in refused.json()
    assert Strategy.objects.count() == 0


def test_the_funnel_counts_requirements_and_loops_per_aarrr_stage(crew: Crew) -> None:
    in_instrument(crew)
    workflow_services.requirement_create(
        team=crew.team, actor=crew.ops, title="Invite a friend", aarrr_stage="referral"
    )
    workflow_services.requirement_create(team=crew.team, actor=crew.ops, title="No stage yet")

    funnel = client_for(crew.engineer).get(f"/api/teams/{crew.team.pk}/funnel/?period=30").json()

    rows = {row["stage"]: (row["open"], row["loops_started"]) for row in funnel["stages"]}
    assert rows == {
        "acquisition": (0, 0),
        "activation": (0, 0),
        "retention": (1, 1),
        "revenue": (0, 0),
        "referral": (1, 1),
        "": (1, 1),
    }


def test_another_teams_member_gets_404_everywhere_and_changes_nothing(crew: Crew) -> None:
    requirement = in_instrument(crew)
    event = TrackingEvent.objects.create(loop=requirement.loops.get(), name="e", trigger="t")
    metric = Metric.objects.get(team=crew.team, name="DAU")
    observation = Observation.objects.create(metric=metric, date=LAUNCH, value=1)
    watch = MetricWatch.objects.create(
        team=crew.team, name="w", metric=metric, comparison="gt", threshold=1, title="t", owner_role="ops"
    )
    goal = Goal.objects.create(team=crew.team, title="g", metric=metric, target=1, start=LAUNCH, end=LAUNCH)
    strategy = Strategy.objects.create(goal=goal, title="s")
    outsider = client_for(add_member(make_team(name="Other", key_prefix="OTH"), ["lead", "analyst", "ops"]))
    team = crew.team.pk

    answers = [
        outsider.get(f"/api/teams/{team}/metrics/"),
        outsider.post(f"/api/teams/{team}/metrics/", {"name": "x"}, format="json"),
        outsider.get(f"/api/metrics/{metric.pk}/"),
        outsider.patch(f"/api/metrics/{metric.pk}/", {"name": "x"}, format="json"),
        outsider.delete(f"/api/metrics/{metric.pk}/"),
        outsider.get(f"/api/metrics/{metric.pk}/observations/"),
        outsider.post(
            f"/api/metrics/{metric.pk}/observations/", {"date": "2026-01-01", "value": 1}, format="json"
        ),
        outsider.delete(f"/api/observations/{observation.pk}/"),
        upload(outsider, team, GOOD_CSV),
        outsider.get(f"/api/teams/{team}/watches/"),
        outsider.post(f"/api/teams/{team}/watches/", watch_body(crew), format="json"),
        outsider.get(f"/api/watches/{watch.pk}/"),
        outsider.patch(f"/api/watches/{watch.pk}/", {"periods": 2}, format="json"),
        outsider.delete(f"/api/watches/{watch.pk}/"),
        outsider.get(f"/api/watches/{watch.pk}/firings/"),
        outsider.get(f"/api/teams/{team}/goals/"),
        outsider.get(f"/api/goals/{goal.pk}/"),
        outsider.patch(f"/api/goals/{goal.pk}/", {"title": "x"}, format="json"),
        outsider.delete(f"/api/goals/{goal.pk}/"),
        outsider.post(f"/api/goals/{goal.pk}/strategies/", {"title": "x"}, format="json"),
        outsider.get(f"/api/strategies/{strategy.pk}/"),
        outsider.patch(f"/api/strategies/{strategy.pk}/", {"title": "x"}, format="json"),
        outsider.delete(f"/api/strategies/{strategy.pk}/"),
        outsider.get(f"/api/teams/{team}/funnel/"),
        outsider.get(f"/api/requirements/{requirement.key}/tracking-plan/"),
        add_event(outsider, requirement),
        set_status(outsider, event.pk, "implemented"),
        outsider.delete(f"/api/tracking-events/{event.pk}/"),
        outsider.get(f"/api/requirements/{requirement.key}/analysis/"),
        outsider.post(f"/api/requirements/{requirement.key}/analysis/", CONCLUSION, format="json"),
    ]

    assert [a.status_code for a in answers] == [404] * len(answers), [a.content[:80] for a in answers]
    assert (
        Metric.objects.get(pk=metric.pk).name,
        Observation.objects.count(),
        MetricWatch.objects.count(),
    ) == (
        "DAU",
        1,
        1,
    )
    assert (Goal.objects.get().title, Strategy.objects.count(), TrackingEvent.objects.get().status) == (
        "g",
        1,
        "planned",
    )


def test_every_problem_of_a_file_is_reported_at_once(crew: Crew) -> None:
    text = "metric,date,value\nDaily orders,2026-03-01,10\nDAU,2026-03-02,many\nDAU,2026-03-03,5\n"

    refused = upload(client_for(crew.analyst), crew.team.pk, text)

    rows = refused.json()["rows"]
    assert [row[:22] for row in rows] == ["line 2, metric: Unknow", "line 3, value: Not a n"]
    assert Observation.objects.count() == 0


def test_a_watch_is_switched_only_by_a_true_or_false(crew: Crew) -> None:
    from dataloop import services

    watch = services.watch_create(
        actor=crew.ops, team_id=crew.team.pk, **{**watch_body(crew), "is_active": False}
    )

    with pytest.raises(services.InvalidInput) as refused:
        services.watch_update(actor=crew.ops, watch_id=watch.pk, is_active="false")

    assert "is_active" in refused.value.errors
    assert MetricWatch.objects.get(pk=watch.pk).is_active is False
