"""The loop panel on the requirement page: the current loop's tracking plan and its analysis conclusion,
and the two guards they feed (instrument → analyze, analyze → optimize)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from dataloop import services as data_services
from dataloop.models import Metric
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team
from workflows import services
from workflows.models import IterationLoop, Requirement, TrackingEvent

pytestmark = pytest.mark.django_db

LAUNCH = dt.date(2026, 3, 10)
TRACKING_REASON = "every event verified"


def at_stage(crew: Crew, stage: str, **fields: Any) -> Requirement:
    """A requirement walked to `stage` by the roles that own each move (launch date set)."""
    requirement = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Day-2 red packet",
        **{**READY_FIELDS, "design": "spec", "launch_date": LAUNCH, **fields},
    )
    path = [("design", crew.ops), ("build", crew.pm), ("instrument", crew.engineer)]
    for target, actor in path:
        if Requirement.objects.get(pk=requirement.pk).stage.slug == stage:
            break
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=actor,
            from_stage=Requirement.objects.get(pk=requirement.pk).stage.slug,
            to_stage=target,
        )
    return Requirement.objects.get(pk=requirement.pk)


def add_event(crew: Crew, requirement: Requirement, name: str, status: str = "planned") -> TrackingEvent:
    event = services.tracking_event_add(
        requirement_id=requirement.pk,
        actor=crew.pm,
        name=name,
        trigger=f"when {name}",
        properties=["user_id"],
    )
    if status in ("implemented", "verified"):
        services.tracking_event_set_status(event_id=event.pk, actor=crew.engineer, status="implemented")
    if status == "verified":
        services.tracking_event_set_status(event_id=event.pk, actor=crew.analyst, status="verified")
    return TrackingEvent.objects.get(pk=event.pk)


def to_analyze(crew: Crew) -> Requirement:
    requirement = at_stage(crew, "instrument")
    add_event(crew, requirement, "red_packet_open", "verified")
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.analyst, from_stage="instrument", to_stage="analyze"
    )
    return Requirement.objects.get(pk=requirement.pk)


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def page_of(client: Client, requirement: Requirement) -> Any:
    return client.get(f"/requirements/{requirement.key}/")


def status_post(client: Client, requirement: Requirement, event: TrackingEvent, status: str) -> Any:
    return client.post(
        f"/requirements/{requirement.key}/tracking/{event.pk}/", {"action": "status", "status": status}
    )


CONCLUSION = {
    "conclusion": "D1 retention **up 2 pts**.",
    "verdict": "improved",
    "core_metric_moved": "yes",
    "behaviour_moved": "yes",
    "feedback_positive": "no",
}


# ---------------------------------------------------------------------------------- tracking guard


def test_instrument_to_analyze_is_refused_with_the_tracking_plan_reason_until_every_event_is_verified(
    client: Client, crew: Crew
) -> None:
    requirement = at_stage(crew, "instrument")
    first = add_event(crew, requirement, "red_packet_open", "verified")
    second = add_event(crew, requirement, "red_packet_claim", "implemented")
    login(client, crew.engineer)

    page = page_of(client, requirement)
    refused = {u["option"].target: u["reason"] for u in page.context["unavailable"]}
    assert TRACKING_REASON in refused["analyze"]
    html = page.content.decode()
    assert "1 of 2 verified" in html
    assert "The move to Analyze waits on this plan" in html
    moved = client.post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "instrument", "to": "analyze"}
    )
    assert moved.status_code == 400 and TRACKING_REASON in moved.content.decode()
    assert Requirement.objects.get(pk=requirement.pk).stage.slug == "instrument"

    login(client, crew.analyst)
    verified = status_post(client, requirement, second, "verified")
    assert verified.status_code == 302
    assert verified["Location"] == f"/requirements/{requirement.key}/#tracking-event-{second.pk}"
    page = page_of(client, requirement)
    assert "analyze" in [m["option"].target for m in page.context["moves_allowed"]]
    assert "2 of 2 verified" in page.content.decode()
    assert "waits on this plan" not in page.content.decode()
    moved = client.post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "instrument", "to": "analyze"}
    )
    assert moved.status_code == 302
    assert Requirement.objects.get(pk=requirement.pk).stage.slug == "analyze"
    assert TrackingEvent.objects.get(pk=first.pk).status == "verified"


def test_an_empty_plan_also_blocks_the_move_to_analyze(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "instrument")
    page = page_of(login(client, crew.engineer), requirement)
    html = page.content.decode()
    assert "No events in the plan yet." in html and "waits on this plan" in html
    assert "analyze" not in [m["option"].target for m in page.context["moves_allowed"]]


def test_engineer_cannot_verify_an_event(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "instrument")
    event = add_event(crew, requirement, "red_packet_open", "implemented")
    response = status_post(login(client, crew.engineer), requirement, event, "verified")
    assert response.status_code == 403
    assert "Data analyst" in response.content.decode()
    event.refresh_from_db()
    assert event.status == "implemented" and event.status_changed_by == crew.engineer


def test_status_buttons_offer_only_the_moves_the_users_roles_allow(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "instrument")
    planned = add_event(crew, requirement, "planned_one")
    implemented = add_event(crew, requirement, "implemented_one", "implemented")

    def buttons(user: Any) -> dict[int, list[str]]:
        page = page_of(login(client, user), requirement)
        return {row["event"].pk: [m["status"] for m in row["moves"]] for row in page_panel(page)["events"]}

    assert buttons(crew.engineer) == {planned.pk: ["implemented"], implemented.pk: ["planned"]}
    assert buttons(crew.analyst) == {planned.pk: ["implemented"], implemented.pk: ["verified", "planned"]}
    assert buttons(crew.ops) == {planned.pk: [], implemented.pk: []}
    html = page_of(login(client, crew.engineer), requirement).content.decode()
    assert 'name="status" value="implemented"' in html and 'name="status" value="verified"' not in html


def page_panel(page: Any) -> Any:
    """The context the loop panel rendered with."""
    for context in page.context:
        if "progress" in context and "events" in context:
            return context
    raise AssertionError("the loop panel was not rendered")


def test_engineer_implements_and_analyst_verifies_through_the_page(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "instrument")
    event = add_event(crew, requirement, "red_packet_open")
    assert status_post(login(client, crew.engineer), requirement, event, "implemented").status_code == 302
    assert status_post(login(client, crew.analyst), requirement, event, "verified").status_code == 302
    event.refresh_from_db()
    assert event.status == "verified" and event.status_changed_by == crew.analyst
    skipped = add_event(crew, requirement, "second")
    response = status_post(client, requirement, skipped, "verified")
    assert response.status_code == 400 and "only through the steps between" in response.content.decode()
    assert TrackingEvent.objects.get(pk=skipped.pk).status == "planned"


# ---------------------------------------------------------------------------------- tracking forms


def test_adding_an_event_through_the_form(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "build")
    response = login(client, crew.engineer).post(
        f"/requirements/{requirement.key}/tracking/",
        {
            "tracking-name": "red_packet_open",
            "tracking-trigger": "The user opens the red packet",
            "tracking-properties": "user_id, amount",
            "tracking-owner": str(crew.engineer.pk),
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("#tracking")
    event = TrackingEvent.objects.get(loop__requirement=requirement)
    assert (event.name, event.properties, event.owner, event.status) == (
        "red_packet_open",
        ["user_id", "amount"],
        crew.engineer,
        "planned",
    )
    page = client.get(response["Location"])
    html = page.content.decode()
    assert "is in the tracking plan" in html and "The user opens the red packet" in html
    assert "<code>amount</code>" in html


def test_tracking_form_errors_are_shown_next_to_the_fields_and_nothing_is_written(
    client: Client, crew: Crew
) -> None:
    requirement = at_stage(crew, "build")
    add_event(crew, requirement, "taken")
    login(client, crew.pm)
    response = client.post(
        f"/requirements/{requirement.key}/tracking/", {"tracking-name": "", "tracking-trigger": ""}
    )
    assert response.status_code == 400
    assert set(response.context["tracking_form"].errors) == {"name", "trigger"}
    assert 'id="id_tracking-name"' in response.content.decode()
    response = client.post(
        f"/requirements/{requirement.key}/tracking/",
        {"tracking-name": "taken", "tracking-trigger": "again", "tracking-owner": "999999"},
    )
    assert response.status_code == 400
    assert "owner" in response.context["tracking_form"].errors
    response = client.post(
        f"/requirements/{requirement.key}/tracking/", {"tracking-name": "taken", "tracking-trigger": "again"}
    )
    assert response.status_code == 400
    assert response.context["tracking_form"].errors["name"] == ["The plan already has an event of this name."]
    assert TrackingEvent.objects.filter(loop__requirement=requirement).count() == 1


def test_operations_cannot_write_the_tracking_plan(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "build")
    event = add_event(crew, requirement, "one")
    login(client, crew.ops)
    added = client.post(
        f"/requirements/{requirement.key}/tracking/", {"tracking-name": "x", "tracking-trigger": "y"}
    )
    assert added.status_code == 403 and "Product manager" in added.content.decode()
    deleted = client.post(f"/requirements/{requirement.key}/tracking/{event.pk}/", {"action": "delete"})
    assert deleted.status_code == 403
    assert list(TrackingEvent.objects.filter(loop__requirement=requirement)) == [event]
    assert 'action="/requirements/GROW-1/tracking/"' not in page_of(client, requirement).content.decode()


def test_editing_and_deleting_an_event(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "build")
    event = add_event(crew, requirement, "one")
    url = f"/requirements/{requirement.key}/tracking/{event.pk}/"
    login(client, crew.engineer)
    bad = client.post(url, {"action": "edit", f"event{event.pk}-name": "", f"event{event.pk}-trigger": "t"})
    assert bad.status_code == 400
    assert "name" in bad.context["tracking_edit_form"].errors
    assert TrackingEvent.objects.get(pk=event.pk).name == "one"
    good = client.post(
        url,
        {
            "action": "edit",
            f"event{event.pk}-name": "red_packet_open",
            f"event{event.pk}-trigger": "On open",
            f"event{event.pk}-properties": "user_id, channel",
        },
    )
    assert good.status_code == 302
    event.refresh_from_db()
    assert (event.name, event.trigger, event.properties) == (
        "red_packet_open",
        "On open",
        ["user_id", "channel"],
    )
    assert client.post(url, {"action": "nonsense"}).status_code == 400
    assert client.post(url, {"action": "delete"}).status_code == 302
    assert not TrackingEvent.objects.filter(pk=event.pk).exists()
    assert client.post(url, {"action": "delete"}).status_code == 404


def test_an_event_is_reached_only_through_its_own_requirement(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "build")
    other = services.requirement_create(team=crew.team, actor=crew.ops, title="Other")
    event = add_event(crew, requirement, "one")
    response = login(client, crew.engineer).post(
        f"/requirements/{other.key}/tracking/{event.pk}/", {"action": "delete"}
    )
    assert response.status_code == 404
    assert TrackingEvent.objects.filter(pk=event.pk).exists()


# ---------------------------------------------------------------------------------------- conclusion


def test_analyze_to_optimize_is_refused_without_a_conclusion_and_allowed_after_the_form(
    client: Client, crew: Crew
) -> None:
    requirement = to_analyze(crew)
    login(client, crew.analyst)
    page = page_of(client, requirement)
    refused = {u["option"].target: u["reason"] for u in page.context["unavailable"]}
    assert "An analysis conclusion must be set before this move." in refused["optimize"]
    assert "An analysis conclusion must be set" in page.content.decode()
    moved = client.post(f"/requirements/{requirement.key}/move/", {"from_stage": "analyze", "to": "optimize"})
    assert moved.status_code == 400

    saved = client.post(f"/requirements/{requirement.key}/analysis/", CONCLUSION)
    assert saved.status_code == 302 and saved["Location"].endswith("#analysis")
    loop = IterationLoop.objects.get(requirement=requirement, number=1)
    assert (loop.verdict, loop.core_metric_moved, loop.behaviour_moved, loop.feedback_positive) == (
        "improved",
        True,
        True,
        False,
    )
    assert loop.analyzed_by == crew.analyst
    page = page_of(client, requirement)
    html = page.content.decode()
    assert "<strong>up 2 pts</strong>" in html and "Analysis conclusion saved." in html
    assert "optimize" in [m["option"].target for m in page.context["moves_allowed"]]
    moved = client.post(f"/requirements/{requirement.key}/move/", {"from_stage": "analyze", "to": "optimize"})
    assert moved.status_code == 302
    assert Requirement.objects.get(pk=requirement.pk).stage.slug == "optimize"


def test_conclusion_form_errors_are_shown_and_nothing_is_written(client: Client, crew: Crew) -> None:
    requirement = to_analyze(crew)
    login(client, crew.analyst)
    response = client.post(
        f"/requirements/{requirement.key}/analysis/", {"conclusion": "Flat, sadly.", "verdict": "flat"}
    )
    assert response.status_code == 400
    form = response.context["conclusion_form"]
    assert set(form.errors) == {"core_metric_moved", "behaviour_moved", "feedback_positive"}
    html = response.content.decode()
    assert html.count('class="field field-error"') == 3
    assert "Flat, sadly." in html  # what was typed is kept
    response = client.post(
        f"/requirements/{requirement.key}/analysis/", {**CONCLUSION, "verdict": "better", "metric": "999999"}
    )
    assert response.status_code == 400
    assert set(response.context["conclusion_form"].errors) == {"verdict", "metric"}
    loop = IterationLoop.objects.get(requirement=requirement)
    assert (loop.conclusion, loop.verdict, loop.core_metric_moved, loop.analyzed_at) == ("", "", None, None)


def test_only_analysts_and_leads_write_the_conclusion(client: Client, crew: Crew) -> None:
    requirement = to_analyze(crew)
    for user in (crew.ops, crew.engineer, crew.pm):
        response = login(client, user).post(f"/requirements/{requirement.key}/analysis/", CONCLUSION)
        assert response.status_code == 403
        assert "Data analyst" in response.content.decode()
        assert "Write the conclusion" not in page_of(client, requirement).content.decode()
    assert IterationLoop.objects.get(requirement=requirement).conclusion == ""
    response = login(client, crew.lead).post(f"/requirements/{requirement.key}/analysis/", CONCLUSION)
    assert response.status_code == 302


def test_conclusion_records_and_shows_the_target_metric_before_and_after_the_launch(
    client: Client, crew: Crew
) -> None:
    requirement = to_analyze(crew)
    metric = Metric.objects.get(team=crew.team, name="D1 retention")
    for offset, value in ((-3, "20"), (-1, "22"), (0, "25"), (2, "27"), (9, "99")):
        data_services.observation_record(
            actor=crew.analyst, metric_id=metric.pk, date=LAUNCH + dt.timedelta(days=offset), value=value
        )
    login(client, crew.analyst)
    page = page_of(client, requirement)
    panel = page_panel(page)
    assert panel["reading"]["metric"] == metric
    assert panel["conclusion_form"].initial["metric"] == metric.pk
    html = page.content.decode()
    assert "D1 retention around the launch" in html
    assert "21%" in html and "26%" in html and "+5%" in html and "+23.8%" in html
    assert "2 days of data" in html

    client.post(f"/requirements/{requirement.key}/analysis/", {**CONCLUSION, "metric": str(metric.pk)})
    loop = IterationLoop.objects.get(requirement=requirement)
    assert (loop.metric_name, loop.metric_before, loop.metric_after) == (
        "D1 retention",
        Decimal("21"),
        Decimal("26"),
    )
    html = page_of(client, requirement).content.decode()
    assert "21% before → 26% after" in html and "(+5%, +23.8%)" in html


def test_conclusion_text_is_sanitized_markdown(client: Client, crew: Crew) -> None:
    requirement = to_analyze(crew)
    login(client, crew.analyst)
    client.post(
        f"/requirements/{requirement.key}/analysis/",
        {**CONCLUSION, "conclusion": "Up <script>alert(1)</script> [x](javascript:alert(1)) *a*"},
    )
    html = page_of(client, requirement).content.decode()
    assert "<script>alert(1)" not in html and 'href="javascript:' not in html
    assert "<em>a</em>" in html


def test_a_closed_requirement_shows_its_plan_and_conclusion_without_forms(client: Client, crew: Crew) -> None:
    requirement = to_analyze(crew)
    data_services.conclusion_record(
        requirement_id=requirement.pk,
        actor=crew.analyst,
        conclusion="Worked.",
        verdict="improved",
        core_metric_moved=True,
        behaviour_moved=True,
        feedback_positive=True,
    )
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="analyze", to_stage="close", outcome="done"
    )
    login(client, crew.lead)
    html = page_of(client, requirement).content.decode()
    assert "red_packet_open" in html and "Worked." in html
    assert "around the launch" not in html  # readers of a concluded loop see the values it saved
    assert 'action="/requirements/GROW-1/analysis/"' not in html
    assert 'action="/requirements/GROW-1/tracking/"' not in html
    assert 'name="status"' not in html
    response = client.post(f"/requirements/{requirement.key}/analysis/", CONCLUSION)
    assert response.status_code == 400 and "is closed" in response.content.decode()


# ------------------------------------------------------------------------------------ other teams


def test_another_teams_requirement_is_a_404_for_every_panel_post(client: Client, crew: Crew) -> None:
    requirement = at_stage(crew, "instrument")
    event = add_event(crew, requirement, "one", "implemented")
    outsider = UserFactory(username="outsider")
    make_team(lead=outsider)
    login(client, outsider)
    key = requirement.key
    for path, data in (
        (f"/requirements/{key}/tracking/", {"tracking-name": "x", "tracking-trigger": "y"}),
        (f"/requirements/{key}/tracking/{event.pk}/", {"action": "status", "status": "verified"}),
        (f"/requirements/{key}/tracking/{event.pk}/", {"action": "delete"}),
        (f"/requirements/{key}/analysis/", CONCLUSION),
    ):
        assert client.post(path, data).status_code == 404, path
    assert client.get(f"/requirements/{key}/").status_code == 404
    event.refresh_from_db()
    assert event.status == "implemented"
    assert IterationLoop.objects.get(requirement=requirement).conclusion == ""


def test_panel_posts_need_login_and_csrf(crew: Crew) -> None:
    requirement = at_stage(crew, "instrument")
    event = add_event(crew, requirement, "one", "implemented")
    anonymous = Client()
    response = anonymous.post(f"/requirements/{requirement.key}/analysis/", CONCLUSION)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(crew.analyst)
    response = strict.post(
        f"/requirements/{requirement.key}/tracking/{event.pk}/", {"action": "status", "status": "verified"}
    )
    assert response.status_code == 403
    assert TrackingEvent.objects.get(pk=event.pk).status == "implemented"


# ------------------------------------------------------------------------------------------ queries

# 12 before the loop panel, + the tracking plan, + the target metric (one each, whatever their size).
PAGE_QUERIES = 14
# An analyst also gets the metric catalogue for the conclusion form (instead of the target metric alone)
# and the metric's observations around the launch date.
ANALYST_PAGE_QUERIES = 15


def test_requirement_page_queries_do_not_grow_with_the_plan(
    client: Client, crew: Crew, django_assert_num_queries: Any
) -> None:
    fields: dict[str, Any] = dict(READY_FIELDS)
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="r", **fields)
    login(client, crew.ops)
    with django_assert_num_queries(PAGE_QUERIES):
        page_of(client, requirement)
    for i in range(5):
        add_event(crew, requirement, f"event_{i}", "implemented")
    add_member(crew.team, ["engineer"])
    with django_assert_num_queries(PAGE_QUERIES):
        response = page_of(client, requirement)
    assert len(page_panel(response)["events"]) == 5


def test_analyst_requirement_page_queries_do_not_grow(
    client: Client, crew: Crew, django_assert_num_queries: Any
) -> None:
    requirement = to_analyze(crew)
    metric = Metric.objects.get(team=crew.team, name="D1 retention")
    login(client, crew.analyst)
    with django_assert_num_queries(ANALYST_PAGE_QUERIES):
        page_of(client, requirement)
    for offset in range(-7, 7):
        data_services.observation_record(
            actor=crew.analyst, metric_id=metric.pk, date=LAUNCH + dt.timedelta(days=offset), value="20"
        )
    for i in range(4):
        add_event(crew, requirement, f"more_{i}")
    with django_assert_num_queries(ANALYST_PAGE_QUERIES):
        response = page_of(client, requirement)
    assert page_panel(response)["reading"]["values"].before_days == 7
