"""Export, then import into an empty team: the same event log, the same loops, the same state, and so
the same analytics figures."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from history import formats, selectors, services
from roles.models import Team
from tests.conftest import Crew
from tests.history.conftest import at, log_of, loops_of, state_of
from workflows.models import IterationLoop, Requirement, StageEvent

pytestmark = pytest.mark.django_db


def export(team: Team, file_format: str) -> bytes:
    history = selectors.history_for_team(team=team)
    text = formats.dump_csv(history) if file_format == "csv" else formats.dump_json(history)
    return text.encode()


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_round_trip_into_an_empty_team_reproduces_the_event_log(
    crew: Crew, history: list[Requirement], empty_team: Team, file_format: str
) -> None:
    services.history_import(
        team=empty_team, content=export(crew.team, file_format), actor=None, file_format=file_format
    )
    assert log_of(empty_team) == log_of(crew.team)
    assert len(log_of(empty_team)) == 9 + 7 + 3


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_round_trip_reproduces_loop_starts_closes_and_outcomes(
    crew: Crew, history: list[Requirement], empty_team: Team, file_format: str
) -> None:
    services.history_import(
        team=empty_team, content=export(crew.team, file_format), actor=None, file_format=file_format
    )
    assert loops_of(empty_team) == loops_of(crew.team)
    assert loops_of(empty_team)[:2] == [(1, 1, at(2, 9), at(9, 12), "iterate"), (1, 2, at(9, 12), None, "")]


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_round_trip_reproduces_each_requirements_stage_times_and_sla(
    crew: Crew, history: list[Requirement], empty_team: Team, file_format: str
) -> None:
    services.history_import(
        team=empty_team, content=export(crew.team, file_format), actor=None, file_format=file_format
    )
    assert state_of(empty_team) == state_of(crew.team)


def test_worked_loop_one_still_lasts_615600_seconds_after_the_round_trip(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    services.history_import(team=empty_team, content=export(crew.team, "csv"), actor=None, file_format="csv")
    loop = IterationLoop.objects.get(requirement__team=empty_team, requirement__number=1, number=1)
    assert (loop.closed_at - loop.started_at).total_seconds() == 615_600


def test_round_trip_keeps_the_numbers_under_the_target_teams_prefix(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    services.history_import(team=empty_team, content=export(crew.team, "json"), actor=None)
    assert list(
        Requirement.objects.filter(team=empty_team).order_by("number").values_list("key", flat=True)
    ) == [
        "NEW-1",
        "NEW-2",
        "NEW-3",
    ]


def test_json_round_trip_gives_back_the_same_document(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    """Fields, labels, loop conclusions and notes survive; only the team and the people differ."""
    original = formats.to_json(selectors.history_for_team(team=crew.team))
    services.history_import(team=empty_team, content=json.dumps(original).encode(), actor=None)
    copied = formats.to_json(selectors.history_for_team(team=empty_team))

    def comparable(document: dict[str, object]) -> str:
        text = json.dumps(document["requirements"], ensure_ascii=False)
        return text.replace("NEW-", "GROW-").replace('"imported.', '"')

    assert comparable(copied) == comparable(original)


def test_csv_round_trip_keeps_a_formula_like_title_exactly(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    services.history_import(team=empty_team, content=export(crew.team, "csv"), actor=None, file_format="csv")
    assert Requirement.objects.get(team=empty_team, number=3).title == '=HYPERLINK("http://evil")'


def test_csv_round_trip_keeps_the_close_outcome(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    services.history_import(team=empty_team, content=export(crew.team, "csv"), actor=None, file_format="csv")
    assert Requirement.objects.get(team=empty_team, number=2).outcome == "wont_do"


def test_importing_an_export_back_into_its_own_team_adds_nothing(
    crew: Crew, history: list[Requirement]
) -> None:
    before = (Requirement.objects.count(), IterationLoop.objects.count(), StageEvent.objects.count())
    result = services.history_import(team=crew.team, content=export(crew.team, "json"), actor=None)
    assert (result.requirements, result.loops, result.events, result.skipped) == (0, 0, 0, 3)
    assert (Requirement.objects.count(), IterationLoop.objects.count(), StageEvent.objects.count()) == before


def test_members_of_the_target_team_keep_their_events_and_others_become_placeholders(
    crew: Crew, history: list[Requirement], empty_team: Team
) -> None:
    services.history_import(team=empty_team, content=export(crew.team, "json"), actor=None)
    actors = set(
        StageEvent.objects.filter(requirement__team=empty_team).values_list("actor__username", flat=True)
    )
    assert actors == {"imported.ops", "imported.pm", "imported.engineer", "imported.analyst", "imported.lead"}
    assert not User.objects.get(username="imported.ops").is_active
