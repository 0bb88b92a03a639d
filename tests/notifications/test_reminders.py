"""Who is reminded of what, and when: stage SLAs (calendar and working hours), due dates, the daily digest,
and the notifications written when a requirement moves, is assigned or a comment @mentions someone."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from notifications import services as notification_services
from notifications.models import Kind, Notification
from roles import services as role_services
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member
from workflows import reminders, services
from workflows.models import Requirement, Stage, StageReminder
from worktime import services as worktime_services
from worktime.selectors import calendar_definition

from .helpers import HOUR, T, in_design, sla_sweep_at

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def told(kind: str) -> list[str]:
    """Usernames of the recipients of every notification of this kind, sorted."""
    return sorted(Notification.objects.filter(kind=kind).values_list("recipient__username", flat=True))


def move_team_to(crew: Crew, zone: str) -> None:
    role_services.team_update(team_id=crew.team.pk, actor=crew.lead, time_zone=zone)
    crew.team.refresh_from_db()


def working_week_with_makeup_saturday(crew: Crew) -> None:
    """Mon–Fri 09:00–18:00, and Saturday 2026-02-28 worked (调休补班)."""
    worktime_services.calendar_update(
        team=crew.team,
        actor=None,
        enabled=True,
        work_days=[0, 1, 2, 3, 4],
        start_time=dt.time(9, 0),
        end_time=dt.time(18, 0),
    )
    worktime_services.calendar_day_set(
        team=crew.team, actor=None, date=dt.date(2026, 2, 28), is_workday=True, name="补班"
    )


# ------------------------------------------------------------------------------------------ stage SLA


def test_sla_sweep_sends_nothing_before_the_sla_has_passed(crew: Crew) -> None:
    in_design(crew, at=T)

    assert sla_sweep_at(T + 71 * HOUR) == 0
    assert Notification.objects.count() == 0


def test_stage_owner_is_reminded_once_the_sla_has_passed(crew: Crew) -> None:
    requirement = in_design(crew, at=T)

    assert sla_sweep_at(T + 73 * HOUR) == 1

    assert told(Kind.STAGE_OVERDUE) == ["pm"]
    assert told(Kind.ESCALATION) == []
    reminder = Notification.objects.get(kind=Kind.STAGE_OVERDUE)
    assert reminder.requirement_id == requirement.pk
    assert reminder.text == "GROW-1 First-order red packet has been in Design for 3d 1h, past its 3d SLA"


def test_only_the_assignee_is_reminded_when_one_is_set(crew: Crew) -> None:
    in_design(crew, at=T, assignee=crew.engineer.pk)

    sla_sweep_at(T + 73 * HOUR)

    assert told(Kind.STAGE_OVERDUE) == ["engineer"]


def test_leads_get_an_escalation_at_twice_the_sla_and_the_owner_nothing_new(crew: Crew) -> None:
    in_design(crew, at=T)
    sla_sweep_at(T + 73 * HOUR)

    assert sla_sweep_at(T + 145 * HOUR) == 1

    assert told(Kind.ESCALATION) == ["lead"]
    assert told(Kind.STAGE_OVERDUE) == ["pm"]
    assert (
        Notification.objects.filter(recipient=crew.lead, kind=Kind.ESCALATION)
        .get()
        .text.startswith(
            "Escalation: GROW-1 First-order red packet has been in Design for 6d 1h, twice its 3d SLA"
        )
    )


def test_a_late_first_sweep_sends_the_reminder_and_the_escalation_together(crew: Crew) -> None:
    in_design(crew, at=T)

    assert sla_sweep_at(T + 145 * HOUR) == 2

    assert (told(Kind.STAGE_OVERDUE), told(Kind.ESCALATION)) == (["pm"], ["lead"])


def test_running_the_sweep_again_sends_nothing_more(crew: Crew) -> None:
    in_design(crew, at=T)
    sla_sweep_at(T + 73 * HOUR)
    sla_sweep_at(T + 145 * HOUR)

    assert sla_sweep_at(T + 145 * HOUR) == 0
    assert sla_sweep_at(T + 500 * HOUR) == 0

    assert Notification.objects.count() == 2
    assert sorted(StageReminder.objects.values_list("level", flat=True)) == [1, 2]


def test_a_new_visit_to_the_stage_starts_a_new_clock(crew: Crew) -> None:
    requirement = in_design(crew, at=T)
    sla_sweep_at(T + 73 * HOUR)
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.pm,
        from_stage="design",
        to_stage="propose",
        at=T + 74 * HOUR,
    )
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.ops,
        from_stage="propose",
        to_stage="design",
        at=T + 75 * HOUR,
    )

    assert sla_sweep_at(T + (75 + 71) * HOUR) == 0
    assert sla_sweep_at(T + (75 + 73) * HOUR) == 1

    assert told(Kind.STAGE_OVERDUE) == ["pm", "pm"]
    assert StageReminder.objects.filter(level=1).values("visit").distinct().count() == 2


def test_a_closed_requirement_is_never_reminded(crew: Crew) -> None:
    requirement = in_design(crew, at=T)
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.lead,
        from_stage="design",
        to_stage="close",
        outcome="wont_do",
        at=T + HOUR,
    )

    assert sla_sweep_at(T + 1000 * HOUR) == 0
    assert Notification.objects.count() == 0


def test_sla_sweep_queries_do_not_grow_with_the_number_of_overdue_requirements(crew: Crew) -> None:
    for n in range(3):
        in_design(crew, at=T, title=f"few {n}")
    with time_machine.travel(T + 73 * HOUR, tick=False), CaptureQueriesContext(connection) as few:
        reminders.sla_sweep()
    for n in range(30):
        in_design(crew, at=T + HOUR, title=f"many {n}")
    with time_machine.travel(T + 74 * HOUR, tick=False), CaptureQueriesContext(connection) as many:
        reminders.sla_sweep()

    assert Notification.objects.filter(kind=Kind.STAGE_OVERDUE).count() == 33
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def run_together(count: int, work: Any) -> list[Any]:
    """Run `work()` in `count` threads with connections of their own, released at the same instant."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work()
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent sweeps need PostgreSQL")
def test_concurrent_sweeps_send_each_reminder_once(crew: Crew, local_broker: Path) -> None:
    for n in range(20):
        in_design(crew, at=T, title=f"race {n}")

    results = run_together(2, lambda: reminders.sla_sweep(now=T + 146 * HOUR))

    assert all(isinstance(result, tuple) for result in results), results
    assert sum(sent for sent, _more in results) == 40
    assert StageReminder.objects.count() == 40
    assert told(Kind.STAGE_OVERDUE) == ["pm"] * 20
    assert told(Kind.ESCALATION) == ["lead"] * 20


