"""Reads for history export and import."""

from __future__ import annotations

from django.db.models import Prefetch

from opsteam.exceptions import NotFound
from roles.models import Team
from workflows.models import IterationLoop, Requirement, StageEvent

from .formats import (
    CHOICE_FIELDS,
    DATE_FIELDS,
    TEXT_FIELDS,
    EventRecord,
    HistoryFile,
    LoopRecord,
    RequirementRecord,
)


def history_for_team(*, team: Team) -> HistoryFile:
    """Every requirement of the team with its loops and their events, oldest key first. The caller has
    checked that the team may be seen. Four queries, however many requirements."""
    events = StageEvent.objects.select_related("actor").order_by("at", "id")
    loops = IterationLoop.objects.order_by("number").prefetch_related(Prefetch("events", queryset=events))
    requirements = (
        Requirement.objects.filter(team_id=team.pk)
        .select_related("created_by")
        .prefetch_related("labels", Prefetch("loops", queryset=loops))
        .order_by("number")
    )
    history = HistoryFile(team_prefix=team.key_prefix, team_name=team.name, time_zone=team.time_zone)
    for requirement in requirements:
        fields: dict[str, object] = {name: getattr(requirement, name) for name in TEXT_FIELDS}
        fields.update({name: getattr(requirement, name) for name in (*CHOICE_FIELDS, *DATE_FIELDS)})
        loop_records = []
        event_records = []
        for loop in requirement.loops.all():
            loop_records.append(
                LoopRecord(number=loop.number, conclusion=loop.conclusion, verdict=loop.verdict)
            )
            event_records += [
                EventRecord(
                    from_stage=event.from_stage,
                    to_stage=event.to_stage,
                    kind=event.kind,
                    actor=event.actor.get_username() if event.actor else "",
                    at=event.at,
                    note=event.note,
                    loop=loop.number,
                )
                for event in loop.events.all()
            ]
        history.requirements.append(
            RequirementRecord(
                number=requirement.number,
                prefix=team.key_prefix,
                fields=fields,
                labels=sorted(label.name for label in requirement.labels.all()),
                created_at=requirement.created_at,
                created_by=requirement.created_by.get_username() if requirement.created_by else None,
                outcome=requirement.outcome,
                loops=loop_records,
                events=event_records,
            )
        )
    return history


def team_for_command(*, value: str) -> Team:
    """A team named on the command line by its key prefix or its id; system work, so not scoped to
    a user. NotFound when there is none."""
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) < 19:
        team = Team.objects.filter(pk=int(value)).first()
    else:
        team = Team.objects.filter(key_prefix=value.upper()).first()
    if team is None:
        raise NotFound()
    return team
