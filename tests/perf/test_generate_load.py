"""generate_load builds the benchmark's data set in bulk and keeps every invariant the services keep."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import transaction

from dataloop.models import Metric, MetricWatch, Observation
from dataloop.presets import DEFAULT_METRICS
from dataloop.services import watches_evaluate
from perf import load
from roles.models import ALL_ROLES, Membership, Team
from tests.factories import READY_FIELDS, UserFactory, make_team
from workflows import services
from workflows.defaults import DEFAULT_STAGES
from workflows.models import (
    IterationLoop,
    Requirement,
    StageEvent,
    TrackingEvent,
    TrackingStatus,
    Workflow,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
SEED = 11
PASSWORD = "load-pw"
PER_TEAM = 60
OPEN_PER_TEAM = 18  # 30 % of 60: a team this small cannot keep 300 open
STAGES = [slug for slug, _name, _owners, _sla in DEFAULT_STAGES]
FORWARD_MOVER = {
    "propose": "ops",
    "design": "pm",
    "build": "engineer",
    "instrument": "analyst",
    "analyze": "analyst",
}


def generate(**options: Any) -> str:
    out = io.StringIO()
    call_command(
        "generate_load",
        teams=options.pop("teams", 2),
        requirements=options.pop("requirements", 2 * PER_TEAM),
        seed=options.pop("seed", SEED),
        now=options.pop("now", NOW.isoformat()),
        password=PASSWORD,
        stdout=out,
        **options,
    )
    return out.getvalue()


def event_log() -> list[tuple[Any, ...]]:
    return list(
        StageEvent.objects.filter(requirement__team__key_prefix__startswith="L")
        .order_by("requirement__team__key_prefix", "requirement__number", "at", "id")
        .values_list(
            "requirement__key", "loop__number", "from_stage", "to_stage", "kind", "actor__username", "at"
        )
    )


@pytest.fixture(scope="class")
def output(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """Two load teams generated once for the class and rolled back after it; each test still runs in
    its own savepoint inside."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield generate()
        transaction.set_rollback(True)


