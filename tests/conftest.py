from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from roles.models import Team
from tests.factories import UserFactory, add_member, make_team
from workflows import selectors as workflow_selectors


@pytest.fixture(autouse=True)
def _no_workflow_kept_from_another_test() -> None:
    """Each test starts with the per-process cache of workflow versions empty (query counts then
    depend on the test alone: a move's first read of its workflow version is a query)."""
    workflow_selectors._WORKFLOWS.clear()


@dataclass
class Crew:
    """One team with a member for each role."""

    team: Team
    lead: Any
    ops: Any
    pm: Any
    engineer: Any
    analyst: Any

    def by_role(self, role: str) -> Any:
        return getattr(self, role)


@pytest.fixture
def crew(db: Any) -> Crew:
    lead = UserFactory(username="lead")
    team = make_team(lead=lead, name="Growth", key_prefix="GROW", time_zone="UTC")
    return Crew(
        team=team,
        lead=lead,
        ops=add_member(team, ["ops"], username="ops"),
        pm=add_member(team, ["pm"], username="pm"),
        engineer=add_member(team, ["engineer"], username="engineer"),
        analyst=add_member(team, ["analyst"], username="analyst"),
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="Run the reliability and security suites at their long sizes (minutes, not seconds); "
        "their results go in RELIABILITY.md.",
    )


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """True under `pytest --long`: the reliability suites use their long sizes."""
    return bool(request.config.getoption("--long"))
