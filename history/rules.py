"""Replaying an imported requirement's log against a workflow definition. Pure: no queries.

The replay checks what the services would have enforced about order (not about roles: imported
history may hold other people's moves and leads' overrides), fills in the kinds a CSV file leaves
out, and computes what the requirement and its loops must hold so that they agree with the log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _

from workflows import engine
from workflows.models import EventKind, LoopOutcome

from .formats import CLOSE, ITERATE, EventRecord, LoopRecord, Problem, RequirementRecord, StageRef

# Kinds of a move between two stages (the rest: create, iterate, close).
STAGE_MOVES = frozenset({EventKind.FORWARD, EventKind.REWORK, EventKind.OVERRIDE})


@dataclass(frozen=True)
class PlannedEvent:
    loop: int
    from_stage: str
    to_stage: str  # empty for close
    kind: str
    actor: str
    at: dt.datetime
    note: str = ""

    @property
    def signature(self) -> tuple[int, str, str, str, dt.datetime]:
        """What makes two events the same event when an import meets what is already there."""
        return (self.loop, self.from_stage, self.to_stage, self.kind, self.at)


@dataclass(frozen=True)
class PlannedLoop:
    number: int
    started_at: dt.datetime
    closed_at: dt.datetime | None = None
    outcome: str = ""
    conclusion: str = ""
    verdict: str = ""


@dataclass(frozen=True)
class Replay:
    """A requirement's log and the state it leads to."""

    events: tuple[PlannedEvent, ...]
    loops: tuple[PlannedLoop, ...]
    stage: str  # the stage it is in (a closed requirement stays in the stage it closed from)
    stage_entered_at: dt.datetime
    created_at: dt.datetime
    closed_at: dt.datetime | None

    @property
    def loop_number(self) -> int:
        return self.loops[-1].number

    @property
    def signatures(self) -> list[tuple[int, str, str, str, dt.datetime]]:
        return [event.signature for event in self.events]


def replay(record: RequirementRecord, workflow: engine.WorkflowDef) -> tuple[Replay | None, list[Problem]]:
    """The requirement's log checked and completed, or the problems that stop it. A record with rows
    that could not be read is only checked for unknown stages: its log has gaps."""
    problems = _unknown_stages(record.stage_refs, workflow)
    if problems or record.broken:
        return None, problems
    if not record.events:
        return None, [record.where.problem("loops", _("%(key)s has no events.") % {"key": record.key})]
    return _Replayer(record, workflow).run()


def _unknown_stages(refs: Sequence[StageRef], workflow: engine.WorkflowDef) -> list[Problem]:
    known = {stage.slug for stage in workflow.stages}
    return [
        ref.where.problem(ref.field, _("unknown stage “%(slug)s”.") % {"slug": ref.slug})
        for ref in refs
        if ref.slug not in known
    ]


