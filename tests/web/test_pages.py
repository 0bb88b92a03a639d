"""The pages where the team works: board, my queue, requirement page, forms, moves, comments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from notifications.models import Kind, Notification, NotificationSettings
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team, verify_tracking
from workflows import services
from workflows.models import IterationLoop, Requirement, Stage, StageEvent, Workflow

pytestmark = pytest.mark.django_db


def ready(crew: Crew, title: str = "First-order red packet", **fields: Any) -> Requirement:
    return services.requirement_create(
        team=crew.team, actor=crew.ops, title=title, **{**READY_FIELDS, **fields}
    )


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


# ------------------------------------------------------------------------------------------ login


def _web_patterns(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    """Every URL pattern of the web UI (not the API, admin, login or the language switch)."""
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _web_patterns(entry, route)
        elif isinstance(entry, URLPattern):
            found.append(route)
    skip = ("api/", "admin/", "login/", "logout/", "i18n/", "static/", "__debug__")
    return [route for route in found if not route.startswith(skip)]


def test_every_web_page_sends_strangers_to_login(client: Client, crew: Crew) -> None:
    ready(crew)
    routes = _web_patterns()
    assert "teams/<int:team_id>/board/" in routes and "requirements/<str:key>/" in routes
    for route in routes:
        path = "/" + route.replace("<int:team_id>", str(crew.team.pk)).replace("<str:key>", "GROW-1")
        for name in (
            "membership_id",
            "webhook_id",
            "metric_id",
            "watch_id",
            "goal_id",
            "strategy_id",
            "event_id",
        ):
            path = path.replace(f"<int:{name}>", "1")
        path = path.replace("<slug:metric>", "wip")
        assert "<" not in path, f"add a value for {route}"
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert response.status_code == 302, (method, path, response.status_code)
            assert response["Location"].startswith("/login/"), (method, path)


# ------------------------------------------------------------------------------------------ board


def test_board_has_a_column_per_stage_with_counts_and_cards(client: Client, crew: Crew) -> None:
    first = ready(crew, assignee=crew.ops.pk, priority="P1")
    services.requirement_transition(
        requirement_id=first.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    ready(crew, title="Second")
    response = login(client, crew.pm).get(f"/teams/{crew.team.pk}/board/")
    assert response.status_code == 200
    columns = {
        c["stage"].slug: [card["requirement"].key for card in c["cards"]] for c in response.context["columns"]
    }
    assert list(columns) == ["propose", "design", "build", "instrument", "analyze", "optimize"]
    assert columns["design"] == ["GROW-1"] and columns["propose"] == ["GROW-2"]
    html = response.content.decode()
    assert "First-order red packet" in html and "GROW-2" in html and "P1" in html


def test_board_has_a_column_for_a_stage_no_transition_touches(client: Client, crew: Crew) -> None:
    # No service makes such a stage; the board reads stages through the transitions and must not lose
    # one that none of them names (written directly, as a hand-edited workflow could hold it).
    workflow = Workflow.objects.get(team=crew.team, is_current=True)
    Stage.objects.create(workflow=workflow, slug="parked", name="Parked", order=7, owner_roles=["ops"])
    ready(crew)
    response = login(client, crew.ops).get(f"/teams/{crew.team.pk}/board/")
    assert [c["stage"].slug for c in response.context["columns"]] == [
        "propose",
        "design",
        "build",
        "instrument",
        "analyze",
        "optimize",
        "parked",
    ]
    assert [card["requirement"].key for card in response.context["columns"][0]["cards"]] == ["GROW-1"]


def test_board_cards_show_their_labels_and_the_label_filter_offers_every_label(
    client: Client, crew: Crew
) -> None:
    ready(crew, labels=["zeta", "alpha"])
    closed = ready(crew, title="Closed", labels=["beta"])
    services.requirement_transition(
        requirement_id=closed.pk, actor=crew.lead, from_stage="propose", to_stage="close", outcome="wont_do"
    )
    response = login(client, crew.ops).get(f"/teams/{crew.team.pk}/board/")
    assert [card["labels"] for card in response.context["columns"][0]["cards"]] == [["alpha", "zeta"]]
    assert response.context["labels"] == ["alpha", "beta", "zeta"]


def test_board_card_offers_only_moves_this_user_may_make(client: Client, crew: Crew) -> None:
    ready(crew)
    response = login(client, crew.ops).get(f"/teams/{crew.team.pk}/board/")
    card = response.context["columns"][0]["cards"][0]
    assert [m["option"].target for m in card["moves"]] == ["design"]
    response = login(client, crew.engineer).get(f"/teams/{crew.team.pk}/board/")
    card = response.context["columns"][0]["cards"][0]
    assert card["moves"] == []
    assert 'name="to"' not in response.content.decode()


def test_board_card_loads_its_move_form_when_the_menu_opens(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    board = login(client, crew.ops).get(f"/teams/{crew.team.pk}/board/").content.decode()
    assert 'name="to"' not in board  # the form is not on the board itself
    url = f"/requirements/{requirement.key}/card/?from=propose"
    assert f'hx-get="{url}"' in board
    assert f'href="/requirements/{requirement.key}/"' in board  # without JavaScript: the page moves it
    form = client.get(url, headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/b/?q=x"})
    html = form.content.decode()
    assert form.status_code == 200 and html.lstrip().startswith("<form")
    assert 'name="from_stage" value="propose"' in html and 'name="to" value="design"' in html
    assert 'name="next" value="/b/?q=x"' in html


def test_board_move_form_of_a_stale_card_keeps_the_stage_it_was_seen_in(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    html = (
        login(client, crew.lead).get(f"/requirements/{requirement.key}/card/?from=propose").content.decode()
    )
    assert 'name="from_stage" value="propose"' in html  # so the move it sends is refused as a conflict
    response = client.post(
        f"/requirements/{requirement.key}/move/",
        {"from_stage": "propose", "to": "build", "source": "board"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409


def test_board_filters_are_kept_in_the_url(client: Client, crew: Crew) -> None:
    ready(crew, title="Retention thing", assignee=crew.ops.pk, labels=["red"])
    ready(crew, title="Other", aarrr_stage="revenue", priority="P0")
    login(client, crew.ops)
    board = f"/teams/{crew.team.pk}/board/"

    def keys(query: str) -> list[str]:
        response = client.get(board + query)
        return sorted(card["requirement"].key for c in response.context["columns"] for card in c["cards"])

    assert keys("") == ["GROW-1", "GROW-2"]
    assert keys("?assignee=me") == ["GROW-1"]
    assert keys("?assignee=none") == ["GROW-2"]
    assert keys("?aarrr=revenue") == ["GROW-2"]
    assert keys("?priority=P0") == ["GROW-2"]
    assert keys("?label=red") == ["GROW-1"]
    assert keys("?q=retention") == ["GROW-1"]
    assert keys("?q=grow-2") == ["GROW-2"]
    assert keys("?aarrr=nonsense&priority=P9&assignee=99999999999999999999") == ["GROW-1", "GROW-2"]
    page = client.get(board + "?q=retention").content.decode()
    assert 'value="retention"' in page  # the filter form shows what is applied


def test_board_answers_htmx_filter_requests_with_the_board_only(client: Client, crew: Crew) -> None:
    ready(crew)
    response = login(client, crew.ops).get(
        f"/teams/{crew.team.pk}/board/?q=red", headers={"HX-Request": "true", "HX-Target": "board"}
    )
    assert b"<html" not in response.content and b"GROW-1" in response.content


def test_overdue_and_amber_marks(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    due = requirement.sla_due_at
    assert due is not None
    login(client, crew.ops)
    span = due - requirement.stage_entered_at
    import time_machine

    with time_machine.travel(requirement.stage_entered_at + span * 0.5):
        card = client.get(f"/teams/{crew.team.pk}/board/").context["columns"][0]["cards"][0]
        assert card["state"] == ""
    with time_machine.travel(requirement.stage_entered_at + span * 0.85):
        card = client.get(f"/teams/{crew.team.pk}/board/").context["columns"][0]["cards"][0]
        assert card["state"] == "warn"
    with time_machine.travel(due + dt.timedelta(minutes=1)):
        response = client.get(f"/teams/{crew.team.pk}/board/")
        assert response.context["columns"][0]["cards"][0]["state"] == "overdue"
        assert b"rcard overdue" in response.content


def test_team_switcher_goes_to_the_chosen_team_and_never_to_anothers(client: Client, crew: Crew) -> None:
    mine = make_team(lead=crew.ops, name="Shop", key_prefix="SHOP")
    theirs = make_team(name="Secret", key_prefix="SECR")
    login(client, crew.ops)
    assert client.get(f"/board/?team={mine.pk}")["Location"] == f"/teams/{mine.pk}/board/"
    assert client.get(f"/board/?team={theirs.pk}")["Location"] != f"/teams/{theirs.pk}/board/"
    page = client.get(f"/teams/{crew.team.pk}/board/").content.decode()
    assert "Shop" in page and "Secret" not in page


# ------------------------------------------------------------------------------------------ 404s


def test_another_teams_requirement_is_a_404_everywhere(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    outsider = UserFactory()
    make_team(lead=outsider)
    login(client, outsider)
    key = requirement.key
    for path in (f"/requirements/{key}/", f"/requirements/{key}/edit/", f"/requirements/{key}/card/"):
        assert client.get(path).status_code == 404, path
    for path, data in (
        (f"/requirements/{key}/move/", {"from_stage": "propose", "to": "design"}),
        (f"/requirements/{key}/comments/", {"body": "hi"}),
        (f"/requirements/{key}/analysis/", {"conclusion": "x", "verdict": "flat"}),
        (f"/requirements/{key}/edit/", {"title": "taken over", "priority": "P2", "work_type": "base"}),
    ):
        assert client.post(path, data).status_code == 404, path
    assert client.get(f"/teams/{crew.team.pk}/board/").status_code == 404
    assert client.get(f"/teams/{crew.team.pk}/requirements/new/").status_code == 404
    requirement.refresh_from_db()
    assert requirement.stage.slug == "propose" and requirement.title == "First-order red packet"
    assert requirement.comments.count() == 0


# -------------------------------------------------------------------------------- requirement page


def test_requirement_page_shows_fields_loop_and_timeline(client: Client, crew: Crew) -> None:
    requirement = ready(crew, description="**Bold** idea", assignee=crew.pm.pk)
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.ops,
        from_stage="propose",
        to_stage="design",
        note="over to PM",
    )
    services.comment_create(requirement_id=requirement.pk, actor=crew.pm, body="Looking at it")
    response = login(client, crew.pm).get(f"/requirements/{requirement.key.lower()}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong>Bold</strong>" in html
    assert "A red-packet on day 2 lifts D1 retention" in html
    assert "over to PM" in html and "Looking at it" in html
    kinds = [item["type"] for item in response.context["timeline"]]
    assert kinds == ["event", "event", "comment"]
    assert response.context["timeline"][1]["spent"] is not None
    assert "Loop 1" in html


def test_markdown_and_html_in_text_fields_render_inert(client: Client, crew: Crew) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>[x](javascript:alert(3))"
    requirement = ready(crew, title=evil[:200], description=evil, hypothesis=evil, design=evil)
    services.comment_create(requirement_id=requirement.pk, actor=crew.ops, body=evil)
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design", note=evil
    )
    for path in (f"/requirements/{requirement.key}/", f"/teams/{crew.team.pk}/board/", "/queue/"):
        html = login(client, crew.ops).get(path).content.decode()
        assert "<script>alert" not in html, path
        assert "onerror=" not in html.replace("onerror=alert(2)&gt;", ""), path
        assert 'href="javascript:' not in html, path


def test_unavailable_moves_say_why(client: Client, crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="Bare")
    response = login(client, crew.ops).get(f"/requirements/{requirement.key}/")
    reasons = {u["option"].target: u["reason"] for u in response.context["unavailable"]}
    assert reasons["design"] == "A hypothesis must be set before this move."
    response = login(client, crew.engineer).get(f"/requirements/{requirement.key}/")
    reasons = {u["option"].target: u["reason"] for u in response.context["unavailable"]}
    assert reasons["design"] == "Only Operations / Lead may do this."
    assert "Only Operations / Lead may do this." in response.content.decode()


TRACKING_PLAN_REASON = (
    "The tracking plan needs at least one event, and every event verified, before this move."
)


def instrumented(crew: Crew) -> Requirement:
    """A requirement in instrument with its launch date set: only the tracking plan keeps it there."""
    requirement = ready(crew, launch_date=dt.date(2026, 3, 7))
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="instrument"
    )
    return requirement


def test_requirement_page_offers_analyze_once_the_tracking_plan_is_verified(
    client: Client, crew: Crew
) -> None:
    requirement = instrumented(crew)
    login(client, crew.engineer)
    before = client.get(f"/requirements/{requirement.key}/")
    verify_tracking(requirement)
    after = client.get(f"/requirements/{requirement.key}/")
    reasons = {u["option"].target: u["reason"] for u in before.context["unavailable"]}
    assert reasons["analyze"] == TRACKING_PLAN_REASON
    assert "analyze" in [m["option"].target for m in after.context["moves_allowed"]]


def test_board_card_offers_analyze_once_the_tracking_plan_is_verified(client: Client, crew: Crew) -> None:
    requirement = instrumented(crew)
    login(client, crew.engineer)
    before = client.get(f"/teams/{crew.team.pk}/board/")
    verify_tracking(requirement)
    after = client.get(f"/teams/{crew.team.pk}/board/")
    column = [c["stage"].slug for c in before.context["columns"]].index("instrument")
    assert [m["option"].target for m in before.context["columns"][column]["cards"][0]["moves"]] == ["build"]
    assert [m["option"].target for m in after.context["columns"][column]["cards"][0]["moves"]] == [
        "analyze",
        "build",
    ]


def test_forbidden_move_posted_by_hand_is_refused_on_the_server(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    response = login(client, crew.engineer).post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "propose", "to": "design"}
    )
    assert response.status_code == 403
    assert "Only Operations / Lead may do this." in response.content.decode()
    requirement.refresh_from_db()
    assert requirement.stage.slug == "propose"
    assert StageEvent.objects.filter(requirement=requirement).count() == 1


def test_move_with_a_note_then_redirects_to_the_page(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "propose", "to": "design", "note": "ready"}
    )
    assert response.status_code == 302 and response["Location"] == f"/requirements/{requirement.key}/"
    event = StageEvent.objects.filter(requirement=requirement).last()
    assert event is not None and (event.to_stage, event.note, event.actor) == ("design", "ready", crew.ops)


def test_missing_guard_field_is_a_400_with_the_reason(client: Client, crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="Bare")
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "propose", "to": "design"}
    )
    assert response.status_code == 400
    assert "A hypothesis must be set before this move." in response.content.decode()
    assert StageEvent.objects.filter(requirement=requirement).count() == 1


def test_conflict_says_who_moved_it_and_where_and_changes_nothing(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="design"
    )
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "propose", "to": "design", "note": "mine"}
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "lead moved this meanwhile; it is in Design now." in html
    assert response.context["requirement"].stage.slug == "design"  # the page shows it as it is now
    assert StageEvent.objects.filter(requirement=requirement).count() == 2
    assert not StageEvent.objects.filter(note="mine").exists()


def test_conflict_from_the_board_reloads_the_card(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="design"
    )
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/",
        {"from_stage": "propose", "to": "design", "source": "board"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert html.lstrip().startswith('<li class="rcard')
    assert "lead moved this meanwhile" in html and "Design" in html


def test_board_move_by_htmx_refreshes_the_page(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/",
        {"from_stage": "propose", "to": "design", "source": "board"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    requirement.refresh_from_db()
    assert requirement.stage.slug == "design"


def test_board_move_without_javascript_returns_to_the_board(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    board = f"/teams/{crew.team.pk}/board/?assignee=me"
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/",
        {"from_stage": "propose", "to": "design", "source": "board", "next": board},
    )
    assert response.status_code == 302 and response["Location"] == board
    evil = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/move/",
        {"from_stage": "design", "to": "propose", "next": "https://evil.example/"},
    )
    assert evil.status_code == 403  # ops may not send it back; and never to another site
    assert "evil.example" not in evil.get("Location", "")


def test_iterate_and_close_from_optimize(client: Client, crew: Crew) -> None:
    requirement = ready(crew, design="spec", launch_date=dt.date(2026, 1, 5))
    verify_tracking(requirement)
    for actor, to in (
        (crew.ops, "design"),
        (crew.pm, "build"),
        (crew.engineer, "instrument"),
        (crew.analyst, "analyze"),
    ):
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=actor,
            from_stage=Requirement.objects.get(pk=requirement.pk).stage.slug,
            to_stage=to,
        )
    login(client, crew.analyst)
    checks = {"core_metric_moved": "yes", "behaviour_moved": "yes", "feedback_positive": "yes"}
    response = client.post(
        f"/requirements/{requirement.key}/analysis/", {"conclusion": "", "verdict": "better", **checks}
    )
    assert response.status_code == 400
    assert response.context["conclusion_form"].errors.keys() == {"conclusion", "verdict"}
    response = client.post(
        f"/requirements/{requirement.key}/analysis/",
        {"conclusion": "D1 +2pt", "verdict": "improved", **checks},
    )
    assert response.status_code == 302
    client.post(f"/requirements/{requirement.key}/move/", {"from_stage": "analyze", "to": "optimize"})
    login(client, crew.ops)
    page = client.get(f"/requirements/{requirement.key}/")
    assert {o.target for o in page.context["exits_allowed"]} == {"iterate", "close"}
    response = client.post(
        f"/requirements/{requirement.key}/move/", {"from_stage": "optimize", "to": "iterate"}
    )
    assert response.status_code == 302
    requirement.refresh_from_db()
    assert requirement.loop_number == 2 and requirement.stage.slug == "propose"
    assert "Loop 2" in client.get(f"/requirements/{requirement.key}/").content.decode()
    login(client, crew.lead)
    response = client.post(f"/requirements/{requirement.key}/move/", {"from_stage": "propose", "to": "close"})
    assert response.status_code == 400 and "Choose an outcome" in response.content.decode()
    response = client.post(
        f"/requirements/{requirement.key}/move/",
        {"from_stage": "propose", "to": "close", "outcome": "wont_do"},
    )
    assert response.status_code == 302
    requirement.refresh_from_db()
    assert requirement.is_closed and requirement.outcome == "wont_do"
    assert IterationLoop.objects.filter(requirement=requirement).count() == 2


def test_analysis_form_is_for_analysts_and_leads(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    response = login(client, crew.ops).post(
        f"/requirements/{requirement.key}/analysis/", {"conclusion": "x", "verdict": "flat"}
    )
    assert response.status_code == 403
    assert IterationLoop.objects.get(requirement=requirement).conclusion == ""


# ---------------------------------------------------------------------------------- create and edit


def test_create_shows_errors_next_to_fields_and_writes_nothing(client: Client, crew: Crew) -> None:
    login(client, crew.ops)
    response = client.post(
        f"/teams/{crew.team.pk}/requirements/new/",
        {
            "title": "",
            "priority": "P9",
            "work_type": "base",
            "resources_budget": "lots",
            "assignee": "999999",
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert {"title", "priority", "resources_budget", "assignee"} <= set(errors)
    assert 'class="field field-error"' in response.content.decode()
    assert not Requirement.objects.exists()


def test_create_gives_the_key_at_once(client: Client, crew: Crew) -> None:
    login(client, crew.ops)
    response = client.post(
        f"/teams/{crew.team.pk}/requirements/new/",
        {
            "title": "Day-2 red packet",
            "priority": "P1",
            "work_type": "innovation",
            "aarrr_stage": "retention",
            "assignee": str(crew.pm.pk),
            "watchers": [str(crew.analyst.pk)],
            "labels_text": "red packet, D1",
            "due_date": "2026-12-01",
            "resources_budget": "1200.50",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/requirements/GROW-1/"
    requirement = Requirement.objects.get(key="GROW-1")
    assert requirement.assignee == crew.pm and requirement.priority == "P1"
    assert sorted(label.name for label in requirement.labels.all()) == ["D1", "red packet"]
    assert list(requirement.watchers.all()) == [crew.analyst]
    page = client.get(response["Location"])
    assert "GROW-1 is proposed: Day-2 red packet" in page.content.decode()


def test_assignee_must_be_a_member_of_the_team(client: Client, crew: Crew) -> None:
    stranger = UserFactory()
    make_team(lead=stranger)
    response = login(client, crew.ops).post(
        f"/teams/{crew.team.pk}/requirements/new/",
        {"title": "x", "priority": "P2", "work_type": "base", "assignee": str(stranger.pk)},
    )
    assert response.status_code == 400 and "assignee" in response.context["form"].errors


def test_edit_changes_fields_and_keeps_labels(client: Client, crew: Crew) -> None:
    requirement = ready(crew, labels=["red"])
    login(client, crew.pm)
    form = client.get(f"/requirements/{requirement.key}/edit/")
    assert form.context["form"].initial["labels_text"] == "red"
    response = client.post(
        f"/requirements/{requirement.key}/edit/",
        {
            "title": "Renamed",
            "priority": "P2",
            "work_type": "base",
            "design": "https://wiki/spec",
            "labels_text": "red",
        },
    )
    assert response.status_code == 302
    requirement.refresh_from_db()
    assert requirement.title == "Renamed" and requirement.design == "https://wiki/spec"
    assert [label.name for label in requirement.labels.all()] == ["red"]


def test_staff_who_is_not_a_member_cannot_create_or_edit(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    staff = UserFactory(is_staff=True)
    login(client, staff)
    assert client.get(f"/requirements/{requirement.key}/").status_code == 200
    assert client.post(f"/teams/{crew.team.pk}/requirements/new/", {"title": "x"}).status_code == 403
    assert client.post(f"/requirements/{requirement.key}/edit/", {"title": "x"}).status_code == 403


# ------------------------------------------------------------------------------------------ comments


def test_comment_with_a_mention_notifies_the_mentioned(client: Client, crew: Crew) -> None:
    requirement = ready(crew)
    login(client, crew.ops)
    page = client.get(f"/requirements/{requirement.key}/")
    assert {"username": "analyst", "name": "analyst"} in page.context["mention_names"]
    response = client.post(
        f"/requirements/{requirement.key}/comments/", {"body": "@analyst can you check D1?"}
    )
    assert response.status_code == 302 and "#comment-" in response["Location"]
    notification = Notification.objects.get(recipient=crew.analyst)
    assert notification.kind == Kind.MENTIONED and notification.link == f"/requirements/{requirement.key}/"
    empty = client.post(f"/requirements/{requirement.key}/comments/", {"body": "  "})
    assert empty.status_code == 400 and "body" in empty.context["comment_form"].errors


# ------------------------------------------------------------------------------------------ queue


def test_queue_lists_what_waits_on_me_oldest_first(client: Client, crew: Crew) -> None:
    old = ready(crew, title="Old, unassigned")
    assigned = ready(crew, title="Assigned to pm", assignee=crew.pm.pk)
    mentioned = ready(crew, title="Mentioning ops")
    services.requirement_transition(
        requirement_id=mentioned.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    services.requirement_update(requirement_id=mentioned.pk, actor=crew.pm, assignee=crew.pm.pk)
    services.comment_create(requirement_id=mentioned.pk, actor=crew.pm, body="@ops need a number")
    other_team = make_team(key_prefix="SHOP")
    add_member(other_team, ["ops"], user=crew.ops)
    elsewhere = services.requirement_create(team=other_team, actor=crew.ops, title="In my other team")

    rows = login(client, crew.ops).get("/queue/").context["rows"]
    assert [(row["requirement"].key, row["reasons"]) for row in rows] == [
        (old.key, ["stage"]),
        (mentioned.key, ["mentioned"]),
        (elsewhere.key, ["stage"]),
    ]
    rows = login(client, crew.pm).get("/queue/").context["rows"]
    assert [(row["requirement"].key, row["reasons"]) for row in rows] == [
        (assigned.key, ["assigned"]),
        (mentioned.key, ["assigned"]),
    ]


# ------------------------------------------------------------------------------------------ csrf


def test_posts_need_the_csrf_token(crew: Crew) -> None:
    requirement = ready(crew)
    client = Client(enforce_csrf_checks=True)
    client.force_login(crew.ops)
    for path, data in (
        (f"/requirements/{requirement.key}/move/", {"from_stage": "propose", "to": "design"}),
        (f"/requirements/{requirement.key}/comments/", {"body": "hi"}),
        (f"/teams/{crew.team.pk}/requirements/new/", {"title": "x", "priority": "P2", "work_type": "base"}),
    ):
        assert client.post(path, data).status_code == 403, path
    requirement.refresh_from_db()
    assert requirement.stage.slug == "propose" and Requirement.objects.count() == 1


# ------------------------------------------------------------------------------------------ language


def test_language_choice_is_remembered_for_the_user(crew: Crew) -> None:
    client = Client()
    client.post("/login/", {"username": "ops", "password": "pw-for-tests"})
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert NotificationSettings.objects.get(user=crew.ops).language == "zh-hans"
    fresh = Client()  # another browser: no cookie, English Accept-Language
    fresh.post("/login/", {"username": "ops", "password": "pw-for-tests"})
    page = fresh.get(f"/teams/{crew.team.pk}/board/", headers={"accept-language": "en"})
    assert "看板" in page.content.decode() and "提出" in page.content.decode()


def test_times_are_in_the_teams_time_zone(client: Client, crew: Crew) -> None:
    crew.team.time_zone = "Asia/Shanghai"
    crew.team.save()
    at = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="tz", at=at)
    html = login(client, crew.ops).get(f"/requirements/{requirement.key}/").content.decode()
    assert "2026-03-02 09:30" in html


# ------------------------------------------------------------------------------------------ queries

# Whole requests as a browser sends them, with its session cookie: the session and its user (2) come
# first on every page, and the page frame ends each with the unread count and the team switcher (2).
# The board, between them: the team with the user's roles and its current workflow; the cards; every
# label with the cards it is on; the transitions of the workflow versions on the board with their stages
# (the stages alone only when one is on no transition); the members (the assignee filter).
BOARD_QUERIES = 9
# My queue: the stages of the user's teams with the user's roles in each; the requirements waiting.
QUEUE_QUERIES = 6
# The requirement page: the requirement with the user's roles, its labels and watchers (3); its loops;
# the transitions with their stages; the events; the comments; the members. The loop panel adds two: the
# current loop's tracking plan, and the catalogue metric named by the target metric.
PAGE_QUERIES = 14


def _grow(crew: Crew, n: int) -> None:
    for i in range(n):
        requirement = ready(crew, title=f"r{i}", assignee=crew.ops.pk, labels=[f"l{i}", "common"])
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )
        services.comment_create(requirement_id=requirement.pk, actor=crew.pm, body=f"@ops note {i}")


def test_board_queries_do_not_grow(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    login(client, crew.ops)
    _grow(crew, 2)
    with django_assert_num_queries(BOARD_QUERIES):
        client.get(f"/teams/{crew.team.pk}/board/")
    _grow(crew, 10)
    with django_assert_num_queries(BOARD_QUERIES):
        response = client.get(f"/teams/{crew.team.pk}/board/")
    assert response.context["total"] == 12


def test_queue_queries_do_not_grow(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    login(client, crew.ops)
    _grow(crew, 2)
    with django_assert_num_queries(QUEUE_QUERIES):
        client.get("/queue/")
    _grow(crew, 10)
    with django_assert_num_queries(QUEUE_QUERIES):
        response = client.get("/queue/")
    assert len(response.context["rows"]) == 12


def test_requirement_page_queries_do_not_grow(
    client: Client, crew: Crew, django_assert_num_queries: Any
) -> None:
    requirement = ready(crew, labels=["a"], watchers=[crew.pm.pk])
    login(client, crew.ops)
    with django_assert_num_queries(PAGE_QUERIES):
        client.get(f"/requirements/{requirement.key}/")
    for i in range(6):
        services.comment_create(requirement_id=requirement.pk, actor=crew.pm, body=f"c{i}")
    for actor, frm, to in ((crew.ops, "propose", "design"), (crew.pm, "design", "propose")) * 3:
        services.requirement_transition(
            requirement_id=requirement.pk, actor=actor, from_stage=frm, to_stage=to
        )
    services.requirement_update(requirement_id=requirement.pk, actor=crew.ops, labels=["a", "b", "c"])
    add_member(crew.team, ["ops"])
    for name in ("order_submit", "coupon_open", "coupon_use"):
        verify_tracking(requirement, name=name)
    with django_assert_num_queries(PAGE_QUERIES):
        response = client.get(f"/requirements/{requirement.key}/")
    assert len(response.context["timeline"]) == 13


def test_password_change(client: Client, crew: Crew) -> None:
    login(client, crew.ops)
    page = client.get("/password/")
    assert page.status_code == 200 and 'name="new_password1"' in page.content.decode()
    bad = client.post("/password/", {"old_password": "wrong", "new_password1": "123", "new_password2": "123"})
    assert bad.status_code == 200 and bad.context["form"].errors
    good = client.post(
        "/password/",
        {
            "old_password": "pw-for-tests",
            "new_password1": "loop-and-learn-42",
            "new_password2": "loop-and-learn-42",
        },
    )
    assert good.status_code == 302 and good["Location"] == "/password/done/"
    crew.ops.refresh_from_db()
    assert crew.ops.check_password("loop-and-learn-42")
    assert "Password changed" in client.get("/password/done/").content.decode()