@pytest.mark.usefixtures("output")
class TestDataSet:
    def test_reports_what_it_wrote_and_how_long_it_took(self, output: str) -> None:
        assert "L01: 60 requirements (18 open" in output
        assert "2 teams, 11 users, 120 requirements" in output
        assert f"{Requirement.objects.count()} requirements" in output
        assert f"{StageEvent.objects.count():,} stage events" in output
        assert output.rstrip().endswith(" s.")

    def test_teams_are_made_with_their_default_workflow_and_metrics(self) -> None:
        teams = list(Team.objects.order_by("key_prefix"))
        assert [(t.key_prefix, t.name) for t in teams] == [("L01", "Load team 01"), ("L02", "Load team 02")]
        for team in teams:
            workflow = Workflow.objects.get(team=team, is_current=True)
            assert list(workflow.stages.order_by("order").values_list("slug", flat=True)) == STAGES
            assert Metric.objects.filter(team=team).count() == len(DEFAULT_METRICS)

    def test_every_team_has_a_member_in_each_role(self) -> None:
        for prefix in ("l01", "l02"):
            for role in ALL_ROLES:
                membership = Membership.objects.get(user__username=f"{prefix}-{role}")
                assert membership.team.key_prefix == prefix.upper()
                assert membership.roles == {role}
                assert membership.user.check_password(PASSWORD)

    def test_bench_is_staff_and_holds_every_role_in_L01_only(self) -> None:
        bench = get_user_model().objects.get(username="bench")
        assert bench.is_staff
        assert bench.check_password(PASSWORD)
        assert [(m.team.key_prefix, m.roles) for m in Membership.objects.filter(user=bench)] == [
            ("L01", ALL_ROLES)
        ]

    def test_keys_are_dense_and_unique_and_numbered_in_creation_order(self) -> None:
        for team in Team.objects.all():
            rows = list(
                Requirement.objects.filter(team=team)
                .order_by("number")
                .values_list("number", "key", "created_at")
            )
            assert [number for number, _key, _at in rows] == list(range(1, PER_TEAM + 1))
            assert [key for _number, key, _at in rows] == [
                f"{team.key_prefix}-{n}" for n in range(1, PER_TEAM + 1)
            ]
            created = [at for _number, _key, at in rows]
            assert created == sorted(created)

    def test_each_log_is_chained_and_agrees_with_its_requirement(self) -> None:
        events: dict[int, list[StageEvent]] = defaultdict(list)
        for event in StageEvent.objects.select_related("loop").order_by("at", "id"):
            events[event.requirement_id].append(event)
        requirements = list(Requirement.objects.select_related("stage", "team"))
        assert requirements
        for requirement in requirements:
            log = events[requirement.pk]
            assert log[0].kind == "create"
            assert log[0].from_stage == ""
            assert log[0].at == requirement.created_at
            assert log[0].since is None
            for before, after in itertools.pairwise(log):
                assert after.at > before.at
                assert after.from_stage == before.to_stage
                assert after.since == before.at
            last = log[-1]
            assert requirement.loop_number == requirement.loops.count()
            assert last.at < NOW
            if requirement.closed_at is None:
                assert last.kind != "close"
                assert requirement.stage.slug == last.to_stage
                assert requirement.stage_entered_at == last.at
                assert requirement.outcome == ""
                assert requirement.sla_due_at == last.at + dt.timedelta(hours=requirement.stage.sla_hours)
                assert requirement.sla_escalate_at == last.at + dt.timedelta(
                    hours=2 * requirement.stage.sla_hours
                )
                assert requirement.sla_next_at == requirement.sla_due_at
            else:
                assert last.kind == "close"
                assert requirement.closed_at == last.at
                assert requirement.outcome in ("done", "wont_do")
                # A close keeps the stage it closed from, entered by the move before it.
                assert requirement.stage.slug == last.from_stage == log[-2].to_stage
                assert requirement.stage_entered_at == log[-2].at
                assert (requirement.sla_due_at, requirement.sla_escalate_at, requirement.sla_next_at) == (
                    None,
                    None,
                    None,
                )

    def test_loops_start_and_end_at_their_events(self) -> None:
        for requirement in Requirement.objects.all():
            loops = list(IterationLoop.objects.filter(requirement=requirement).order_by("number"))
            log = list(
                StageEvent.objects.filter(requirement=requirement).select_related("loop").order_by("at", "id")
            )
            assert [loop.number for loop in loops] == list(range(1, len(loops) + 1))
            assert loops[0].started_at == log[0].at
            iterates = [event for event in log if event.kind == "iterate"]
            assert len(iterates) == len(loops) - 1
            for loop, iterate, following in zip(loops, iterates, loops[1:], strict=False):
                assert iterate.loop_id == loop.pk
                assert (loop.closed_at, loop.outcome) == (iterate.at, "iterate")
                assert following.started_at == iterate.at
            for event in log:
                assert event.loop.started_at <= event.at
                assert event.loop.closed_at is None or event.at <= event.loop.closed_at
            if requirement.closed_at is None:
                assert loops[-1].closed_at is None
            else:
                assert (loops[-1].closed_at, loops[-1].outcome) == (requirement.closed_at, "close")

    def test_moves_are_made_by_members_allowed_to_make_them(self) -> None:
        for event in StageEvent.objects.select_related("actor", "requirement__team"):
            role = event.actor.username.split("-", 1)[1]
            prefix = event.actor.username.split("-", 1)[0].upper()
            assert prefix == event.requirement.team.key_prefix
            if event.kind == "create":
                assert role == "ops"
            elif event.kind == "close" and event.from_stage != "optimize":
                assert role == "lead"
            else:
                owners = dict((slug, owners) for slug, _name, owners, _sla in DEFAULT_STAGES)
                assert role in owners[event.from_stage], (event, role)

    def test_history_spans_two_years_with_loops_rework_and_long_tails(self) -> None:
        assert Requirement.objects.filter(created_at__lt=NOW - dt.timedelta(days=365)).exists()
        assert IterationLoop.objects.count() == round(2.5 * 2 * PER_TEAM)
        loops_per_requirement = Counter(Requirement.objects.values_list("loop_number", flat=True))
        assert loops_per_requirement[1] > loops_per_requirement[4]
        assert max(loops_per_requirement) >= 6
        assert StageEvent.objects.filter(kind="rework").exists()
        assert Requirement.objects.filter(outcome="wont_do").exists()
        assert Requirement.objects.filter(outcome="done").exists()

    def test_each_team_keeps_its_share_open_over_every_stage(self) -> None:
        for team in Team.objects.all():
            open_requirements = Requirement.objects.filter(team=team, closed_at__isnull=True)
            assert open_requirements.count() == OPEN_PER_TEAM
            assert set(open_requirements.values_list("stage__slug", flat=True)) == set(STAGES)
            assert IterationLoop.objects.filter(requirement__team=team, closed_at__isnull=True).count() == (
                OPEN_PER_TEAM
            )

    def test_some_open_requirements_are_overdue_and_some_escalated(self) -> None:
        open_requirements = Requirement.objects.filter(closed_at__isnull=True)
        overdue = open_requirements.filter(sla_due_at__lt=NOW).count()
        escalated = open_requirements.filter(sla_escalate_at__lt=NOW).count()
        assert 0 < escalated < overdue < open_requirements.count()

    def test_loops_that_passed_a_guard_have_what_it_asks(self) -> None:
        left_instrument = set(
            StageEvent.objects.filter(from_stage="instrument", kind="forward").values_list(
                "loop_id", flat=True
            )
        )
        left_analyze = set(
            StageEvent.objects.filter(from_stage="analyze", kind="forward").values_list("loop_id", flat=True)
        )
        assert left_instrument and left_analyze
        for loop in IterationLoop.objects.filter(pk__in=left_instrument).select_related("requirement"):
            plan = list(TrackingEvent.objects.filter(loop=loop).values_list("status", flat=True))
            assert plan and set(plan) == {TrackingStatus.VERIFIED}
            assert loop.requirement.launch_date is not None
        assert not IterationLoop.objects.filter(pk__in=left_analyze).filter(verdict="").exists()
        assert not IterationLoop.objects.filter(pk__in=left_analyze).filter(conclusion="").exists()
        left_design = StageEvent.objects.filter(from_stage="design", kind="forward").values("requirement_id")
        assert not Requirement.objects.filter(pk__in=left_design, design="").exists()

    @pytest.mark.parametrize("stage", STAGES[:-1])
    def test_an_open_requirement_moves_forward_by_its_stage_owner(self, stage: str) -> None:
        requirement = Requirement.objects.filter(
            team__key_prefix="L01", closed_at__isnull=True, stage__slug=stage
        ).first()
        assert requirement is not None
        owner = get_user_model().objects.get(username=f"l01-{FORWARD_MOVER[stage]}")
        target = STAGES[STAGES.index(stage) + 1]
        event = services.requirement_transition(
            requirement_id=requirement.pk, actor=owner, from_stage=stage, to_stage=target
        )
        assert (event.kind, event.to_stage) == ("forward", target)

    def test_an_open_requirement_in_optimize_iterates(self) -> None:
        requirement = Requirement.objects.filter(
            team__key_prefix="L01", closed_at__isnull=True, stage__slug="optimize"
        ).first()
        assert requirement is not None
        ops = get_user_model().objects.get(username="l01-ops")
        event = services.requirement_transition(
            requirement_id=requirement.pk, actor=ops, from_stage="optimize", to_stage="iterate"
        )
        requirement.refresh_from_db()
        assert (event.kind, requirement.loop_number, requirement.stage.slug) == (
            "iterate",
            event.loop.number + 1,
            "propose",
        )

    def test_bench_moves_every_L01_design_requirement_to_build_and_back(self) -> None:
        bench = get_user_model().objects.get(username="bench")
        pool = Requirement.objects.filter(
            team__key_prefix="L01", closed_at__isnull=True, stage__slug="design"
        )
        assert pool.exclude(design="").count() == pool.count() > 0
        for requirement in pool:
            there = services.requirement_transition(
                requirement_id=requirement.pk, actor=bench, from_stage="design", to_stage="build"
            )
            back = services.requirement_transition(
                requirement_id=requirement.pk,
                actor=bench,
                from_stage="build",
                to_stage="design",
                note="bench",
            )
            assert (there.kind, back.kind) == ("forward", "rework")

    def test_observations_cover_every_metric_daily_for_two_years(self) -> None:
        for metric in Metric.objects.all():
            days = list(
                Observation.objects.filter(metric=metric).order_by("date").values_list("date", flat=True)
            )
            assert len(days) == len(set(days)) == 730
            assert (days[-1] - days[0]).days == 729
            assert days[-1] < NOW.date()

    def test_watches_have_work_but_fire_nothing(self) -> None:
        assert MetricWatch.objects.filter(is_active=True).count() == 2 * 5
        assert watches_evaluate(now=NOW) == 0
        assert MetricWatch.objects.filter(evaluated_at=NOW).count() == 2 * 5