# ---------------------------------------------------------------------------------------- working hours


def test_sla_deadline_counts_working_hours_across_a_makeup_saturday(crew: Crew) -> None:
    move_team_to(crew, "Asia/Shanghai")
    working_week_with_makeup_saturday(crew)
    stage = Stage(slug="design", name="Design", order=2, owner_roles=["pm"], sla_hours=11)

    due, escalate = reminders.sla_deadlines(
        team=crew.team,
        stage=stage,
        entered_at=dt.datetime(2026, 2, 27, 17, 0, tzinfo=SHANGHAI),
        calendar=calendar_definition(team=crew.team),
    )

    # Friday 17–18 (1 h) + Saturday 09–18 (9 h) + Monday 09–10 (1 h) = 11 working hours.
    assert due == dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
    # 11 more: Monday 10–18 (8 h) + Tuesday 09–12 (3 h).
    assert escalate == dt.datetime(2026, 3, 3, 12, 0, tzinfo=SHANGHAI)


def test_sla_sweep_honours_working_hours(crew: Crew) -> None:
    move_team_to(crew, "Asia/Shanghai")
    working_week_with_makeup_saturday(crew)
    services.workflow_new_version(
        team_id=crew.team.pk, actor=crew.lead, stages={"propose": {"sla_hours": 11}}
    )
    services.requirement_create(
        team=crew.team,
        actor=crew.lead,
        title="Night shift",
        at=dt.datetime(2026, 2, 27, 17, 0, tzinfo=SHANGHAI),
    )

    # 11 calendar hours later (Saturday 04:00) and just before the working deadline: nothing yet.
    assert sla_sweep_at(dt.datetime(2026, 2, 28, 4, 30, tzinfo=SHANGHAI)) == 0
    assert sla_sweep_at(dt.datetime(2026, 3, 2, 9, 59, tzinfo=SHANGHAI)) == 0
    assert sla_sweep_at(dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)) == 1

    assert told(Kind.STAGE_OVERDUE) == ["ops"]


