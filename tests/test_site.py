"""The pages outside the API: login is the only one open to strangers."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import Crew
from tests.factories import make_team

pytestmark = pytest.mark.django_db


def test_home_sends_strangers_to_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_login_page_is_open(client: Client) -> None:
    assert client.get("/login/").status_code == 200


def test_home_lists_only_my_teams_with_open_counts_per_stage(client: Client, crew: Crew) -> None:
    make_team(name="Other team", key_prefix="SHOP")
    client.force_login(crew.ops)
    response = client.get("/")
    assert response.status_code == 200
    assert [item["team"] for item in response.context["teams"]] == [crew.team]
    assert [s["stage"].slug for s in response.context["teams"][0]["stages"]][:2] == ["propose", "design"]
    assert b"Other team" not in response.content


def test_home_speaks_chinese_when_asked(client: Client, crew: Crew) -> None:
    client.force_login(crew.ops)
    response = client.get("/", headers={"accept-language": "zh-hans"})
    assert "你的团队".encode() in response.content


def test_login_with_the_right_password_lands_on_home(client: Client, crew: Crew) -> None:
    response = client.post("/login/", {"username": "ops", "password": "pw-for-tests"})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_admin_shows_requirements_read_only(client: Client, crew: Crew) -> None:
    from tests.factories import UserFactory
    from workflows import services

    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x")
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    page = client.get(f"/admin/workflows/requirement/{requirement.pk}/change/")
    assert page.status_code == 200
    assert b'name="title"' not in page.content
    assert client.get("/admin/workflows/stageevent/add/").status_code == 403


def test_unknown_api_path_is_a_json_404(client: Client, crew: Crew) -> None:
    client.force_login(crew.ops)
    response = client.get("/api/teams/0.5/webhooks/")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_unknown_page_outside_the_api_is_html(client: Client, crew: Crew) -> None:
    client.force_login(crew.ops)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_request_django_refuses_early_is_a_json_400_under_the_api(client: Client, crew: Crew) -> None:
    client.force_login(crew.ops)
    fields = {f"f{i}": "x" for i in range(1100)}  # past DATA_UPLOAD_MAX_NUMBER_FIELDS
    response = client.post("/api/notifications/mark-read/", fields)
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request.", "code": "bad_request"}


def test_history_export_answers_options_as_csv_without_an_error(client: Client, crew: Crew) -> None:
    client.force_login(crew.ops)
    response = client.options(f"/api/teams/{crew.team.pk}/history/export/?format=csv")
    assert response.status_code == 200
