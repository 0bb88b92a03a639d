"""Export a team's history and import it into an empty team: every analytics figure is the same."""

# The history fixtures are imported by name; pytest passes them in as arguments of the same name.
# ruff: noqa: F811

from __future__ import annotations

import datetime as dt

import pytest

from analytics import selectors
from analytics.selectors import Scope
from history import formats, services
from history import selectors as history_selectors
from roles.models import Team
from tests.conftest import Crew
from tests.history.conftest import empty_team, history  # noqa: F401 - fixtures
from workflows.models import Requirement

pytestmark = pytest.mark.django_db

METRICS = (
    "cycle_time",
    "time_in_stage",
    "cumulative_flow",
    "throughput",
    "sla",
    "rework",
    "loops_per_requirement",
)


def figures(team: Team) -> dict[str, object]:
    scope = Scope(
        teams=(team,),
        start=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        end=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
        now=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    result: dict[str, object] = {name: getattr(selectors, name)(scope) for name in METRICS}
    chart = selectors.control_chart(scope)
    result["control_chart"] = [
        (p["loop"], p["closed_at"], p["cycle"], p["rolling_average"]) for p in chart["points"]
    ]
    wip = selectors.wip(scope)
    result["wip"] = (wip["stages"], [(i["stage"], i["loop"], i["age"], i["in_stage"]) for i in wip["items"]])
    return result


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_export_then_import_gives_the_same_figures(
    crew: Crew,
    history: list[Requirement],
    empty_team: Team,
    file_format: str,
) -> None:
    exported = history_selectors.history_for_team(team=crew.team)
    text = formats.dump_csv(exported) if file_format == "csv" else formats.dump_json(exported)
    services.history_import(team=empty_team, content=text.encode(), actor=None, file_format=file_format)
    before, after = figures(crew.team), figures(empty_team)
    assert before["cycle_time"]["count"] >= 2  # type: ignore[index]
    assert after == before
