"""Importing a team's history. One transaction: everything is checked before anything is written."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput
from roles.models import Team
from roles.permissions import ensure_may_manage
from workflows.models import IterationLoop, Label, Requirement, Stage, StageEvent
from workflows.reminders import sla_deadlines
from workflows.selectors import workflow_current, workflow_definition
from worktime.hours import CalendarDef
from worktime.selectors import calendar_definition

from . import formats, rules
from .formats import HistoryFile, HistoryRejected, Problem, RequirementRecord

logger = logging.getLogger("opsteam.events")

PLACEHOLDER_PREFIX = "imported."
_USERNAME = re.compile(r"^[\w.@+-]+\Z")
_CHUNK = 500

T = TypeVar("T")


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote (or, in a dry run, would write)."""

    team_id: int
    key_prefix: str
    requirements: int = 0
    loops: int = 0
    events: int = 0
    users_created: int = 0
    skipped: int = 0
    extended: int = 0
    dry_run: bool = False


def placeholder_username(name: str) -> str:
    """The placeholder user that stands for `name`, someone who is not a member of the target team:
    `imported.<name>`, made safe for a username (with a digest of the name when it had to change).
    A name that already is a placeholder's stands for itself, so re-exported history maps back."""
    if name.startswith(PLACEHOLDER_PREFIX) and _USERNAME.match(name) and len(name) <= 150:
        return name
    candidate = PLACEHOLDER_PREFIX + name
    if _USERNAME.match(name) and len(candidate) <= 150:
        return candidate
    safe = re.sub(r"[^\w.@+-]", "_", name)
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{PLACEHOLDER_PREFIX}{safe[: 150 - len(PLACEHOLDER_PREFIX) - 9]}-{digest}"


def is_placeholder(user: User) -> bool:
    return (
        user.get_username().startswith(PLACEHOLDER_PREFIX)
        and not user.is_active
        and not user.has_usable_password()
    )


def history_import(
    *,
    team: Team | None,
    content: bytes,
    actor: User | None,
    file_format: str = "",
    file_name: str = "",
    dry_run: bool = False,
) -> ImportResult:
    """Import a history file into `team` (None: the team the file names; only for system work, with
    `actor=None`). Leads (and system work) only. Raises HistoryRejected listing every problem, in
    which case nothing is written; `dry_run` checks everything and writes nothing.

    Requirements, loops and events are written directly rather than through requirement_transition:
    history from elsewhere holds moves the team's current roles would refuse. The checks in
    `rules.replay` keep what the services would have kept: the requirement's stage, loop and times
    agree with its log. Backdated history notifies nobody."""
    if team is None and actor is not None:
        raise InvalidInput({"team": [_("Choose the team to import into.")]})
    if team is not None:
        ensure_may_manage(user=actor, team=team, message=_("Only the team's leads may import history."))
    history = formats.parse(content, file_format or formats.guess_format(file_name, content))
    with transaction.atomic():
        locked = _lock_team(team, history)
        plan = _Plan(team=locked, history=history)
        plan.check()
        if not dry_run:
            plan.write()
        result = plan.result(dry_run=dry_run)
    if not dry_run:
        transaction.on_commit(lambda: _log(result))
    return result


def _log(result: ImportResult) -> None:
    logger.info(
        "history imported into %s: %d requirements, %d loops, %d events, %d placeholder users, "
        "%d skipped, %d extended",
        result.key_prefix,
        result.requirements,
        result.loops,
        result.events,
        result.users_created,
        result.skipped,
        result.extended,
    )


def _lock_team(team: Team | None, history: HistoryFile) -> Team:
    """The team row lock serialises this import with requirement_create and other imports."""
    if team is not None:
        return Team.objects.select_for_update().get(pk=team.pk)
    if not history.team_prefix:
        raise InvalidInput({"team": [_("The file names no team: choose the team to import into.")]})
    found = Team.objects.select_for_update().filter(key_prefix=history.team_prefix).first()
    if found is None:
        raise InvalidInput(
            {
                "team": [
                    _("No team has the key prefix %(prefix)s: create it first, or choose another team.")
                    % {"prefix": history.team_prefix}
                ]
            }
        )
    return found