# -------------------------------------------------------------------------------------------- due dates

MONDAY = dt.date(2026, 3, 2)


def due_on_monday(crew: Crew) -> Requirement:
    """In propose (waits on ops), due Monday 2026-03-02; the team works in Shanghai."""
    move_team_to(crew, "Asia/Shanghai")
    return services.requirement_create(
        team=crew.team,
        actor=crew.lead,
        title="Spring campaign",
        due_date=MONDAY,
        at=dt.datetime(2026, 2, 26, 10, 0, tzinfo=SHANGHAI),
    )


def due_sweep_at(moment: dt.datetime) -> int:
    with time_machine.travel(moment, tick=False):
        return reminders.due_sweep()


def test_due_soon_comes_on_the_working_day_before_from_nine_team_time(crew: Crew) -> None:
    due_on_monday(crew)

    assert due_sweep_at(dt.datetime(2026, 2, 27, 8, 59, tzinfo=SHANGHAI)) == 0
    assert due_sweep_at(dt.datetime(2026, 2, 27, 9, 0, tzinfo=SHANGHAI)) == 1

    assert told(Kind.DUE_SOON) == ["ops"]
    assert Notification.objects.get().text == "GROW-1 Spring campaign is due on 2026-03-02"


def test_due_soon_is_sent_once(crew: Crew) -> None:
    due_on_monday(crew)

    due_sweep_at(dt.datetime(2026, 2, 27, 9, 0, tzinfo=SHANGHAI))
    assert due_sweep_at(dt.datetime(2026, 2, 27, 15, 0, tzinfo=SHANGHAI)) == 0

    assert told(Kind.DUE_SOON) == ["ops"]


def test_due_soon_is_not_sent_on_the_weekend_before(crew: Crew) -> None:
    due_on_monday(crew)

    assert due_sweep_at(dt.datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI)) == 0
    assert due_sweep_at(dt.datetime(2026, 3, 1, 10, 0, tzinfo=SHANGHAI)) == 0


def test_due_soon_comes_on_a_makeup_saturday_when_the_team_counts_working_days(crew: Crew) -> None:
    due_on_monday(crew)
    working_week_with_makeup_saturday(crew)

    assert due_sweep_at(dt.datetime(2026, 2, 27, 10, 0, tzinfo=SHANGHAI)) == 0
    assert due_sweep_at(dt.datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI)) == 1

    assert told(Kind.DUE_SOON) == ["ops"]


def test_due_today_comes_on_the_day_once(crew: Crew) -> None:
    due_on_monday(crew)

    assert due_sweep_at(dt.datetime(2026, 3, 2, 8, 59, tzinfo=SHANGHAI)) == 0
    assert due_sweep_at(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)) == 1
    assert due_sweep_at(dt.datetime(2026, 3, 2, 17, 0, tzinfo=SHANGHAI)) == 0

    assert told(Kind.DUE_TODAY) == ["ops"]
    assert Notification.objects.get().text == "GROW-1 Spring campaign is due today"


def test_due_sweep_queries_do_not_grow_with_the_number_of_requirements_due(crew: Crew) -> None:
    move_team_to(crew, "Asia/Shanghai")
    for n in range(3):
        services.requirement_create(team=crew.team, actor=crew.lead, title=f"few {n}", due_date=MONDAY, at=T)
    monday_9 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
    with time_machine.travel(monday_9, tick=False), CaptureQueriesContext(connection) as few:
        reminders.due_sweep()
    for n in range(30):
        services.requirement_create(
            team=crew.team, actor=crew.lead, title=f"many {n}", due_date=dt.date(2026, 3, 4), at=T
        )
    with time_machine.travel(monday_9 + 24 * HOUR, tick=False), CaptureQueriesContext(connection) as many:
        reminders.due_sweep()

    assert (len(told(Kind.DUE_TODAY)), len(told(Kind.DUE_SOON))) == (3, 30)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_due_reminders_go_to_the_assignee_when_one_is_set(crew: Crew) -> None:
    requirement = due_on_monday(crew)
    services.requirement_update(requirement_id=requirement.pk, actor=crew.analyst, assignee=crew.analyst.pk)

    due_sweep_at(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI))

    assert told(Kind.DUE_TODAY) == ["analyst"]


