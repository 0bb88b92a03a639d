"""seed_demo builds a realistic demo team, only through the services, the same way every time."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from roles.models import ALL_ROLES, Membership, Team
from workflows.demo import seed_demo
from workflows.models import IterationLoop, Label, Requirement, StageEvent

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 31, 10, 0, tzinfo=dt.UTC)
PASSWORD = "s3cret-demo"
STAGES = {"propose", "design", "build", "instrument", "analyze", "optimize"}


@pytest.fixture(scope="class")
def team(django_db_setup: None, django_db_blocker: Any) -> Iterator[Team]:
    """The demo seeded once for the whole class (seeding takes seconds) and rolled back after it;
    each test still runs in its own savepoint inside."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield seed_demo(now=NOW, password=PASSWORD)
        transaction.set_rollback(True)


def open_requirements() -> list[Requirement]:
    return list(Requirement.objects.filter(closed_at__isnull=True).select_related("stage"))


def row_counts() -> tuple[int, ...]:
    models = (Team, Membership, get_user_model(), Requirement, IterationLoop, StageEvent, Label)
    return tuple(model.objects.count() for model in models)


def event_log() -> list[tuple[object, ...]]:
    return list(
        StageEvent.objects.order_by("requirement__number", "at", "id").values_list(
            "requirement__key",
            "loop__number",
            "from_stage",
            "to_stage",
            "kind",
            "actor__username",
            "at",
            "note",
        )
    )


class TestTheDemoTeam:
    def test_has_about_forty_requirements_with_open_ones_in_every_stage(self, team: Team) -> None:
        assert 35 <= Requirement.objects.filter(team=team).count() <= 45
        assert {r.stage.slug for r in open_requirements()} == STAGES

    def test_closes_some_as_done_and_some_as_wont_do(self, team: Team) -> None:
        outcomes = Counter(
            Requirement.objects.filter(closed_at__isnull=False).values_list("outcome", flat=True)
        )
        assert outcomes["done"] >= 10
        assert outcomes["wont_do"] >= 3

    def test_several_requirements_go_round_two_to_four_loops(self, team: Team) -> None:
        loops = Counter(Requirement.objects.values_list("loop_number", flat=True))
        assert {2, 3, 4} <= set(loops)
        assert max(loops) == 4
        assert loops[2] + loops[3] + loops[4] >= 8

    def test_several_requirements_are_reworked(self, team: Team) -> None:
        reworked = StageEvent.objects.filter(kind="rework").values_list("requirement", flat=True)
        assert len(set(reworked)) >= 4

    def test_a_lead_override_is_rare(self, team: Team) -> None:
        assert 1 <= StageEvent.objects.filter(kind="override").count() <= 2

    def test_some_open_requirements_sit_in_their_stage_longer_than_its_sla(self, team: Team) -> None:
        overdue = [
            r.key
            for r in open_requirements()
            if r.stage_entered_at < NOW - dt.timedelta(hours=r.stage.sla_hours)
        ]
        assert len(overdue) >= 3

    def test_some_open_requirements_are_past_their_due_date(self, team: Team) -> None:
        # Requirements opened by metric watches have no due date.
        past_due = [r.key for r in open_requirements() if r.due_date and r.due_date < NOW.date()]
        assert len(past_due) >= 3

    def test_members_hold_all_five_roles_and_one_holds_two(self, team: Team) -> None:
        memberships = list(Membership.objects.filter(team=team))
        assert set().union(*(m.roles for m in memberships)) == ALL_ROLES
        assert max(len(m.roles) for m in memberships) == 2

    def test_every_requirement_agrees_with_its_last_event(self, team: Team) -> None:
        requirements = list(Requirement.objects.select_related("stage").order_by("number"))
        state = [(r.key, r.stage.slug, r.loop_number, r.is_closed, r.stage_entered_at) for r in requirements]
        expected = []
        for r in requirements:
            events = list(
                StageEvent.objects.filter(requirement=r).select_related("loop").order_by("at", "id")
            )
            last, entered = events[-1], [e for e in events if e.to_stage][-1]
            expected.append((r.key, entered.to_stage, last.loop.number, last.kind == "close", entered.at))
        assert state == expected

    def test_event_times_never_go_backwards_and_stay_within_six_months_before_now(self, team: Team) -> None:
        by_requirement: dict[int, list[dt.datetime]] = {}
        for requirement_id, at in StageEvent.objects.order_by("id").values_list("requirement", "at"):
            by_requirement.setdefault(requirement_id, []).append(at)
        assert all(times == sorted(times) for times in by_requirement.values())
        assert max(max(times) for times in by_requirement.values()) <= NOW
        assert min(min(times) for times in by_requirement.values()) >= NOW - dt.timedelta(days=183)

    def test_running_again_duplicates_nothing(self, team: Team) -> None:
        before = row_counts()
        again = seed_demo(now=NOW + dt.timedelta(days=1))
        assert again == team
        assert row_counts() == before

    def test_demo_user_is_a_staff_lead_who_logs_in_with_the_given_password(
        self, team: Team, client: Client
    ) -> None:
        demo = get_user_model().objects.get(username="demo")
        assert demo.is_staff
        assert "lead" in Membership.objects.get(team=team, user=demo).roles
        assert client.login(username="demo", password=PASSWORD)

    def test_running_again_resets_the_demo_password(self, team: Team, client: Client) -> None:
        seed_demo(now=NOW, password="another")
        assert client.login(username="demo", password="another")


def test_the_same_now_gives_the_same_event_log() -> None:
    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        seed_demo(now=NOW)
        first = event_log()
        raise RolledBack
    assert StageEvent.objects.count() == 0
    seed_demo(now=NOW)
    assert event_log() == first


def test_command_seeds_with_the_given_password_and_prints_a_summary(client: Client) -> None:
    out = io.StringIO()
    call_command("seed_demo", "--password", "from-the-command", stdout=out)
    # Forty scripted requirements and three opened by the metric watches that fire on the demo's data.
    assert "43 requirements (20 open, 23 closed)" in out.getvalue()
    assert (
        "Open per stage: propose 6, design 3, build 3, instrument 3, analyze 3, optimize 2." in out.getvalue()
    )
    assert client.login(username="demo", password="from-the-command")