def _chunks(values: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass
class _New:
    record: RequirementRecord
    replay: rules.Replay


@dataclass
class _Extension:
    record: RequirementRecord
    replay: rules.Replay
    requirement: Requirement
    known: int  # how many of the replay's events are there already
    loops: dict[int, IterationLoop] = field(default_factory=dict)


class _Plan:
    """What an import will write, worked out (and checked) before anything is."""

    def __init__(self, *, team: Team, history: HistoryFile) -> None:
        self.team = team
        self.history = history
        self.workflow = workflow_current(team=team)
        self.stages = {stage.slug: stage for stage in self.workflow.stages.order_by("order")}
        self.definition = workflow_definition(workflow=self.workflow, stages=list(self.stages.values()))
        self.problems: list[Problem] = []
        self.new: list[_New] = []
        self.extensions: list[_Extension] = []
        self.skipped = 0
        self.users: dict[str, User] = {}
        self.placeholders: list[User] = []
        self.version_stages: dict[int, dict[str, Stage]] = {self.workflow.pk: self.stages}
        self.calendar: CalendarDef | None = None
        self.written = (0, 0, 0)

    # ------------------------------------------------------------------------------------- checking

    def check(self) -> None:
        self.problems = list(self.history.problems)
        replays: list[tuple[RequirementRecord, rules.Replay]] = []
        for record in self.history.requirements:
            replay, problems = rules.replay(record, self.definition)
            self.problems += problems
            if replay is not None:
                replays.append((record, replay))
        self.match_existing(replays)
        self.resolve_users()
        if self.problems:
            raise HistoryRejected(sorted(self.problems, key=_reading_order))

    def key_for(self, record: RequirementRecord) -> str:
        return f"{self.team.key_prefix}-{record.number}"

    def match_existing(self, replays: list[tuple[RequirementRecord, rules.Replay]]) -> None:
        """Requirements already in the team under the same number: the same history is skipped, a
        longer one extends it, a different one refuses the import."""
        wanted = {record.number for record, _replay in replays}
        taken = {
            number: pk
            for number, pk in Requirement.objects.filter(team_id=self.team.pk).values_list("number", "pk")
            if number in wanted
        }
        existing: dict[int, Requirement] = {}
        for chunk in _chunks(sorted(taken.values())):
            # Lock the bare rows in pk order, then read them.
            list(
                Requirement.objects.select_for_update(of=("self",))
                .filter(pk__in=chunk)
                .order_by("pk")
                .values_list("pk")
            )
            for requirement in Requirement.objects.filter(pk__in=chunk).select_related("stage"):
                existing[requirement.number] = requirement
        logs: dict[int, list[tuple[Any, ...]]] = {pk: [] for pk in taken.values()}
        loops: dict[int, dict[int, IterationLoop]] = {pk: {} for pk in taken.values()}
        loop_numbers: dict[int, int] = {}
        for chunk in _chunks(sorted(taken.values())):
            for loop in IterationLoop.objects.filter(requirement_id__in=chunk):
                loops[loop.requirement_id][loop.number] = loop
                loop_numbers[loop.pk] = loop.number
            for event in StageEvent.objects.filter(requirement_id__in=chunk).order_by(
                "requirement_id", "at", "id"
            ):
                logs[event.requirement_id].append(
                    (loop_numbers[event.loop_id], event.from_stage, event.to_stage, event.kind, event.at)
                )
        for record, replay in replays:
            found = existing.get(record.number)
            if found is None:
                self.new.append(_New(record=record, replay=replay))
                continue
            there = logs[found.pk]
            incoming = replay.signatures
            if incoming[: len(there)] == there and len(incoming) > len(there):
                self.extensions.append(
                    _Extension(
                        record=record,
                        replay=replay,
                        requirement=found,
                        known=len(there),
                        loops=loops[found.pk],
                    )
                )
            elif there[: len(incoming)] == incoming:
                self.skipped += 1
            else:
                self.problems.append(self.conflict(record, found))
        self.check_extension_stages()

    def conflict(self, record: RequirementRecord, requirement: Requirement) -> Problem:
        if record.key == requirement.key:
            message = _("%(key)s already exists in this team with a different history.") % {
                "key": requirement.key
            }
        else:
            message = _(
                "%(key)s would be imported as %(target)s, which already exists in this team with a "
                "different history."
            ) % {"key": record.key, "target": requirement.key}
        return record.where.problem("key", message)

    def check_extension_stages(self) -> None:
        """An extended requirement keeps its workflow version: its new stages must be in it."""
        workflow_ids = {e.requirement.workflow_id for e in self.extensions} - {self.workflow.pk}
        by_workflow: dict[int, set[str]] = {self.workflow.pk: set(self.stages)}
        for workflow_id, slug in Stage.objects.filter(workflow_id__in=workflow_ids).values_list(
            "workflow_id", "slug"
        ):
            by_workflow.setdefault(workflow_id, set()).add(slug)
        if workflow_ids:
            for stage in Stage.objects.filter(workflow_id__in=workflow_ids):
                self.version_stages.setdefault(stage.workflow_id, {})[stage.slug] = stage
        for extension in self.extensions:
            slugs = by_workflow.get(extension.requirement.workflow_id, set())
            if extension.replay.stage not in slugs:
                self.problems.append(
                    extension.record.where.problem(
                        "key",
                        _("%(key)s's workflow has no stage “%(slug)s”.")
                        % {"key": extension.requirement.key, "slug": extension.replay.stage},
                    )
                )

    def names(self) -> set[str]:
        """The people the written rows name."""
        names: set[str] = set()
        for new in self.new:
            names.update(event.actor for event in new.replay.events)
            names.add(self.creator_name(new))
        for extension in self.extensions:
            names.update(event.actor for event in extension.replay.events[extension.known :])
        names.discard("")
        return names

    @staticmethod
    def creator_name(new: _New) -> str:
        if new.record.created_by is not None:
            return new.record.created_by
        return new.replay.events[0].actor

    def resolve_users(self) -> None:
        """A name is the member of the target team with that username, or else a placeholder: names
        from a file never reach accounts outside the team."""
        names = self.names()
        user_model = get_user_model()
        members = user_model.objects.filter(username__in=list(names), memberships__team_id=self.team.pk)
        self.users = {user.get_username(): user for user in members}
        wanted = {name: placeholder_username(name) for name in sorted(names - set(self.users))}
        found = {
            user.get_username(): user
            for chunk in _chunks(sorted(set(wanted.values())))
            for user in user_model.objects.filter(username__in=list(chunk))
        }
        for name, username in wanted.items():
            user = found.get(username)
            if user is not None and not is_placeholder(user):
                self.problems.append(
                    Problem(
                        message=_("The placeholder for “%(name)s”, %(username)s, is taken by an account.")
                        % {"name": name, "username": username},
                        field="actor",
                    )
                )
                continue
            if user is None:
                user = user_model(
                    username=username,
                    first_name=name.removeprefix(PLACEHOLDER_PREFIX)[:150],
                    is_active=False,
                )
                user.set_unusable_password()
                found[username] = user
                self.placeholders.append(user)
            self.users[name] = user

    # -------------------------------------------------------------------------------------- writing

    def write(self) -> None:
        self.write_placeholders()
        open_ones = [n for n in self.new if n.replay.closed_at is None] + [
            e for e in self.extensions if e.replay.closed_at is None
        ]
        self.calendar = calendar_definition(team=self.team) if open_ones else None
        requirements = Requirement.objects.bulk_create([self.requirement_for(new) for new in self.new])
        self.write_labels(requirements)

        loops: list[IterationLoop] = []
        owners: list[tuple[int, int]] = []  # (requirement id, loop number) of each new loop
        for requirement, new in zip(requirements, self.new, strict=True):
            for planned in new.replay.loops:
                loops.append(_loop(requirement.pk, planned))
                owners.append((requirement.pk, planned.number))
        for extension in self.extensions:
            for planned in extension.replay.loops:
                loop = extension.loops.get(planned.number)
                if loop is None:
                    loops.append(_loop(extension.requirement.pk, planned))
                    owners.append((extension.requirement.pk, planned.number))
                elif (loop.closed_at, loop.outcome) != (planned.closed_at, planned.outcome):
                    loop.closed_at = planned.closed_at
                    loop.outcome = planned.outcome
                    loop.save(update_fields=["closed_at", "outcome"])
        created_loops = IterationLoop.objects.bulk_create(loops)
        loop_ids = {owner: loop.pk for owner, loop in zip(owners, created_loops, strict=True)}
        for extension in self.extensions:
            for number, loop in extension.loops.items():
                loop_ids[(extension.requirement.pk, number)] = loop.pk

        events: list[StageEvent] = []
        for requirement, new in zip(requirements, self.new, strict=True):
            events += self.events_for(requirement.pk, new.replay.events, 0, loop_ids)
        for extension in self.extensions:
            events += self.events_for(
                extension.requirement.pk, extension.replay.events, extension.known, loop_ids
            )
            self.update_state(extension)
        StageEvent.objects.bulk_create(events)
        self.written = (len(requirements), len(created_loops), len(events))

    def write_placeholders(self) -> None:
        """An import into another team may be making the same placeholder at this moment (the team
        lock does not cover it): the one that is there is used."""
        if not self.placeholders:
            return
        user_model = get_user_model()
        user_model.objects.bulk_create(self.placeholders, ignore_conflicts=True)
        usernames = sorted({user.get_username() for user in self.placeholders})
        saved = {
            user.get_username(): user
            for chunk in _chunks(usernames)
            for user in user_model.objects.filter(username__in=list(chunk))
        }
        for name, user in self.users.items():
            if user.pk is None:
                self.users[name] = saved[user.get_username()]

    def requirement_for(self, new: _New) -> Requirement:
        record, replay = new.record, new.replay
        requirement = Requirement(
            team=self.team,
            workflow=self.workflow,
            number=record.number,
            key=self.key_for(record),
            stage=self.stages[replay.stage],
            loop_number=replay.loop_number,
            stage_entered_at=replay.stage_entered_at,
            created_at=replay.created_at,
            created_by=self.users.get(self.creator_name(new)),
            closed_at=replay.closed_at,
            outcome=record.outcome,
            **record.fields,
        )
        self.set_sla(requirement, replay, self.stages)
        return requirement

    def set_sla(self, requirement: Requirement, replay: rules.Replay, stages: dict[str, Stage]) -> None:
        """As reminders.set_sla, with the team's calendar read once for the whole import."""
        due = escalate = None
        if replay.closed_at is None:
            due, escalate = sla_deadlines(
                team=self.team,
                stage=stages[replay.stage],
                entered_at=replay.stage_entered_at,
                calendar=self.calendar,
            )
        requirement.sla_due_at = due
        requirement.sla_escalate_at = escalate
        requirement.sla_next_at = due

    def update_state(self, extension: _Extension) -> None:
        requirement, replay = extension.requirement, extension.replay
        stages = self.version_stages[requirement.workflow_id]
        requirement.stage = stages[replay.stage]
        requirement.stage_entered_at = replay.stage_entered_at
        requirement.loop_number = replay.loop_number
        requirement.closed_at = replay.closed_at
        if replay.closed_at is not None:
            requirement.outcome = extension.record.outcome
        self.set_sla(requirement, replay, stages)
        requirement.save(
            update_fields=[
                "stage",
                "stage_entered_at",
                "loop_number",
                "closed_at",
                "outcome",
                "sla_due_at",
                "sla_escalate_at",
                "sla_next_at",
                "updated_at",
            ]
        )

    def events_for(
        self,
        requirement_id: int,
        replayed: Sequence[rules.PlannedEvent],
        first: int,
        loop_ids: dict[Any, int],
    ) -> list[StageEvent]:
        """The rows of a replayed log's events from index `first` on (the ones before are already
        there); each one's visit began at the event before it in the log."""
        return [
            StageEvent(
                requirement_id=requirement_id,
                loop_id=loop_ids[(requirement_id, planned.loop)],
                from_stage=planned.from_stage,
                to_stage=planned.to_stage,
                kind=planned.kind,
                actor=self.users.get(planned.actor),
                at=planned.at,
                since=replayed[index - 1].at if index else None,
                note=planned.note,
            )
            for index, planned in enumerate(replayed[first:], start=first)
        ]

    def write_labels(self, requirements: Iterable[Requirement]) -> None:
        wanted = sorted({name for new in self.new for name in new.record.labels})
        if not wanted:
            return
        # ignore_conflicts: a label someone adds meanwhile is simply there.
        Label.objects.bulk_create(
            [Label(team=self.team, name=name) for name in wanted], ignore_conflicts=True
        )
        labels = {
            label.name: label.pk
            for chunk in _chunks(wanted)
            for label in Label.objects.filter(team_id=self.team.pk, name__in=list(chunk))
        }
        through = Requirement.labels.through
        through.objects.bulk_create(
            through(requirement_id=requirement.pk, label_id=labels[name])
            for requirement, new in zip(requirements, self.new, strict=True)
            for name in new.record.labels
        )

    def result(self, *, dry_run: bool) -> ImportResult:
        if dry_run:
            written = (
                len(self.new),
                sum(len(n.replay.loops) for n in self.new)
                + sum(len(e.replay.loops) - len(e.loops) for e in self.extensions),
                sum(len(n.replay.events) for n in self.new)
                + sum(len(e.replay.events) - e.known for e in self.extensions),
            )
        else:
            written = self.written
        return ImportResult(
            team_id=self.team.pk,
            key_prefix=self.team.key_prefix,
            requirements=written[0],
            loops=written[1],
            events=written[2],
            users_created=len(self.placeholders),
            skipped=self.skipped,
            extended=len(self.extensions),
            dry_run=dry_run,
        )


def _reading_order(problem: Problem) -> tuple[bool, int, int]:
    """CSV problems by line, then column; JSON ones (no line) in the order found."""
    columns = formats.CSV_COLUMNS
    column = columns.index(problem.field) if problem.field in columns else len(columns)
    return (problem.line is None, problem.line or 0, column if problem.line is not None else 0)


def _loop(requirement_id: int, planned: rules.PlannedLoop) -> IterationLoop:
    return IterationLoop(
        requirement_id=requirement_id,
        number=planned.number,
        started_at=planned.started_at,
        closed_at=planned.closed_at,
        outcome=planned.outcome,
        conclusion=planned.conclusion,
        verdict=planned.verdict,
    )