# ----------------------------------------------------------------------------------------- daily digest

TUESDAY_9 = dt.datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI)


def digest_day(crew: Crew) -> tuple[Requirement, Requirement]:
    """Shanghai team. GROW-1 has waited on ops in propose since Saturday (past its 48 h SLA by Tuesday);
    GROW-2 moved to design on Monday, so on Tuesday it waits on pm and moved yesterday."""
    move_team_to(crew, "Asia/Shanghai")
    stale = services.requirement_create(
        team=crew.team, actor=crew.lead, title="Old idea", at=dt.datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI)
    )
    fresh = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Coupon test",
        at=dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI),
        **READY_FIELDS,
    )
    services.requirement_transition(
        requirement_id=fresh.pk,
        actor=crew.ops,
        from_stage="propose",
        to_stage="design",
        at=dt.datetime(2026, 3, 2, 15, 0, tzinfo=SHANGHAI),
    )
    return stale, fresh


def digest_sweep_at(moment: dt.datetime) -> int:
    with time_machine.travel(moment, tick=False):
        return reminders.digest_sweep()


def test_no_digest_before_nine_in_the_team_time_zone(crew: Crew) -> None:
    digest_day(crew)

    assert digest_sweep_at(TUESDAY_9 - dt.timedelta(minutes=1)) == 0
    assert Notification.objects.count() == 0


def test_digest_at_nine_goes_to_each_member_with_something_waiting(crew: Crew) -> None:
    digest_day(crew)

    assert digest_sweep_at(TUESDAY_9) == 2

    assert told(Kind.DAILY_DIGEST) == ["ops", "pm"]


def test_digest_lists_what_waits_and_what_is_past_the_sla(crew: Crew) -> None:
    digest_day(crew)

    digest_sweep_at(TUESDAY_9)

    digest = Notification.objects.get(recipient=crew.ops)
    assert digest.text == "Daily digest: 1 waiting on you, 1 past the SLA"
    assert digest.body.splitlines() == [
        "Waiting on you (1):",
        "- GROW-1 Old idea · Propose",
        "Past the SLA (1):",
        "- GROW-1 Old idea",
    ]


def test_digest_lists_what_moved_yesterday(crew: Crew) -> None:
    digest_day(crew)

    digest_sweep_at(TUESDAY_9)

    digest = Notification.objects.get(recipient=crew.pm)
    assert digest.text == "Daily digest: 1 waiting on you, 0 past the SLA"
    assert digest.body.splitlines() == [
        "Waiting on you (1):",
        "- GROW-2 Coupon test · Design",
        "Moved yesterday:",
        "- GROW-2 propose → design",
    ]


def test_digest_is_sent_once_a_day(crew: Crew) -> None:
    digest_day(crew)

    digest_sweep_at(TUESDAY_9)
    assert digest_sweep_at(TUESDAY_9 + 5 * HOUR) == 0

    assert told(Kind.DAILY_DIGEST) == ["ops", "pm"]


def test_digest_comes_again_the_next_day(crew: Crew) -> None:
    digest_day(crew)

    digest_sweep_at(TUESDAY_9)
    assert digest_sweep_at(TUESDAY_9 + 24 * HOUR) == 2

    assert told(Kind.DAILY_DIGEST) == ["ops", "ops", "pm", "pm"]


def test_digest_comes_at_nine_in_a_team_in_another_time_zone(crew: Crew) -> None:
    move_team_to(crew, "America/New_York")
    services.requirement_create(
        team=crew.team, actor=crew.lead, title="Fall sale", at=dt.datetime(2026, 3, 1, 10, 0, tzinfo=NEW_YORK)
    )
    digest_sweep_at(dt.datetime(2026, 3, 2, 9, 0, tzinfo=NEW_YORK))

    assert digest_sweep_at(dt.datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI)) == 0  # 20:00 in New York
    assert digest_sweep_at(dt.datetime(2026, 3, 3, 8, 59, tzinfo=NEW_YORK)) == 0
    assert digest_sweep_at(dt.datetime(2026, 3, 3, 9, 0, tzinfo=NEW_YORK)) == 1

    assert told(Kind.DAILY_DIGEST) == ["ops", "ops"]