def test_same_seed_and_now_give_the_same_data_set() -> None:
    generate()
    first = event_log()
    generate(reset=True)
    assert event_log() == first
    generate(reset=True, seed=SEED + 1)
    assert event_log() != first


def test_refuses_to_run_over_an_existing_data_set() -> None:
    generate()
    before = (Requirement.objects.count(), StageEvent.objects.count())
    with pytest.raises(CommandError, match="--reset"):
        generate()
    assert (Requirement.objects.count(), StageEvent.objects.count()) == before


def test_reset_replaces_the_data_set_and_leaves_other_teams_alone() -> None:
    lead = UserFactory(username="grow-lead")
    other = make_team(lead=lead, name="Growth", key_prefix="GROW")
    kept = services.requirement_create(team=other, actor=lead, title="Keep me", **READY_FIELDS)
    services.requirement_transition(
        requirement_id=kept.pk, actor=lead, from_stage="propose", to_stage="design"
    )
    generate(teams=3, requirements=90)
    generate(teams=2, requirements=40, reset=True)
    assert list(Team.objects.order_by("key_prefix").values_list("key_prefix", flat=True)) == [
        "GROW",
        "L01",
        "L02",
    ]
    assert Requirement.objects.filter(team__key_prefix__startswith="L").count() == 40
    assert not get_user_model().objects.filter(username__startswith="l03-").exists()
    assert StageEvent.objects.filter(requirement=kept).count() == 2
    assert Membership.objects.filter(team=other, user=lead).exists()


