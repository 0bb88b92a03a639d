"""The watches pages: the list with conditions in words, presets that fill the form, one watch with its
firing history, switching on and off, deleting; role gates, other teams, field errors and query counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from dataloop import services
from dataloop.models import Metric, MetricWatch, WatchFiring
from dataloop.views_metrics import condition_text
from tests.conftest import Crew
from tests.factories import add_member, make_team
from workflows import services as workflow_services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 10)
EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>**bold**"


# ------------------------------------------------------------------------------------------ helpers


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def metric_named(crew: Crew, name: str) -> Metric:
    return Metric.objects.get(team=crew.team, name=name)


def make_watch(crew: Crew, **fields: Any) -> MetricWatch:
    values: dict[str, Any] = {
        "name": "D7 retention below 25%",
        "metric": metric_named(crew, "D7 retention").pk,
        "comparison": "lt",
        "threshold": "25",
        "periods": 1,
        "period": "day",
        "title": "Win back new users",
        "aarrr_stage": "retention",
        "priority": "P1",
        "owner_role": "ops",
        **fields,
    }
    return services.watch_create(actor=crew.analyst, team_id=crew.team.pk, **values)


def fire(crew: Crew, watch: MetricWatch, value: str = "22.5", day: dt.date = DAY) -> WatchFiring:
    services.observation_record(actor=crew.ops, metric_id=watch.metric_id, date=day, value=value)
    firing = services.watch_evaluate(watch_id=watch.pk)
    assert firing is not None
    return firing


def watches_url(crew: Crew) -> str:
    return reverse("watches", kwargs={"team_id": crew.team.pk})


def watch_url(crew: Crew, watch: MetricWatch, name: str = "watch") -> str:
    return reverse(name, kwargs={"team_id": crew.team.pk, "watch_id": watch.pk})


def watch_data(crew: Crew, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Complaints above 5% for 3 days",
        "metric": metric_named(crew, "Complaint rate").pk,
        "comparison": "gt",
        "threshold": "5",
        "periods": "3",
        "period": "day",
        "title": "Complaints above 5% three days running",
        "aarrr_stage": "retention",
        "priority": "P0",
        "assignee": "",
        "owner_role": "ops",
        "description": "Read the complaints.",
        "is_active": "on",
        **fields,
    }


def said(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def snapshot() -> list[Any]:
    return list(
        MetricWatch.objects.order_by("pk").values_list(
            "pk",
            "name",
            "metric_id",
            "comparison",
            "threshold",
            "periods",
            "is_active",
            "title",
            "owner_role",
        )
    )


# --------------------------------------------------------------------------------------------- list


def test_watches_page_shows_condition_in_words_open_requirement_and_times_fired(
    client: Client, crew: Crew
) -> None:
    watch = make_watch(crew)
    fire(crew, watch)

    response = login(client, crew.engineer).get(watches_url(crew))

    assert response.status_code == 200
    assert response.context["nav"] == "data" and response.context["data_tab"] == "watches"
    [row] = response.context["rows"]
    assert row["condition"] == "D7 retention < 25% for 1 day"
    assert row["open_requirement"].title == "Win back new users"
    assert row["watch"].firing_count == 1
    html = response.content.decode()
    assert "D7 retention &lt; 25% for 1 day" in html
    assert row["open_requirement"].key in html
    assert "Propose" in html  # the stage the requirement it opened is in
    assert response.context["form"] is None


def test_conditions_read_as_words() -> None:
    words = condition_text(
        metric_name="Complaint rate", unit="%", comparison="gt", threshold="5", periods=3, period="day"
    )
    rising = condition_text(
        metric_name="Churn rate", unit="%", comparison="rises", threshold="", periods=3, period="month"
    )
    falling = condition_text(
        metric_name="ARPU", unit="¥", comparison="falls", threshold=Decimal("2.5"), periods=2, period="week"
    )

    assert words == "Complaint rate > 5% for 3 days"
    assert rising == "Churn rate rises for 3 months"
    assert falling == "ARPU falls by more than ¥2.5 for 2 weeks"


def test_a_preset_fills_the_form_with_the_teams_metric(client: Client, crew: Crew) -> None:
    response = login(client, crew.ops).get(watches_url(crew) + "?preset=complaints")

    initial = response.context["form"].initial
    assert initial["metric"] == metric_named(crew, "Complaint rate").pk
    assert (initial["name"], initial["comparison"], initial["threshold"], initial["periods"]) == (
        "Complaint rate above 5% for 3 days",
        "gt",
        "5",
        3,
    )
    assert initial["priority"] == "P0" and initial["owner_role"] == "ops"
    assert [p["key"] for p in response.context["presets"]] == ["d7-retention", "complaints", "churn-rising"]
    assert response.context["presets"][1]["condition"] == "Complaint rate > 5% for 3 days"


def test_a_preset_matches_the_metric_name_whatever_its_case(client: Client, crew: Crew) -> None:
    metric = metric_named(crew, "Churn rate")
    services.metric_update(actor=crew.lead, metric_id=metric.pk, name="CHURN RATE")

    response = login(client, crew.ops).get(watches_url(crew) + "?preset=churn-rising")

    assert response.context["form"].initial["metric"] == metric.pk


def test_a_preset_whose_metric_the_team_lacks_says_so(client: Client, crew: Crew) -> None:
    services.metric_delete(actor=crew.lead, metric_id=metric_named(crew, "D7 retention").pk)

    response = login(client, crew.ops).get(watches_url(crew) + "?preset=d7-retention")

    assert response.context["form"].initial["metric"] == ""
    assert "The team has no metric “D7 retention”" in response.content.decode()


def test_analyst_creates_a_watch(client: Client, crew: Crew) -> None:
    response = login(client, crew.analyst).post(watches_url(crew), watch_data(crew, assignee=crew.ops.pk))

    assert response.status_code == 302
    watch = MetricWatch.objects.get()
    assert response["Location"] == watch_url(crew, watch)
    assert (watch.comparison, watch.threshold, watch.periods, watch.priority) == ("gt", Decimal("5"), 3, "P0")
    assert watch.assignee == crew.ops and watch.created_by == crew.analyst and watch.is_active
    assert said(response) == ["Watch “Complaints above 5% for 3 days” created."]


def test_missing_threshold_and_nobody_to_tell_are_errors_next_to_their_fields(
    client: Client, crew: Crew
) -> None:
    response = login(client, crew.analyst).post(
        watches_url(crew), watch_data(crew, threshold="", owner_role="")
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["threshold"] == ["A comparison with < ≤ > ≥ needs a threshold."]
    assert errors["owner_role"] == ["Choose an assignee or an owner role: someone must be told."]
    assert "Nothing was changed" in response.content.decode()
    assert MetricWatch.objects.count() == 0


def test_a_bad_threshold_and_periods_are_errors_next_to_their_fields(client: Client, crew: Crew) -> None:
    response = login(client, crew.analyst).post(
        watches_url(crew), watch_data(crew, threshold="five", periods="0", name="")
    )

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"periods", "name"}
    response = client.post(watches_url(crew), watch_data(crew, threshold="five"))
    assert response.context["form"].errors == {"threshold": ["Enter a number."]}
    assert MetricWatch.objects.count() == 0


def test_an_assignee_from_another_team_cannot_be_chosen(client: Client, crew: Crew) -> None:
    stranger = add_member(make_team(name="Other", key_prefix="OTH"), ["ops"], username="stranger")

    response = login(client, crew.analyst).post(watches_url(crew), watch_data(crew, assignee=stranger.pk))

    assert response.status_code == 400
    assert "assignee" in response.context["form"].errors
    assert MetricWatch.objects.count() == 0


# ----------------------------------------------------------------------------------------- one watch


def test_watch_page_shows_the_firing_history(client: Client, crew: Crew) -> None:
    watch = make_watch(crew, periods=2)
    services.observation_record(actor=crew.ops, metric_id=watch.metric_id, date=DAY, value="24")
    firing = fire(crew, watch, value="22.5", day=DAY + dt.timedelta(days=1))

    response = login(client, crew.pm).get(watch_url(crew, watch))

    assert response.status_code == 200
    [row] = response.context["firings"]
    assert row["values"] == ["24%", "22.5%"]
    html = response.content.decode()
    assert "2026-11-10 – 2026-11-11" in html
    assert firing.requirement is not None and firing.requirement.key in html
    assert response.context["condition"] == "D7 retention < 25% for 2 days"
    assert response.context["form"] is None


def test_editor_changes_a_watch(client: Client, crew: Crew) -> None:
    watch = make_watch(crew)
    data = watch_data(crew, name="Complaints", metric=metric_named(crew, "Complaint rate").pk, threshold="6")

    response = login(client, crew.ops).post(watch_url(crew, watch), data)

    assert response.status_code == 302
    watch.refresh_from_db()
    assert (watch.name, watch.threshold, watch.periods, watch.metric.name) == (
        "Complaints",
        Decimal("6"),
        3,
        "Complaint rate",
    )


def test_the_edit_form_starts_from_the_watch(client: Client, crew: Crew) -> None:
    watch = make_watch(crew, threshold="25.5", assignee=crew.ops.pk)

    initial = login(client, crew.lead).get(watch_url(crew, watch)).context["form"].initial

    assert (initial["threshold"], initial["assignee"], initial["metric"]) == (
        "25.5",
        crew.ops.pk,
        watch.metric_id,
    )


def test_editing_with_bad_input_shows_errors_and_changes_nothing(client: Client, crew: Crew) -> None:
    watch = make_watch(crew)
    before = snapshot()

    login(client, crew.ops)

    no_title = client.post(watch_url(crew, watch), watch_data(crew, title=""))
    no_threshold = client.post(watch_url(crew, watch), watch_data(crew, threshold=""))

    assert no_title.status_code == 400 and set(no_title.context["form"].errors) == {"title"}
    assert no_threshold.status_code == 400 and set(no_threshold.context["form"].errors) == {"threshold"}
    assert snapshot() == before


def test_editor_switches_a_watch_off_and_on(client: Client, crew: Crew) -> None:
    watch = make_watch(crew)
    login(client, crew.lead)

    off = client.post(watch_url(crew, watch, "watch-active"), {})
    watch.refresh_from_db()
    assert off.status_code == 302 and not watch.is_active

    on = client.post(watch_url(crew, watch, "watch-active"), {"is_active": "on"})
    watch.refresh_from_db()
    assert on.status_code == 302 and watch.is_active


def test_editor_deletes_a_watch(client: Client, crew: Crew) -> None:
    watch = make_watch(crew)

    response = login(client, crew.analyst).post(watch_url(crew, watch, "watch-delete"))

    assert response.status_code == 302 and response["Location"] == watches_url(crew)
    assert MetricWatch.objects.count() == 0


# ------------------------------------------------------------------------------------ roles and teams


@pytest.mark.parametrize("role", ["pm", "engineer"])
def test_a_role_that_may_not_write_gets_403_on_every_post_and_nothing_changes(
    client: Client, crew: Crew, role: str
) -> None:
    watch = make_watch(crew)
    before = snapshot()
    login(client, crew.by_role(role))

    answers = [
        client.post(watches_url(crew), watch_data(crew)),
        client.post(watch_url(crew, watch), watch_data(crew)),
        client.post(watch_url(crew, watch, "watch-active"), {}),
        client.post(watch_url(crew, watch, "watch-delete")),
    ]

    assert [answer.status_code for answer in answers] == [403] * 4
    assert "Only Operations / Data analyst / Lead may do this." in answers[0].content.decode()
    assert snapshot() == before


def test_another_teams_member_gets_404_for_every_page_and_post_and_nothing_changes(
    client: Client, crew: Crew
) -> None:
    watch = make_watch(crew)
    stranger = add_member(make_team(name="Other", key_prefix="OTH"), ["lead", "ops"], username="stranger")
    before = snapshot()
    login(client, stranger)

    answers = [
        client.get(watches_url(crew)),
        client.get(watch_url(crew, watch)),
        client.post(watches_url(crew), watch_data(crew)),
        client.post(watch_url(crew, watch), watch_data(crew)),
        client.post(watch_url(crew, watch, "watch-active"), {}),
        client.post(watch_url(crew, watch, "watch-delete")),
    ]

    assert [answer.status_code for answer in answers] == [404] * 6
    assert snapshot() == before


def test_a_watch_of_another_team_under_this_teams_address_is_a_404(client: Client, crew: Crew) -> None:
    other = make_team(name="Other", key_prefix="OTH", lead=crew.lead)
    foreign = services.watch_create(
        actor=crew.lead,
        team_id=other.pk,
        name="Theirs",
        metric=Metric.objects.filter(team=other).first().pk,  # type: ignore[union-attr]
        comparison="gt",
        threshold="1",
        title="Theirs",
        owner_role="lead",
    )
    login(client, crew.lead)

    assert (
        client.get(reverse("watch", kwargs={"team_id": crew.team.pk, "watch_id": foreign.pk})).status_code
        == 404
    )
    response = client.post(reverse("watch-delete", kwargs={"team_id": crew.team.pk, "watch_id": foreign.pk}))
    assert response.status_code == 404
    assert MetricWatch.objects.filter(pk=foreign.pk).exists()


def test_markdown_and_html_in_watch_names_and_templates_are_escaped(client: Client, crew: Crew) -> None:
    watch = make_watch(crew, name=EVIL, title=EVIL, description=EVIL)
    login(client, crew.ops)

    for url in (watches_url(crew), watch_url(crew, watch)):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
        assert "<strong>bold</strong>" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


# -------------------------------------------------------------------------------------- query counts


@pytest.mark.parametrize("size", [1, 6])
def test_watches_page_queries_do_not_grow_with_watches(
    client: Client, crew: Crew, django_assert_num_queries: Any, size: int
) -> None:
    for n in range(size):
        watch = make_watch(crew, name=f"Watch {n}", threshold=str(30 + n))
        if n % 2 == 0:
            fire(crew, watch, day=DAY + dt.timedelta(days=n))
    login(client, crew.analyst)

    with django_assert_num_queries(9):
        response = client.get(watches_url(crew) + "?preset=d7-retention")

    assert len(response.context["rows"]) == size
    assert Requirement.objects.count() >= 1


@pytest.mark.parametrize("firings", [1, 5])
def test_watch_page_queries_do_not_grow_with_firings(
    client: Client, crew: Crew, django_assert_num_queries: Any, firings: int
) -> None:
    watch = make_watch(crew)
    for n in range(firings):
        firing = fire(crew, watch, day=DAY + dt.timedelta(days=n))
        assert firing.requirement_id is not None
        workflow_services.requirement_transition(
            requirement_id=firing.requirement_id,
            actor=crew.lead,
            from_stage="propose",
            to_stage="close",
            outcome="done",
        )
    login(client, crew.analyst)

    with django_assert_num_queries(10):
        response = client.get(watch_url(crew, watch))

    assert len(response.context["firings"]) == firings
