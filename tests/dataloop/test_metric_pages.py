"""The metrics pages: the catalogue with its sparklines, adding metrics and observations, CSV import, one
metric with its chart and observations; role gates, other teams, field errors and query counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dataloop import services
from dataloop.models import Metric, MetricWatch, Observation, Source
from dataloop.views_metrics import format_value
from tests.conftest import Crew
from tests.factories import READY_FIELDS, add_member, make_team
from workflows import services as workflow_services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db

EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>**bold** [x](javascript:alert(3))"


# ------------------------------------------------------------------------------------------ helpers


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def metric_named(crew: Crew, name: str) -> Metric:
    return Metric.objects.get(team=crew.team, name=name)


def today(crew: Crew) -> dt.date:
    return timezone.localdate(timezone=ZoneInfo(crew.team.time_zone))


def record(crew: Crew, name: str, value: str, days_ago: int = 0, segment: str = "") -> Observation:
    return services.observation_record(
        actor=crew.ops,
        metric_id=metric_named(crew, name).pk,
        date=today(crew) - dt.timedelta(days=days_ago),
        value=value,
        segment=segment,
    )


def metrics_url(crew: Crew) -> str:
    return reverse("metrics", kwargs={"team_id": crew.team.pk})


def metric_url(crew: Crew, metric: Metric, name: str = "metric") -> str:
    return reverse(name, kwargs={"team_id": crew.team.pk, "metric_id": metric.pk})


def team_url(crew: Crew, name: str) -> str:
    return reverse(name, kwargs={"team_id": crew.team.pk})


def csv_upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("observations.csv", text.encode(), content_type="text/csv")


def import_csv(client: Client, crew: Crew, text: str) -> Any:
    return client.post(team_url(crew, "observations-import"), {"file": csv_upload(text)})


def said(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def observation_data(crew: Crew, **fields: Any) -> dict[str, Any]:
    return {
        "metric": metric_named(crew, "DAU").pk,
        "date": today(crew).isoformat(),
        "value": "12345",
        "segment": "",
        "loop": "",
        **fields,
    }


def outsider(crew: Crew) -> Any:
    """A lead of another team: every role there, none here."""
    other = make_team(name="Other", key_prefix="OTH")
    return add_member(other, ["lead", "ops", "analyst"], username="outsider")


def snapshot(crew: Crew) -> list[Any]:
    return [
        list(Metric.objects.order_by("pk").values_list("pk", "name", "unit", "direction", "description")),
        list(Observation.objects.order_by("pk").values_list("pk", "metric_id", "date", "segment", "value")),
    ]


# ---------------------------------------------------------------------------------------- catalogue


def test_metrics_page_lists_the_catalogue_with_latest_values_and_sparklines(
    client: Client, crew: Crew
) -> None:
    record(crew, "DAU", "12000", days_ago=2)
    record(crew, "DAU", "12345.5", days_ago=1)
    record(crew, "DAU", "900", days_ago=1, segment="iOS")

    response = login(client, crew.engineer).get(metrics_url(crew))

    assert response.status_code == 200
    assert response.context["nav"] == "data" and response.context["data_tab"] == "metrics"
    row = next(r for r in response.context["rows"] if r["metric"].name == "DAU")
    assert row["latest"] == "12,345.5 users"
    assert row["metric"].latest_date == today(crew) - dt.timedelta(days=1)
    assert row["metric"].observation_count == 3
    assert row["spark"]["count"] == 2
    html = response.content.decode()
    assert 'class="sparkline"' in html
    assert "12,345.5 users" in html


def test_values_are_shown_with_their_unit() -> None:
    assert format_value(Decimal("25.0000"), "%") == "25%"
    assert format_value(Decimal("38.2500"), "¥") == "¥38.25"
    assert format_value(Decimal("-3.5000"), "¥") == "-¥3.5"
    assert format_value(Decimal("1234567"), "users") == "1,234,567 users"
    assert format_value(Decimal("0.0035"), "") == "0.0035"
    assert format_value(None, "%") == "—"


def test_member_without_a_writing_role_sees_no_forms_and_is_told_who_may(client: Client, crew: Crew) -> None:
    response = login(client, crew.engineer).get(metrics_url(crew))

    assert response.context["metric_form"] is None
    assert response.context["observation_form"] is None
    assert response.context["import_form"] is None
    assert "Only Operations / Data analyst / Lead may do this." in response.content.decode()


def test_analyst_adds_a_metric(client: Client, crew: Crew) -> None:
    response = login(client, crew.analyst).post(
        metrics_url(crew), {"name": "Orders", "unit": "orders", "direction": "up", "description": "Paid."}
    )

    assert response.status_code == 302
    metric = metric_named(crew, "Orders")
    assert (metric.unit, metric.direction, metric.description) == ("orders", "up", "Paid.")
    assert said(response) == ["Metric “Orders” added."]


def test_a_taken_metric_name_is_an_error_next_to_the_name_and_writes_nothing(
    client: Client, crew: Crew
) -> None:
    before = snapshot(crew)

    response = login(client, crew.analyst).post(metrics_url(crew), {"name": "dau", "direction": "up"})

    assert response.status_code == 400
    assert response.context["metric_form"].errors["name"] == ["The team already has a metric of this name."]
    assert "Nothing was changed" in response.content.decode()
    assert snapshot(crew) == before


def test_a_blank_metric_name_is_an_error_next_to_the_name(client: Client, crew: Crew) -> None:
    before = snapshot(crew)

    response = login(client, crew.lead).post(metrics_url(crew), {"name": "", "direction": "sideways"})

    assert response.status_code == 400
    errors = response.context["metric_form"].errors
    assert set(errors) == {"name", "direction"}
    assert snapshot(crew) == before


# -------------------------------------------------------------------------------------- observations


def test_ops_records_an_observation_linked_to_a_loop(client: Client, crew: Crew) -> None:
    requirement = workflow_services.requirement_create(
        team=crew.team, actor=crew.ops, title="Red packet", **READY_FIELDS
    )

    response = login(client, crew.ops).post(
        team_url(crew, "observation-add"), observation_data(crew, segment="iOS", loop=requirement.key.lower())
    )

    assert response.status_code == 302
    observation = Observation.objects.get()
    assert (observation.value, observation.segment, observation.source) == (Decimal("12345"), "iOS", "manual")
    assert observation.loop is not None and observation.loop.requirement_id == requirement.pk
    assert observation.recorded_by == crew.ops
    assert said(response) == [f"Recorded DAU (iOS) = 12,345 users on {today(crew).isoformat()}."]


def test_a_bad_value_and_an_unknown_loop_are_errors_next_to_their_fields(client: Client, crew: Crew) -> None:
    response = login(client, crew.ops).post(
        team_url(crew, "observation-add"), observation_data(crew, loop="GROW-99")
    )

    assert response.status_code == 400
    assert response.context["observation_form"].errors == {"loop": ["No such loop in this team."]}

    response = client.post(team_url(crew, "observation-add"), observation_data(crew, value="a lot"))

    assert response.status_code == 400
    assert response.context["observation_form"].errors == {"value": ["Enter a number."]}
    assert Observation.objects.count() == 0


def test_another_teams_metric_cannot_be_chosen_for_an_observation(client: Client, crew: Crew) -> None:
    other = make_team(name="Other", key_prefix="OTH")
    foreign = Metric.objects.filter(team=other).first()
    assert foreign is not None

    response = login(client, crew.ops).post(
        team_url(crew, "observation-add"), observation_data(crew, metric=foreign.pk)
    )

    assert response.status_code == 400
    assert "metric" in response.context["observation_form"].errors
    assert Observation.objects.count() == 0


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_a_new_observation_is_dated_today_in_the_teams_time_zone(
    client: Client, crew: Crew, zone: str
) -> None:
    crew.team.time_zone = zone
    crew.team.save(update_fields=["time_zone"])

    response = login(client, crew.ops).get(metrics_url(crew))

    assert response.context["observation_form"].initial["date"] == timezone.localdate(timezone=ZoneInfo(zone))


def test_the_metric_page_link_preselects_the_metric_in_the_observation_form(
    client: Client, crew: Crew
) -> None:
    nps = metric_named(crew, "NPS")

    response = login(client, crew.ops).get(metrics_url(crew) + f"?metric={nps.pk}")

    assert response.context["observation_form"].initial["metric"] == nps.pk


# ----------------------------------------------------------------------------------------------- CSV


def test_csv_import_adds_the_rows_and_twice_adds_nothing(client: Client, crew: Crew) -> None:
    text = "metric,date,value,segment\nDAU,2026-11-01,12000,\nd7 retention,2026-11-01,24.5%,iOS\n"
    login(client, crew.analyst)

    first = import_csv(client, crew, text)
    second = import_csv(client, crew, text)

    assert first.status_code == 302 and second.status_code == 302
    assert said(first) == ["Import done: 2 added, 0 updated, 0 unchanged."]
    assert said(second)[-1] == "Import done: 0 added, 0 updated, 2 unchanged."
    assert Observation.objects.count() == 2
    assert set(Observation.objects.values_list("source", flat=True)) == {Source.IMPORT}


def test_csv_import_changing_a_value_updates_it(client: Client, crew: Crew) -> None:
    login(client, crew.analyst)
    import_csv(client, crew, "metric,date,value\nDAU,2026-11-01,12000\n")

    response = import_csv(client, crew, "metric,date,value\nDAU,2026-11-01,12500\nMAU,2026-11-01,90000\n")

    assert said(response)[-1] == "Import done: 1 added, 1 updated, 0 unchanged."
    assert Observation.objects.get(metric__name="DAU").value == Decimal("12500")


def test_csv_import_with_an_unknown_metric_names_its_line_and_writes_nothing(
    client: Client, crew: Crew
) -> None:
    text = "metric,date,value\nDAU,2026-11-01,12000\nDAUU,2026-11-02,12100\nMAU,2026-11-01,90000\n"

    response = import_csv(login(client, crew.ops), crew, text)

    assert response.status_code == 400
    assert response.context["import_problems"] == [
        "line 3, metric: Unknown metric “DAUU”: add it to the catalogue first."
    ]
    html = response.content.decode()
    assert "Nothing was imported." in html and "line 3, metric" in html
    assert Observation.objects.count() == 0


def test_csv_import_with_a_bad_number_and_a_bad_date_lists_every_line_and_writes_nothing(
    client: Client, crew: Crew
) -> None:
    text = "metric,date,value\nDAU,2026-11-01,12000\nDAU,2026-11-02,many\nDAU,02/11/2026,12100\nMAU,2026-11-01,90000\n"

    response = import_csv(login(client, crew.ops), crew, text)

    assert response.status_code == 400
    assert response.context["import_problems"] == [
        "line 3, value: Not a number: “many”.",
        "line 4, date: Not a date (YYYY-MM-DD): “02/11/2026”.",
    ]
    assert Observation.objects.count() == 0


def test_csv_import_without_a_file_is_an_error_next_to_the_file_field(client: Client, crew: Crew) -> None:
    response = login(client, crew.ops).post(team_url(crew, "observations-import"), {})

    assert response.status_code == 400
    assert "file" in response.context["import_form"].errors


def test_the_example_file_names_the_teams_metrics_and_imports_as_it_is(client: Client, crew: Crew) -> None:
    record(crew, "ARPU", "38.5", days_ago=3)
    login(client, crew.ops)

    response = client.get(team_url(crew, "observations-template"))
    content = response.content

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = content.decode("utf-8-sig").splitlines()
    assert lines[0] == "metric,date,value,segment,loop"
    assert lines[1].startswith("ARPU,") and ",38.5," in lines[1]
    imported = import_csv(client, crew, content.decode("utf-8-sig"))
    assert imported.status_code == 302


# ------------------------------------------------------------------------------------------ metric page


def test_metric_page_shows_details_chart_observations_and_watches(client: Client, crew: Crew) -> None:
    metric = metric_named(crew, "D7 retention")
    requirement = workflow_services.requirement_create(
        team=crew.team, actor=crew.ops, title="Red packet", **READY_FIELDS
    )
    services.observation_record(
        actor=crew.ops,
        metric_id=metric.pk,
        date=today(crew),
        value="24.5",
        loop_id=requirement.loops.get().pk,
    )
    record(crew, "D7 retention", "27", days_ago=1)
    services.watch_create(
        actor=crew.ops,
        team_id=crew.team.pk,
        name="Retention alarm",
        metric=metric.pk,
        comparison="lt",
        threshold="25",
        title="Win back new users",
        owner_role="ops",
    )

    response = login(client, crew.engineer).get(metric_url(crew, metric))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and 'id="metric-chart-title"' in html
    assert response.context["series_count"] == 2
    assert [row["value"] for row in response.context["observations"]] == ["24.5%", "27%"]
    assert f"{requirement.key}#1" in html
    assert [row["condition"] for row in response.context["watches"]] == ["D7 retention < 25% for 1 day"]
    assert response.context["form"] is None


def test_the_period_picker_bounds_the_chart(client: Client, crew: Crew) -> None:
    record(crew, "DAU", "100", days_ago=10)
    record(crew, "DAU", "110", days_ago=100)
    url = metric_url(crew, metric_named(crew, "DAU"))
    login(client, crew.ops)

    assert client.get(url + "?days=30").context["series_count"] == 1
    assert client.get(url + "?days=180").context["series_count"] == 2
    assert client.get(url + "?days=7").context["days"] == 90


def test_editor_renames_a_metric(client: Client, crew: Crew) -> None:
    metric = metric_named(crew, "NPS")

    response = login(client, crew.lead).post(
        metric_url(crew, metric), {"name": "Net promoter score", "unit": "", "direction": "up"}
    )

    assert response.status_code == 302
    metric.refresh_from_db()
    assert metric.name == "Net promoter score"


def test_editing_to_a_taken_name_shows_the_error_and_changes_nothing(client: Client, crew: Crew) -> None:
    metric = metric_named(crew, "NPS")
    before = snapshot(crew)

    response = login(client, crew.lead).post(metric_url(crew, metric), {"name": "MAU", "direction": "up"})

    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["The team already has a metric of this name."]
    assert snapshot(crew) == before


def test_a_metric_with_observations_is_not_deleted_and_the_page_says_why(client: Client, crew: Crew) -> None:
    record(crew, "NPS", "41")
    metric = metric_named(crew, "NPS")

    response = login(client, crew.lead).post(metric_url(crew, metric, "metric-delete"))

    assert response.status_code == 400
    assert response.context["delete_errors"] == [
        "This metric has observations, watches or goals; it cannot be deleted."
    ]
    assert Metric.objects.filter(pk=metric.pk).exists()


def test_a_metric_nothing_refers_to_is_deleted(client: Client, crew: Crew) -> None:
    metric = metric_named(crew, "NPS")

    response = login(client, crew.lead).post(metric_url(crew, metric, "metric-delete"))

    assert response.status_code == 302 and response["Location"] == metrics_url(crew)
    assert not Metric.objects.filter(pk=metric.pk).exists()


def test_writer_deletes_an_observation(client: Client, crew: Crew) -> None:
    observation = record(crew, "DAU", "100")
    metric = metric_named(crew, "DAU")

    response = login(client, crew.analyst).post(
        metric_url(crew, metric, "observation-delete"), {"observation": observation.pk}
    )

    assert response.status_code == 302
    assert Observation.objects.count() == 0


def test_an_observation_of_another_metric_cannot_be_deleted_through_this_one(
    client: Client, crew: Crew
) -> None:
    observation = record(crew, "DAU", "100")

    response = login(client, crew.analyst).post(
        metric_url(crew, metric_named(crew, "MAU"), "observation-delete"), {"observation": observation.pk}
    )

    assert response.status_code == 404
    assert Observation.objects.count() == 1


# ------------------------------------------------------------------------------------ roles and teams


@pytest.mark.parametrize("role", ["pm", "engineer"])
def test_a_role_that_may_not_write_gets_403_on_every_post_and_nothing_changes(
    client: Client, crew: Crew, role: str
) -> None:
    observation = record(crew, "DAU", "100")
    metric = metric_named(crew, "DAU")
    spare = metric_named(crew, "NPS")
    before = snapshot(crew)
    login(client, crew.by_role(role))

    answers = [
        client.post(metrics_url(crew), {"name": "Orders", "direction": "up"}),
        client.post(team_url(crew, "observation-add"), observation_data(crew, value="1")),
        import_csv(client, crew, "metric,date,value\nDAU,2026-11-01,1\n"),
        client.post(metric_url(crew, metric), {"name": "Daily users", "direction": "up"}),
        client.post(metric_url(crew, spare, "metric-delete")),
        client.post(metric_url(crew, metric, "observation-delete"), {"observation": observation.pk}),
    ]

    assert [answer.status_code for answer in answers] == [403] * 6
    assert "Only Operations / Data analyst / Lead may do this." in answers[0].content.decode()
    assert snapshot(crew) == before


def test_another_teams_member_gets_404_for_every_page_and_post_and_nothing_changes(
    client: Client, crew: Crew
) -> None:
    observation = record(crew, "DAU", "100")
    metric = metric_named(crew, "DAU")
    spare = metric_named(crew, "NPS")
    stranger = outsider(crew)
    before = snapshot(crew)
    login(client, stranger)

    answers = [
        client.get(metrics_url(crew)),
        client.get(team_url(crew, "observations-template")),
        client.get(metric_url(crew, metric)),
        client.post(metrics_url(crew), {"name": "Orders", "direction": "up"}),
        client.post(team_url(crew, "observation-add"), observation_data(crew, value="1")),
        import_csv(client, crew, "metric,date,value\nDAU,2026-11-01,1\n"),
        client.post(metric_url(crew, metric), {"name": "Daily users", "direction": "up"}),
        client.post(metric_url(crew, spare, "metric-delete")),
        client.post(metric_url(crew, metric, "observation-delete"), {"observation": observation.pk}),
    ]

    assert [answer.status_code for answer in answers] == [404] * 9
    assert snapshot(crew) == before


def test_a_metric_of_another_team_under_this_teams_address_is_a_404(client: Client, crew: Crew) -> None:
    other = make_team(name="Other", key_prefix="OTH", lead=crew.lead)
    foreign = Metric.objects.filter(team=other).first()
    assert foreign is not None

    response = login(client, crew.lead).get(
        reverse("metric", kwargs={"team_id": crew.team.pk, "metric_id": foreign.pk})
    )

    assert response.status_code == 404


def test_posts_need_the_csrf_token(crew: Crew) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(crew.lead)

    response = client.post(metrics_url(crew), {"name": "Orders", "direction": "up"})

    assert response.status_code == 403
    assert not Metric.objects.filter(name="Orders").exists()


def test_markdown_and_html_in_names_and_descriptions_are_escaped(client: Client, crew: Crew) -> None:
    metric = services.metric_create(actor=crew.lead, team_id=crew.team.pk, name=EVIL[:100], description=EVIL)
    services.observation_record(
        actor=crew.ops, metric_id=metric.pk, date=today(crew), value="1", segment=EVIL[:100]
    )
    login(client, crew.ops)

    for url in (metrics_url(crew), metric_url(crew, metric)):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
        assert "<strong>bold</strong>" not in html, url
        assert 'href="javascript:' not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


# -------------------------------------------------------------------------------------- query counts


def _fill(crew: Crew, metrics: int, days: int) -> Metric:
    """`metrics` extra metrics, each with `days` daily values and a segment value."""
    names = [f"Metric {n}" for n in range(metrics)]
    for name in names:
        services.metric_create(actor=crew.lead, team_id=crew.team.pk, name=name, unit="%")
    lines = ["metric,date,value,segment"]
    for name in [*names, "DAU"]:
        for day in range(days):
            date = today(crew) - dt.timedelta(days=day)
            lines += [f"{name},{date.isoformat()},{day + 1},", f"{name},{date.isoformat()},{day},iOS"]
    services.observations_import(actor=crew.lead, team_id=crew.team.pk, content="\n".join(lines).encode())
    return metric_named(crew, "DAU")


@pytest.mark.parametrize(("metrics", "days"), [(1, 2), (8, 40)])
def test_metrics_page_queries_do_not_grow_with_metrics_or_observations(
    client: Client, crew: Crew, django_assert_num_queries: Any, metrics: int, days: int
) -> None:
    _fill(crew, metrics, days)
    login(client, crew.ops)

    with django_assert_num_queries(8):
        response = client.get(metrics_url(crew))

    assert len(response.context["rows"]) == 12 + metrics


@pytest.mark.parametrize("days", [2, 70])
def test_metric_page_queries_do_not_grow_with_observations_or_watches(
    client: Client, crew: Crew, django_assert_num_queries: Any, days: int
) -> None:
    metric = _fill(crew, 1, days)
    requirement = workflow_services.requirement_create(
        team=crew.team, actor=crew.ops, title="Red packet", **READY_FIELDS
    )
    services.observation_record(
        actor=crew.ops, metric_id=metric.pk, date=today(crew), value="5", loop_id=requirement.loops.get().pk
    )
    for n in range(days // 20 + 1):
        services.watch_create(
            actor=crew.ops,
            team_id=crew.team.pk,
            name=f"Watch {n}",
            metric=metric.pk,
            comparison="lt",
            threshold=str(n),
            title="Look",
            owner_role="ops",
        )
    login(client, crew.lead)

    with django_assert_num_queries(11):
        response = client.get(metric_url(crew, metric) + "?days=180")

    assert len(response.context["watches"]) == days // 20 + 1
    assert MetricWatch.objects.filter(metric=metric).count() == days // 20 + 1
    assert Requirement.objects.count() == 1
