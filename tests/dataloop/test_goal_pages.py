"""The goal pages: the list with progress, the goal as a tree of metrics, strategies and requirements,
and the forms that set goals, strategies and the requirements carrying them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from dataloop import services as data_services
from dataloop.models import Goal, Metric, Strategy
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team
from workflows import services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def metric(crew: Crew, name: str) -> Metric:
    return Metric.objects.get(team=crew.team, name=name)


def observe(crew: Crew, name: str, day: dt.date, value: str) -> None:
    data_services.observation_record(
        actor=crew.analyst, metric_id=metric(crew, name).pk, date=day, value=value
    )


def make_goal(crew: Crew, **fields: Any) -> Goal:
    defaults: dict[str, Any] = {
        "title": "200 orders a day",
        "metric": metric(crew, "D1 retention").pk,
        "target": "30",
        "start": dt.date(2026, 1, 1),
        "end": dt.date(2026, 6, 30),
        "first_level_metrics": [metric(crew, "DAU").pk, metric(crew, "Conversion rate").pk],
    }
    return data_services.goal_create(actor=crew.ops, team_id=crew.team.pk, **{**defaults, **fields})


def requirement(crew: Crew, title: str, **fields: Any) -> Requirement:
    return services.requirement_create(
        team=crew.team, actor=crew.ops, title=title, **{**READY_FIELDS, **fields}
    )


def goals_url(crew: Crew) -> str:
    return f"/teams/{crew.team.pk}/goals/"


def goal_url(crew: Crew, goal: Goal) -> str:
    return f"/teams/{crew.team.pk}/goals/{goal.pk}/"


GOAL_FORM = {
    "title": "Repurchase up",
    "target": "35%",
    "start": "2026-01-01",
    "end": "2026-03-31",
    "description": "Second orders within 30 days",
}


# ---------------------------------------------------------------------------------------------- list


def test_goal_list_shows_progress_from_the_latest_observations(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="Red packets")
    data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="Push")
    observe(crew, "D1 retention", dt.date(2025, 12, 30), "20")
    observe(crew, "D1 retention", dt.date(2026, 2, 1), "24")
    observe(crew, "D1 retention", dt.date(2026, 2, 3), "25")
    response = login(client, crew.engineer).get(goals_url(crew))
    assert response.status_code == 200
    row = response.context["rows"][0]
    assert (row["baseline"], row["latest"], row["target"], row["progress_text"], row["bar"]) == (
        "20%",
        "25%",
        "30%",
        "50%",
        50,
    )
    html = response.content.decode()
    assert f'href="/teams/{crew.team.pk}/goals/{goal.pk}/"' in html and "200 orders a day" in html
    assert "D1 retention" in html and '2026-01-01 –</span> <span class="nowrap">2026-06-30' in html
    assert '<td data-label="Strategies" class="num">2</td>' in html
    assert 'aria-current="page">Goals<' in html  # the data tabs
    assert 'name="title"' not in html  # engineers do not set goals


def test_a_goal_without_data_shows_no_progress(client: Client, crew: Crew) -> None:
    make_goal(crew)
    response = login(client, crew.ops).get(goals_url(crew))
    row = response.context["rows"][0]
    assert (row["latest"], row["progress_text"], row["bar"]) == ("—", "—", None)


def test_operations_set_a_goal_through_the_form(client: Client, crew: Crew) -> None:
    login(client, crew.ops)
    form = client.get(goals_url(crew)).content.decode()
    assert 'name="first_level_metrics"' in form
    response = client.post(
        goals_url(crew),
        {
            **GOAL_FORM,
            "metric": str(metric(crew, "D7 retention").pk),
            "first_level_metrics": [str(metric(crew, "DAU").pk)],
        },
    )
    goal = Goal.objects.get(team=crew.team)
    assert response.status_code == 302 and response["Location"] == goal_url(crew, goal)
    assert (goal.title, goal.target, goal.metric.name, goal.created_by) == (
        "Repurchase up",
        Decimal("35"),
        "D7 retention",
        crew.ops,
    )
    assert [m.name for m in goal.first_level_metrics.all()] == ["DAU"]
    assert "Goal “Repurchase up” is set." in client.get(response["Location"]).content.decode()


def test_goal_form_errors_are_shown_next_to_the_fields_and_nothing_is_written(
    client: Client, crew: Crew
) -> None:
    login(client, crew.pm)
    response = client.post(
        goals_url(crew),
        {
            **GOAL_FORM,
            "title": "",
            "metric": str(metric(crew, "DAU").pk),
            "start": "2026-05-01",
            "target": "lots",
        },
    )
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"title", "target", "end"}
    assert response.context["form"].errors["end"] == ["The end comes before the start."]
    assert response.content.decode().count("field field-error") == 3
    other = make_team(name="Other", key_prefix="OTH")
    response = client.post(
        goals_url(crew), {**GOAL_FORM, "metric": str(Metric.objects.get(team=other, name="DAU").pk)}
    )
    assert response.status_code == 400 and "metric" in response.context["form"].errors
    assert not Goal.objects.exists()


def test_analysts_and_engineers_cannot_set_goals(client: Client, crew: Crew) -> None:
    for user in (crew.analyst, crew.engineer):
        response = login(client, user).post(
            goals_url(crew), {**GOAL_FORM, "metric": str(metric(crew, "DAU").pk)}
        )
        assert response.status_code == 403
        assert "Operations / Product manager / Lead" in response.content.decode()
    assert not Goal.objects.exists()


# ---------------------------------------------------------------------------------------------- tree


def test_goal_tree_shows_each_requirements_stage_and_loop_count(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    in_design = requirement(crew, "Red packet on day 2")
    services.requirement_transition(
        requirement_id=in_design.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    second_loop = requirement(crew, "Coupon reminder")
    services.requirement_transition(
        requirement_id=second_loop.pk, actor=crew.lead, from_stage="propose", to_stage="iterate"
    )
    closed = requirement(crew, "Old banner")
    services.requirement_transition(
        requirement_id=closed.pk, actor=crew.lead, from_stage="propose", to_stage="close", outcome="wont_do"
    )
    data_services.strategy_create(
        actor=crew.ops,
        goal_id=goal.pk,
        title="Bring new users back on day 2",
        metric=metric(crew, "DAU").pk,
        requirements=[in_design.key, second_loop.key, closed.key],
    )
    data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="Nothing yet")
    observe(crew, "DAU", dt.date(2026, 2, 1), "1200")

    response = login(client, crew.engineer).get(goal_url(crew, goal))
    assert response.status_code == 200
    first, empty = response.context["strategies"]
    assert [(r.key, r.stage.slug, r.loop_number, r.closed_at is None) for r in first["requirements"]] == [
        ("GROW-1", "design", 1, True),
        ("GROW-2", "propose", 2, True),
        ("GROW-3", "propose", 1, False),
    ]
    assert (first["open"], first["closed"], first["loops"]) == (2, 1, 4)
    assert empty["requirements"] == []
    html = response.content.decode()
    assert '<a href="/requirements/GROW-1/">GROW-1</a>' in html
    assert (
        '<td data-label="Stage">Design</td>' in html and '<td data-label="Loops" class="num">2</td>' in html
    )
    assert "Won&#x27;t do" in html or "Won't do" in html
    assert "2 open, 1 closed" in html and "4 loops" in html
    dau = metric(crew, "DAU")
    assert f'href="/teams/{crew.team.pk}/metrics/{dau.pk}/"' in html
    assert '<strong class="gt-value">1200 users</strong>' in html
    assert "No requirement carries this strategy yet." in html
    assert 'name="action"' not in html  # engineers see the tree, not the forms


def test_edit_the_goal(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    login(client, crew.lead)
    page = client.get(goal_url(crew, goal)).content.decode()
    assert 'value="200 orders a day"' in page and 'value="30"' in page
    response = client.post(
        goal_url(crew, goal),
        {
            "action": "edit",
            **GOAL_FORM,
            "title": "250 orders a day",
            "metric": str(goal.metric_id),
            "first_level_metrics": [],
        },
    )
    assert response.status_code == 302
    goal.refresh_from_db()
    assert goal.title == "250 orders a day" and goal.target == Decimal("35")
    assert goal.first_level_metrics.count() == 0
    bad = client.post(
        goal_url(crew, goal), {"action": "edit", **GOAL_FORM, "metric": "", "end": "2025-01-01"}
    )
    assert bad.status_code == 400 and set(bad.context["goal_form"].errors) == {"metric", "end"}
    assert '<details class="gt-edit" open>' in bad.content.decode()
    goal.refresh_from_db()
    assert goal.title == "250 orders a day"


def test_strategies_are_added_edited_and_deleted(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    login(client, crew.pm)
    added = client.post(
        f"{goal_url(crew, goal)}strategies/",
        {"new-title": "Day-2 red packet", "new-metric": str(metric(crew, "DAU").pk), "new-description": "x"},
    )
    assert added.status_code == 302 and added["Location"].endswith("#strategies")
    strategy = Strategy.objects.select_related("metric").get(goal=goal)
    assert (strategy.title, strategy.metric_id) == ("Day-2 red packet", metric(crew, "DAU").pk)
    bad = client.post(f"{goal_url(crew, goal)}strategies/", {"new-title": ""})
    assert bad.status_code == 400 and "title" in bad.context["new_strategy_form"].errors
    url = f"{goal_url(crew, goal)}strategies/{strategy.pk}/"
    edited = client.post(
        url, {"action": "edit", f"s{strategy.pk}-title": "Red packet", f"s{strategy.pk}-metric": ""}
    )
    assert edited.status_code == 302 and edited["Location"].endswith(f"#strategy-{strategy.pk}")
    strategy.refresh_from_db()
    assert (strategy.title, strategy.metric) == ("Red packet", None)
    bad = client.post(url, {"action": "edit", f"s{strategy.pk}-title": ""})
    assert bad.status_code == 400
    assert bad.context["strategies"][0]["edit_form"].errors == {"title": ["This field is required."]}
    assert client.post(url, {"action": "delete"}).status_code == 302
    assert not Strategy.objects.filter(goal=goal).exists()


def test_requirements_are_linked_by_key_and_unlinked(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    first = requirement(crew, "First")
    second = requirement(crew, "Second")
    closed = requirement(crew, "Closed one")
    services.requirement_transition(
        requirement_id=closed.pk, actor=crew.lead, from_stage="propose", to_stage="close", outcome="done"
    )
    strategy = data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="S")
    url = f"{goal_url(crew, goal)}strategies/{strategy.pk}/"
    login(client, crew.ops)
    page = client.get(goal_url(crew, goal)).content.decode()
    assert '<option value="GROW-1">GROW-1 First</option>' in page
    assert 'value="GROW-3"' not in page  # only open requirements are offered
    assert client.post(url, {"action": "link", f"l{strategy.pk}-keys": "grow-1, GROW-2"}).status_code == 302
    assert sorted(strategy.requirements.values_list("key", flat=True)) == ["GROW-1", "GROW-2"]
    other_lead: Any = UserFactory(username="other-lead")
    other = make_team(lead=other_lead, name="Other", key_prefix="OTH")
    foreign = services.requirement_create(team=other, actor=other_lead, title="Theirs")
    bad = client.post(url, {"action": "link", f"l{strategy.pk}-keys": f"{foreign.key} GROW-99"})
    assert bad.status_code == 400
    assert bad.context["strategies"][0]["link_form"].errors["keys"] == [
        "Not requirements of this team: OTH-1, GROW-99."
    ]
    assert client.post(url, {"action": "unlink", "requirement": str(first.pk)}).status_code == 302
    assert list(strategy.requirements.values_list("key", flat=True)) == ["GROW-2"]
    assert client.post(url, {"action": "unlink", "requirement": str(first.pk)}).status_code == 400
    assert second in strategy.requirements.all()


def test_delete_the_goal(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    response = login(client, crew.ops).post(goal_url(crew, goal), {"action": "delete"})
    assert response.status_code == 302 and response["Location"] == goals_url(crew)
    assert not Goal.objects.exists()


def test_analysts_cannot_change_goals_or_strategies(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    strategy = data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="S")
    login(client, crew.analyst)
    for path, data in (
        (goal_url(crew, goal), {"action": "delete"}),
        (goal_url(crew, goal), {"action": "edit", **GOAL_FORM, "metric": str(goal.metric_id)}),
        (f"{goal_url(crew, goal)}strategies/", {"new-title": "T"}),
        (f"{goal_url(crew, goal)}strategies/{strategy.pk}/", {"action": "delete"}),
        (
            f"{goal_url(crew, goal)}strategies/{strategy.pk}/",
            {"action": "link", f"l{strategy.pk}-keys": "GROW-1"},
        ),
    ):
        response = client.post(path, data)
        assert response.status_code == 403, path
    goal.refresh_from_db()
    assert goal.title == "200 orders a day" and Strategy.objects.filter(goal=goal).count() == 1


# ---------------------------------------------------------------------------------------- other teams


def test_another_teams_goals_are_a_404_on_every_page_and_post(client: Client, crew: Crew) -> None:
    goal = make_goal(crew)
    strategy = data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="S")
    outsider: Any = UserFactory(username="outsider")
    theirs = make_team(lead=outsider, name="Theirs", key_prefix="THEM")
    login(client, outsider)
    base = goal_url(crew, goal)
    for path in (goals_url(crew), base, f"/teams/{theirs.pk}/goals/{goal.pk}/"):
        assert client.get(path).status_code == 404, path
    for path, data in (
        (goals_url(crew), {**GOAL_FORM, "metric": str(goal.metric_id)}),
        (base, {"action": "delete"}),
        (f"{base}strategies/", {"new-title": "T"}),
        (f"{base}strategies/{strategy.pk}/", {"action": "delete"}),
        (f"/teams/{theirs.pk}/goals/{goal.pk}/", {"action": "delete"}),
        (f"/teams/{theirs.pk}/goals/{goal.pk}/strategies/{strategy.pk}/", {"action": "delete"}),
    ):
        assert client.post(path, data).status_code == 404, path
    # A member of both teams still cannot reach one team's goal under the other team's URL.
    add_member(theirs, ["ops"], user=crew.ops)
    own_goal = data_services.goal_create(
        actor=outsider,
        team_id=theirs.pk,
        title="Theirs",
        metric=Metric.objects.get(team=theirs, name="DAU").pk,
        target="1",
        start="2026-01-01",
        end="2026-02-01",
    )
    login(client, crew.ops)
    assert client.get(f"/teams/{theirs.pk}/goals/{own_goal.pk}/").status_code == 200
    assert client.get(f"/teams/{crew.team.pk}/goals/{own_goal.pk}/").status_code == 404
    assert client.post(f"/teams/{crew.team.pk}/goals/{own_goal.pk}/", {"action": "delete"}).status_code == 404
    assert client.get(f"/teams/{crew.team.pk}/goals/{goal.pk}/strategies/{strategy.pk}/").status_code == 405
    assert Goal.objects.count() == 2 and Strategy.objects.count() == 1


def test_goal_pages_need_login_and_csrf(crew: Crew) -> None:
    goal = make_goal(crew)
    anonymous = Client()
    for path in (goals_url(crew), goal_url(crew, goal)):
        response = anonymous.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(crew.ops)
    assert strict.post(goal_url(crew, goal), {"action": "delete"}).status_code == 403
    assert Goal.objects.filter(pk=goal.pk).exists()


# -------------------------------------------------------------------------------------------- queries

GOALS_QUERIES = 9
GOAL_QUERIES = 13


def _grow(crew: Crew, goal: Goal, n: int) -> None:
    for i in range(n):
        carried = requirement(crew, f"r{i}")
        data_services.strategy_create(
            actor=crew.ops,
            goal_id=goal.pk,
            title=f"s{i}",
            metric=metric(crew, "DAU").pk,
            requirements=[carried.pk],
        )
        observe(crew, "DAU", dt.date(2026, 1, 1) + dt.timedelta(days=i), str(100 + i))


def test_goals_page_queries_do_not_grow(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    goal = make_goal(crew)
    login(client, crew.ops)
    with django_assert_num_queries(GOALS_QUERIES):
        client.get(goals_url(crew))
    _grow(crew, goal, 6)
    for i in range(4):
        make_goal(crew, title=f"g{i}")
    with django_assert_num_queries(GOALS_QUERIES):
        response = client.get(goals_url(crew))
    assert len(response.context["rows"]) == 5


def test_goal_page_queries_do_not_grow(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    goal = make_goal(crew)
    _grow(crew, goal, 1)
    login(client, crew.ops)
    with django_assert_num_queries(GOAL_QUERIES):
        client.get(goal_url(crew, goal))
    _grow(crew, goal, 8)
    with django_assert_num_queries(GOAL_QUERIES):
        response = client.get(goal_url(crew, goal))
    assert len(response.context["strategies"]) == 9