def test_work_arriving_after_the_digest_waits_for_the_next_days_digest(crew: Crew) -> None:
    move_team_to(crew, "Asia/Shanghai")
    digest_sweep_at(TUESDAY_9)
    services.requirement_create(
        team=crew.team, actor=crew.lead, title="Late idea", at=dt.datetime(2026, 3, 3, 10, 0, tzinfo=SHANGHAI)
    )

    assert digest_sweep_at(dt.datetime(2026, 3, 3, 10, 5, tzinfo=SHANGHAI)) == 0
    assert digest_sweep_at(TUESDAY_9 + 24 * HOUR) == 1

    assert told(Kind.DAILY_DIGEST) == ["ops"]


# ------------------------------------------------------------------------------- moves, assignments, mentions


def test_a_transition_tells_the_owners_of_the_new_stage_but_not_the_actor(crew: Crew) -> None:
    both = add_member(crew.team, ["ops", "pm"], username="opm")
    requirement = services.requirement_create(
        team=crew.team, actor=both, title="Referral badge", at=T, **READY_FIELDS
    )

    services.requirement_transition(
        requirement_id=requirement.pk, actor=both, from_stage="propose", to_stage="design"
    )

    assert told(Kind.YOUR_TURN) == ["pm"]
    assert Notification.objects.get().text == "GROW-1 Referral badge is now in Design"


def test_creating_a_requirement_tells_the_owners_of_its_first_stage(crew: Crew) -> None:
    services.requirement_create(team=crew.team, actor=crew.pm, title="Idea from design")

    assert told(Kind.YOUR_TURN) == ["ops"]


def test_assignment_tells_the_new_assignee(crew: Crew) -> None:
    requirement = in_design(crew, at=T)

    services.requirement_update(requirement_id=requirement.pk, actor=crew.pm, assignee=crew.engineer.pk)

    assert told(Kind.YOUR_TURN) == ["engineer"]
    assert Notification.objects.get().text == "pm assigned GROW-1 First-order red packet to you"


def test_assigning_oneself_tells_nobody(crew: Crew) -> None:
    requirement = in_design(crew, at=T)

    services.requirement_update(requirement_id=requirement.pk, actor=crew.pm, assignee=crew.pm.pk)

    assert Notification.objects.count() == 0


def test_a_comment_tells_the_team_members_it_mentions_but_not_its_author(crew: Crew) -> None:
    UserFactory(username="outsider")
    requirement = in_design(crew, at=T)

    services.comment_create(
        requirement_id=requirement.pk,
        actor=crew.pm,
        body="@analyst can you check the funnel? cc @outsider, and see @pm's note (mail: x@engineer)",
    )

    assert told(Kind.MENTIONED) == ["analyst"]
    mention = Notification.objects.get()
    assert mention.text == "pm mentioned you on GROW-1"
    assert mention.body.startswith("@analyst can you check the funnel?")


# -------------------------------------------------------------------------------------------- languages


def speaks_chinese(user: Any) -> None:
    notification_services.settings_update(
        user=user,
        email_kinds=list(Kind.values),
        quiet_start=None,
        quiet_end=None,
        time_zone="Asia/Shanghai",
        language="zh-hans",
    )


def test_notifications_are_written_in_the_recipients_language(crew: Crew) -> None:
    speaks_chinese(crew.pm)
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="红包", at=T, **READY_FIELDS
    )

    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )

    text = Notification.objects.get(recipient=crew.pm).text
    assert "GROW-1 红包" in text
    assert "设计" in text  # the stage's name, from the catalog
    assert "Design" not in text


def test_reminders_are_written_in_each_recipients_language(crew: Crew) -> None:
    speaks_chinese(crew.pm)
    in_design(crew, at=T)
    add_member(crew.team, ["pm"], username="pm2")

    sla_sweep_at(T + 73 * HOUR)

    texts = dict(Notification.objects.values_list("recipient__username", "text"))
    assert "设计" in texts["pm"]
    assert "Design" in texts["pm2"]
