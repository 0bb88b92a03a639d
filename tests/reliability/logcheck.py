"""What must hold between a requirement's row, its loops and its stage event log, read back from the
database: the hammer and the engine state machine both check it after they have done their worst."""

from __future__ import annotations

import datetime as dt
import itertools

from workflows.models import IterationLoop, Requirement, StageEvent


def log_problems(requirement_id: int) -> list[str]:
    """Everything wrong with the requirement's state against its log (empty when the two agree).

    Replays the log from its creation: each event leaves the stage the one before reached, belongs to
    the loop the iterates before it opened, and nothing follows a close; the events' ids (commit order
    under the row lock) follow their times. The requirement's stage, loop, entry time, close and SLA
    deadlines, and each loop's start, close and outcome, must be what the replay ends with; each
    event's `since` is the time of the event before it."""
    requirement = Requirement.objects.select_related("stage").get(pk=requirement_id)
    events = list(
        StageEvent.objects.filter(requirement_id=requirement_id).select_related("loop").order_by("at", "id")
    )
    problems: list[str] = []
    if [e.pk for e in events] != sorted(e.pk for e in events):
        problems.append("the events' ids do not follow their times")
    if not events or events[0].kind != "create" or events[0].loop.number != 1:
        return [*problems, "the log does not start with a creation in loop 1"]
    stage, loop, closed = events[0].to_stage, 1, None
    loop_starts, loop_ends = [events[0].at], []
    if events[0].since is not None:
        problems.append(f"the creation {events[0].pk} has a `since`")
    for before, event in itertools.pairwise(events):
        if event.since != before.at:
            problems.append(
                f"event {event.pk} says its visit began at {event.since}, the event before is at {before.at}"
            )
        if closed is not None:
            problems.append(f"event {event.pk} follows the close")
        if event.from_stage != stage:
            problems.append(f"event {event.pk} leaves {event.from_stage!r}, the log had reached {stage!r}")
        if event.loop.number != loop:
            problems.append(f"event {event.pk} is in loop {event.loop.number}, the log is in loop {loop}")
        if event.kind == "iterate":
            loop += 1
            loop_ends.append((event.at, "iterate"))
            loop_starts.append(event.at)
            stage = event.to_stage
        elif event.kind == "close":
            closed = event.at
            loop_ends.append((event.at, "close"))
        else:
            stage = event.to_stage
    if (requirement.stage.slug, requirement.loop_number) != (stage, loop):
        problems.append(
            f"the row is at {requirement.stage.slug}/{requirement.loop_number}, the log at {stage}/{loop}"
        )
    entered = max(e.at for e in events if e.kind != "close")
    if requirement.stage_entered_at != entered:
        problems.append(f"stage_entered_at {requirement.stage_entered_at} is not the last entry's {entered}")
    if requirement.closed_at != closed:
        problems.append(f"closed_at {requirement.closed_at}, the log closes at {closed}")
    if (closed is None) != (requirement.outcome == ""):
        problems.append(f"outcome {requirement.outcome!r} with closed_at {closed}")
    loops = list(IterationLoop.objects.filter(requirement_id=requirement_id).order_by("number"))
    if [(x.number, x.started_at) for x in loops] != list(enumerate(loop_starts, start=1)):
        problems.append("the loops' numbers and starts are not the log's")
    ends = [(x.closed_at, x.outcome) for x in loops if x.closed_at is not None or x.outcome]
    if ends != loop_ends:
        problems.append(f"the loops' closes {ends} are not the log's {loop_ends}")
    problems += sla_problems(requirement, closed=closed is not None)
    return problems


def sla_problems(requirement: Requirement, *, closed: bool) -> list[str]:
    """The SLA deadlines of the stage visit in hand (calendar time: the teams here keep the calendar off)."""
    hours = requirement.stage.sla_hours
    if closed or not hours:
        expected: tuple[dt.datetime | None, ...] = (None, None)
    else:
        entered = requirement.stage_entered_at
        expected = (entered + dt.timedelta(hours=hours), entered + dt.timedelta(hours=2 * hours))
    found = (requirement.sla_due_at, requirement.sla_escalate_at)
    if found != expected:
        return [f"SLA deadlines {found}, expected {expected}"]
    if expected[0] is None and requirement.sla_next_at is not None:
        return ["a reminder is due for a visit with no SLA"]
    if requirement.sla_next_at is not None and requirement.sla_next_at < requirement.stage_entered_at:
        return ["the next SLA reminder precedes the stage visit"]
    return []