def test_refuses_a_team_with_a_load_prefix_that_is_not_a_load_team() -> None:
    make_team(name="Logistics", key_prefix="L02")
    with pytest.raises(CommandError, match="L02"):
        generate(reset=True)
    assert not Team.objects.filter(key_prefix="L01").exists()


def test_a_small_team_keeps_fewer_open() -> None:
    output = generate(teams=1, requirements=10)
    assert Requirement.objects.filter(closed_at__isnull=True).count() == 3
    assert "10 requirements (3 open" in output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"teams": 0}, "--teams"),
        ({"teams": 3, "requirements": 2}, "--requirements"),
        ({"now": "yesterday"}, "--now"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        generate(**options)
    assert not Team.objects.exists()


def test_quick_builds_two_small_teams() -> None:
    output = generate(quick=True, teams=None, requirements=None)
    assert "2 teams, 11 users, 1,000 requirements (300 open" in output
    assert Requirement.objects.filter(team__key_prefix="L01", closed_at__isnull=True).count() == 150


@pytest.mark.parametrize(("requirements", "kept_open"), [(5_000, 300), (1_000, 300), (500, 150), (10, 3)])
def test_a_team_keeps_300_open_or_30_percent_when_smaller(requirements: int, kept_open: int) -> None:
    assert load.Size.open_for(requirements) == kept_open
