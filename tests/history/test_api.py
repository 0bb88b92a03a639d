"""The history endpoints: who may export and import, what they answer, and what they cost."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from history import formats, selectors
from roles.models import Team
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, make_team
from tests.history.conftest import at, counts, log_of
from workflows import services as workflow_services
from workflows.models import Requirement

pytestmark = pytest.mark.django_db

GOOD_CSV = (
    "key,title,loop,from,to,kind,actor,timestamp,note\n"
    "GROW-1,Red packet,1,,propose,create,ops,2026-03-02T09:00:00+00:00,\n"
    "GROW-1,Red packet,1,propose,design,forward,zhang.san,2026-03-02T15:00:00+00:00,\n"
)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def export_url(team: Team) -> str:
    return reverse("api-team-history-export", kwargs={"team_id": team.pk})


def import_url(team: Team) -> str:
    return reverse("api-team-history-import", kwargs={"team_id": team.pk})


def upload(content: str | bytes, name: str = "history.csv", **fields: Any) -> dict[str, Any]:
    data = content.encode() if isinstance(content, str) else content
    return {"file": SimpleUploadedFile(name, data, content_type="application/octet-stream"), **fields}


@pytest.fixture
def outsider(db: Any) -> Any:
    team = make_team(lead=UserFactory(username="outsider"), key_prefix="ELSE")
    return team.memberships.get().user


# --------------------------------------------------------------------------------------------- export


def test_any_member_may_export_the_history_as_json(crew: Crew, history: list[Requirement]) -> None:
    response = client_for(crew.analyst).get(export_url(crew.team))
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    document = response.json()
    assert (document["format"], document["team"]["key_prefix"]) == ("opsteam-history", "GROW")
    assert [r["key"] for r in document["requirements"]] == ["GROW-1", "GROW-2", "GROW-3"]


def test_the_csv_export_is_an_attachment_with_one_row_per_event(
    crew: Crew, history: list[Requirement]
) -> None:
    response = client_for(crew.analyst).get(export_url(crew.team), {"format": "csv"})
    assert (response.status_code, response["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert response["Content-Disposition"].startswith('attachment; filename="GROW-history-')
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["key", "title", "loop", "from", "to", "kind", "actor", "timestamp", "note", "outcome"]
    assert len(rows) == 1 + 9 + 7 + 3


def test_the_csv_export_neutralises_formula_cells(crew: Crew, history: list[Requirement]) -> None:
    response = client_for(crew.lead).get(export_url(crew.team), {"format": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    titles = {row[1] for row in rows[1:]}
    assert '\'=HYPERLINK("http://evil")' in titles
    assert [cell for row in rows[1:] for cell in row if cell.startswith(formats.FORMULA_START)] == []


def test_the_csv_export_may_be_asked_for_by_accept_header(crew: Crew, history: list[Requirement]) -> None:
    response = client_for(crew.lead).get(export_url(crew.team), HTTP_ACCEPT="text/csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"


def test_an_unknown_export_format_is_a_json_400(crew: Crew) -> None:
    response = client_for(crew.lead).get(export_url(crew.team), {"format": "xml"})
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json()["format"] == ["Choose json or csv."]


@pytest.mark.parametrize("query", [{}, {"format": "csv"}])
def test_outsiders_are_told_the_team_is_not_found_in_json(
    crew: Crew, outsider: Any, query: dict[str, str]
) -> None:
    response = client_for(outsider).get(export_url(crew.team), query)
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")


@pytest.mark.parametrize("query", [{}, {"format": "csv"}])
def test_anonymous_callers_get_401_for_the_export(crew: Crew, query: dict[str, str]) -> None:
    response = APIClient().get(export_url(crew.team), query)
    assert (response.status_code, response["Content-Type"]) == (401, "application/json")
    assert response["WWW-Authenticate"] == "Token"


def test_the_exported_json_imports_into_an_empty_team_over_the_api(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    exported = client_for(crew.lead).get(export_url(crew.team)).content
    response = client_for(empty_team.memberships.get().user).post(
        import_url(empty_team), upload(exported, name="GROW.json"), format="multipart"
    )
    assert response.status_code == 200, response.content
    assert log_of(empty_team) == log_of(crew.team)


def populate(crew: Crew, count: int) -> None:
    start = Requirement.objects.filter(team=crew.team).count()
    for n in range(start, start + count):
        requirement = workflow_services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"R{n}", labels=[f"a{n}", "b"], at=at(2, 9), **READY_FIELDS
        )
        workflow_services.requirement_transition(
            requirement_id=requirement.pk,
            actor=crew.ops,
            from_stage="propose",
            to_stage="design",
            at=at(2, 10),
        )
        workflow_services.requirement_transition(
            requirement_id=requirement.pk,
            actor=crew.lead,
            from_stage="design",
            to_stage="iterate",
            at=at(2, 11),
        )


@pytest.mark.parametrize("count", [3, 12])
@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_the_export_takes_five_queries_however_many_requirements(
    crew: Crew, django_assert_num_queries: Any, count: int, file_format: str
) -> None:
    """The team, the requirements with their creators, their labels, their loops, the loops' events."""
    populate(crew, count)
    client = client_for(crew.lead)
    with django_assert_num_queries(5):
        response = client.get(export_url(crew.team), {"format": file_format})
    assert response.status_code == 200