class _Replayer:
    def __init__(self, record: RequirementRecord, workflow: engine.WorkflowDef) -> None:
        self.record = record
        self.workflow = workflow
        self.events: list[PlannedEvent] = []
        self.loops: list[PlannedLoop] = []
        self.stage = ""
        self.entered_at: dt.datetime | None = None
        self.closed_at: dt.datetime | None = None

    @property
    def loop(self) -> int:
        return self.loops[-1].number if self.loops else 0

    def run(self) -> tuple[Replay | None, list[Problem]]:
        events = self.record.events
        for index, event in enumerate(events):
            problem = self.step(event, first=index == 0)
            if problem is not None:
                # Later problems of the same requirement mostly follow from this one.
                return None, [problem]
        problems = self.check_record()
        if problems:
            return None, problems
        assert self.entered_at is not None
        texts = {loop.number: loop for loop in self.record.loops}
        loops = tuple(_with_texts(loop, texts.get(loop.number)) for loop in self.loops)
        return (
            Replay(
                events=tuple(self.events),
                loops=loops,
                stage=self.stage,
                stage_entered_at=self.entered_at,
                created_at=self.events[0].at,
                closed_at=self.closed_at,
            ),
            [],
        )

    def step(self, event: EventRecord, *, first: bool) -> Problem | None:
        where = event.where
        if self.closed_at is not None:
            return where.problem(
                "kind", _("nothing may follow the close of %(key)s.") % {"key": self.record.key}
            )
        if self.events and event.at < self.events[-1].at:
            return where.problem(
                "at",
                _(
                    "earlier than the event before it (%(previous)s): a requirement's events are in time order."
                )
                % {"previous": self.events[-1].at.isoformat()},
            )
        if not event.from_stage:
            return self.create(event, first=first)
        if first:
            return where.problem(
                "from", _("the first event of a requirement is its creation, with no “from”.")
            )
        if event.from_stage != self.stage:
            return where.problem(
                "from",
                _("“%(from)s”, but the requirement is in “%(stage)s” at this point.")
                % {"from": event.from_stage, "stage": self.stage},
            )
        kind, problem = self.kind_of(event)
        if problem is not None:
            return problem
        if kind == EventKind.CLOSE:
            return self.close(event)
        if kind == EventKind.ITERATE:
            return self.iterate(event)
        return self.move(event, kind)

    def kind_of(self, event: EventRecord) -> tuple[str, Problem | None]:
        """The kind the file gives, checked against the move's shape, or the one derived for it."""
        where = event.where
        to = event.to_stage
        given = event.kind
        if given == EventKind.CREATE:
            return given, where.problem("kind", _("a creation has no “from”."))
        if to in ("", CLOSE):
            if given not in ("", EventKind.CLOSE):
                return given, where.problem(
                    "to", _("a “%(kind)s” names the stage it goes to.") % {"kind": given}
                )
            return EventKind.CLOSE, None
        if given == EventKind.CLOSE:
            return given, where.problem("to", _("a close goes to no stage: leave “to” empty."))
        if to == ITERATE and given not in ("", EventKind.ITERATE):
            return given, where.problem("kind", _("a move to “iterate” is an iterate."))
        if to == ITERATE or given == EventKind.ITERATE:
            return EventKind.ITERATE, None
        if to == event.from_stage:
            return given, where.problem("to", _("a move goes to another stage."))
        if given:
            return given, None
        # Derived: a row numbered with the next loop is the move that opened it.
        if event.loop == self.loop + 1:
            return EventKind.ITERATE, None
        transition = self.workflow.transition(event.from_stage, to)
        if transition is not None and transition.kind in (EventKind.FORWARD, EventKind.REWORK):
            return transition.kind, None
        return EventKind.OVERRIDE, None

    def check_loop(self, event: EventRecord, *, allowed: tuple[int, ...]) -> Problem | None:
        if event.loop is None or event.loop in allowed:
            return None
        return event.where.problem(
            "loop",
            _("loop %(given)d out of order: the requirement is in loop %(current)d at this point.")
            % {"given": event.loop, "current": self.loop},
        )

    def create(self, event: EventRecord, *, first: bool) -> Problem | None:
        where = event.where
        if not first:
            return where.problem("from", _("only the first event is a creation (with no “from”)."))
        if event.kind not in ("", EventKind.CREATE):
            return where.problem("kind", _("the first event of a requirement is its creation."))
        if event.to_stage in ("", CLOSE, ITERATE):
            return where.problem("to", _("a creation names the stage the requirement starts in."))
        if event.loop not in (None, 1):
            return where.problem("loop", _("a requirement is created in loop 1."))
        self.loops.append(PlannedLoop(number=1, started_at=event.at))
        self.events.append(self.planned(event, EventKind.CREATE, event.to_stage))
        self.stage = event.to_stage
        self.entered_at = event.at
        return None

    def close(self, event: EventRecord) -> Problem | None:
        problem = self.check_loop(event, allowed=(self.loop,))
        if problem is not None:
            return problem
        self.events.append(self.planned(event, EventKind.CLOSE, ""))
        self.loops[-1] = PlannedLoop(
            number=self.loop,
            started_at=self.loops[-1].started_at,
            closed_at=event.at,
            outcome=LoopOutcome.CLOSE,
        )
        self.closed_at = event.at
        return None

    def iterate(self, event: EventRecord) -> Problem | None:
        # The iterate row belongs to the loop it closes; a file may also number it with the loop it opens.
        problem = self.check_loop(event, allowed=(self.loop, self.loop + 1))
        if problem is not None:
            return problem
        to = self.workflow.first_stage.slug if event.to_stage == ITERATE else event.to_stage
        self.events.append(self.planned(event, EventKind.ITERATE, to))
        self.loops[-1] = PlannedLoop(
            number=self.loop,
            started_at=self.loops[-1].started_at,
            closed_at=event.at,
            outcome=LoopOutcome.ITERATE,
        )
        self.loops.append(PlannedLoop(number=self.loop + 1, started_at=event.at))
        self.stage = to
        self.entered_at = event.at
        return None

    def move(self, event: EventRecord, kind: str) -> Problem | None:
        if kind not in STAGE_MOVES:
            return event.where.problem("kind", _("“%(kind)s” is not a move between stages.") % {"kind": kind})
        problem = self.check_loop(event, allowed=(self.loop,))
        if problem is not None:
            return problem
        self.events.append(self.planned(event, kind, event.to_stage))
        self.stage = event.to_stage
        self.entered_at = event.at
        return None

    def planned(self, event: EventRecord, kind: str, to_stage: str) -> PlannedEvent:
        return PlannedEvent(
            loop=self.loop,
            from_stage=event.from_stage,
            to_stage=to_stage,
            kind=kind,
            actor=event.actor,
            at=event.at,
            note=event.note,
        )

    def check_record(self) -> list[Problem]:
        """What the requirement says about itself agrees with its log."""
        record = self.record
        problems = []
        if record.created_at is not None and record.created_at != self.events[0].at:
            problems.append(
                record.where.problem("created_at", _("differs from the time of the creation event."))
            )
        if record.outcome and self.closed_at is None:
            problems.append(record.where.problem("outcome", _("an open requirement has no outcome.")))
        if len(record.loops) > len(self.loops):
            extra = record.loops[len(self.loops)]
            problems.append(
                extra.where.problem(
                    "number",
                    _("loop %(number)d was never opened: no iterate leads into it.")
                    % {"number": extra.number},
                )
            )
        return problems


def _with_texts(loop: PlannedLoop, texts: LoopRecord | None) -> PlannedLoop:
    if texts is None:
        return loop
    return PlannedLoop(
        number=loop.number,
        started_at=loop.started_at,
        closed_at=loop.closed_at,
        outcome=loop.outcome,
        conclusion=texts.conclusion,
        verdict=texts.verdict,
    )