# --------------------------------------------------------------------------------------------- import


def test_a_lead_imports_a_file_and_gets_the_counts(crew: Crew) -> None:
    response = client_for(crew.lead).post(import_url(crew.team), upload(GOOD_CSV), format="multipart")
    assert (response.status_code, response.json()) == (
        200,
        {
            "requirements": 1,
            "loops": 1,
            "events": 2,
            "users_created": 1,
            "skipped": 0,
            "extended": 0,
            "dry_run": False,
        },
    )


def test_the_second_upload_of_a_file_adds_nothing(crew: Crew) -> None:
    client = client_for(crew.lead)
    client.post(import_url(crew.team), upload(GOOD_CSV), format="multipart")
    before = counts()
    response = client.post(import_url(crew.team), upload(GOOD_CSV), format="multipart")
    assert response.json()["skipped"] == 1
    assert counts() == before


def test_a_dry_run_over_the_api_writes_nothing(crew: Crew) -> None:
    response = client_for(crew.lead).post(
        import_url(crew.team), upload(GOOD_CSV, dry_run="true"), format="multipart"
    )
    assert (response.status_code, response.json()["events"], response.json()["dry_run"]) == (200, 2, True)
    assert counts() == (0, 0, 0)


def test_the_format_field_overrides_the_file_name(crew: Crew) -> None:
    response = client_for(crew.lead).post(
        import_url(crew.team), upload(GOOD_CSV, name="export.txt", format="csv"), format="multipart"
    )
    assert response.status_code == 200


@pytest.mark.parametrize("role", ["ops", "pm", "engineer", "analyst"])
def test_members_who_are_not_leads_may_not_import(crew: Crew, role: str) -> None:
    response = client_for(crew.by_role(role)).post(
        import_url(crew.team), upload(GOOD_CSV), format="multipart"
    )
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "Only the team's leads may import history.",
    )
    assert counts() == (0, 0, 0)


def test_outsiders_are_told_the_team_is_not_found_for_import(crew: Crew, outsider: Any) -> None:
    response = client_for(outsider).post(import_url(crew.team), upload(GOOD_CSV), format="multipart")
    assert response.status_code == 404
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("body_format", ["multipart", "json"])
def test_anonymous_callers_get_401_for_the_import(crew: Crew, body_format: str) -> None:
    body = upload(GOOD_CSV) if body_format == "multipart" else {}
    response = APIClient().post(import_url(crew.team), body, format=body_format)
    assert (response.status_code, response["WWW-Authenticate"]) == (401, "Token")
    assert isinstance(response.json()["detail"], str)
    assert counts() == (0, 0, 0)


def test_a_bad_file_is_a_400_with_each_row_error(crew: Crew) -> None:
    bad = GOOD_CSV.replace("propose,design,forward", "propose,desing,forward").replace(
        "15:00:00+00:00", "15:00:00"
    )
    response = client_for(crew.lead).post(import_url(crew.team), upload(bad), format="multipart")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    body = response.json()
    assert body["code"] == "history_rejected"
    assert body["rows"] == [
        "line 3, to: unknown stage “desing”.",
        "line 3, timestamp: “2026-03-02T15:00:00” has no UTC offset: add one, such as +08:00 or Z.",
    ]
    assert body["errors"][0] == {"line": 3, "path": None, "field": "to", "message": "unknown stage “desing”."}
    assert counts() == (0, 0, 0)


def test_a_request_without_a_file_is_a_400(crew: Crew) -> None:
    response = client_for(crew.lead).post(import_url(crew.team), {"dry_run": "true"}, format="multipart")
    assert (response.status_code, list(response.json())) == (400, ["file", "detail"])


def test_a_file_past_the_size_limit_is_refused_over_the_api(crew: Crew) -> None:
    huge = GOOD_CSV.encode() + b"x" * formats.MAX_BYTES
    response = client_for(crew.lead).post(import_url(crew.team), upload(huge), format="multipart")
    assert (response.status_code, response.json()["rows"]) == (400, ["The file is larger than 20 MB."])
    assert counts() == (0, 0, 0)


# --------------------------------------------------------------------------------------------- schema


def test_the_schema_documents_both_endpoints(crew: Crew) -> None:
    client = client_for(crew.lead)
    schema = client.get("/api/schema/?format=json").json()
    export = schema["paths"]["/api/teams/{team_id}/history/export/"]["get"]
    imported = schema["paths"]["/api/teams/{team_id}/history/import/"]["post"]
    assert set(export["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert [p["name"] for p in export["parameters"]] == ["format", "team_id"]
    assert list(imported["requestBody"]["content"]) == ["multipart/form-data"]
    assert {"200", "400", "401", "403", "404"} <= set(imported["responses"])


def test_selectors_and_api_export_the_same_document(crew: Crew, history: list[Requirement]) -> None:
    response = client_for(crew.lead).get(export_url(crew.team))
    assert response.json() == json.loads(formats.dump_json(selectors.history_for_team(team=crew.team)))
