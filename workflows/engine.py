"""The transition rules, as pure functions over a workflow definition. No queries here: the services
load the definition and the requirement's fields, ask the engine, then write what it decided."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _

from opsteam.exceptions import (
    InvalidInput,
    NoSuchTransition,
    RequiredFieldMissing,
    RequirementClosed,
    RoleNotAllowed,
    UnknownStage,
)

LEAD = "lead"
ITERATE = "iterate"
CLOSE = "close"
LOOP_EXITS = (ITERATE, CLOSE)

# The fields a transition may require, with the words an error uses for each.
FIELD_LABELS: dict[str, Any] = {
    "title": _("A title"),
    "hypothesis": _("A hypothesis"),
    "target_metric": _("A target metric"),
    "aarrr_stage": _("An AARRR stage"),
    "design": _("A design or spec"),
    "launch_date": _("A launch date"),
    "assignee": _("An assignee"),
    "due_date": _("A due date"),
    "description": _("A description"),
    "conclusion": _("An analysis conclusion"),
    "verdict": _("A verdict (improved / flat / worse)"),
    "tracking_plan": _("A verified tracking plan"),
}
GUARD_FIELDS = frozenset(FIELD_LABELS)
# Guards whose refusal reads better as its own sentence than as "<label> must be set".
FIELD_MESSAGES: dict[str, Any] = {
    "tracking_plan": _(
        "The tracking plan needs at least one event, and every event verified, before this move."
    ),
}


@dataclass(frozen=True)
class StageDef:
    slug: str
    name: str
    order: int
    owner_roles: frozenset[str] = frozenset()
    sla_hours: int | None = None


@dataclass(frozen=True)
class TransitionDef:
    """`to_stage` is the target slug; for iterate it is the stage the next loop opens at, for close None."""

    from_stage: str
    to_stage: str | None
    kind: str  # forward / rework / iterate / close
    allowed_roles: frozenset[str] = frozenset()
    required_fields: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """What a caller names to make this move: a stage slug, or iterate / close."""
        if self.kind in LOOP_EXITS:
            return self.kind
        assert self.to_stage is not None
        return self.to_stage


@dataclass(frozen=True)
class WorkflowDef:
    stages: tuple[StageDef, ...]
    transitions: tuple[TransitionDef, ...] = field(default=())

    def stage(self, slug: str) -> StageDef:
        for stage in self.stages:
            if stage.slug == slug:
                return stage
        raise UnknownStage(slug)

    @property
    def first_stage(self) -> StageDef:
        return min(self.stages, key=lambda s: s.order)

    def transition(self, from_stage: str, target: str) -> TransitionDef | None:
        for transition in self.transitions:
            if transition.from_stage == from_stage and transition.target == target:
                return transition
        return None

    def is_target(self, target: str) -> bool:
        return target in LOOP_EXITS or any(stage.slug == target for stage in self.stages)


@dataclass(frozen=True)
class Move:
    """What a transition does, as the engine decided it."""

    from_stage: str
    to_stage: str | None  # the stage the requirement is in afterwards; None when the requirement closes
    kind: str  # the event kind: forward / rework / override / iterate / close
    closes_loop: bool = False
    opens_loop: bool = False


@dataclass(frozen=True)
class Option:
    """One move the UI or API may offer, allowed or with the reason it is not."""

    target: str
    kind: str
    allowed: bool
    reason: str = ""
    missing_fields: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()  # when refused for the role: the roles that may make it


def _missing(required: tuple[str, ...], fields: Mapping[str, Any]) -> list[str]:
    return [name for name in required if fields.get(name) in (None, "", [], (), False)]


def decide(
    workflow: WorkflowDef,
    *,
    current: str,
    target: str,
    roles: frozenset[str],
    fields: Mapping[str, Any],
    closed: bool = False,
) -> Move:
    """Allow the move and say what it does, or raise the precise reason it is refused."""
    if closed:
        raise RequirementClosed()
    workflow.stage(current)  # unknown current stage is a data error worth naming
    if not workflow.is_target(target):
        raise UnknownStage(target)
    if target == current:
        raise NoSuchTransition(current, target)

    transition = workflow.transition(current, target)
    if transition is not None and roles & transition.allowed_roles:
        missing = _missing(transition.required_fields, fields)
        if not missing:
            return _move(workflow, current, target, transition.kind)
        if LEAD not in roles:
            raise RequiredFieldMissing(
                missing[0], str(FIELD_LABELS.get(missing[0], missing[0])), FIELD_MESSAGES.get(missing[0])
            )
    if LEAD in roles:
        # A lead may make any move: skip stages, go back, close or iterate from anywhere.
        kind = target if target in LOOP_EXITS else "override"
        return _move(workflow, current, target, kind)
    if transition is None:
        # Any other move is a lead's override: name the role that may make it.
        raise RoleNotAllowed({LEAD})
    raise RoleNotAllowed(transition.allowed_roles | {LEAD})


def _move(workflow: WorkflowDef, current: str, target: str, kind: str) -> Move:
    if target == ITERATE:
        return Move(current, workflow.first_stage.slug, ITERATE, closes_loop=True, opens_loop=True)
    if target == CLOSE:
        return Move(current, None, CLOSE, closes_loop=True)
    return Move(current, target, kind)


def options(
    workflow: WorkflowDef,
    *,
    current: str,
    roles: frozenset[str],
    fields: Mapping[str, Any],
    closed: bool = False,
) -> list[Option]:
    """Every move defined from the current stage, plus (for leads) every other stage and exit, each
    marked allowed or with the reason it is not."""
    if closed:
        return []
    targets: list[tuple[str, str]] = [
        (t.target, t.kind) for t in workflow.transitions if t.from_stage == current
    ]
    if LEAD in roles:
        known = {target for target, _kind in targets}
        for stage in sorted(workflow.stages, key=lambda s: s.order):
            if stage.slug != current and stage.slug not in known:
                targets.append((stage.slug, "override"))
        for exit_kind in LOOP_EXITS:
            if exit_kind not in known:
                targets.append((exit_kind, exit_kind))
    result = []
    for target, kind in targets:
        try:
            move = decide(workflow, current=current, target=target, roles=roles, fields=fields)
        except RequiredFieldMissing as exc:
            result.append(Option(target, kind, False, str(exc.message), (str(exc.field),)))
        except RoleNotAllowed as exc:
            result.append(Option(target, kind, False, str(exc.message), roles=exc.allowed_roles))
        except NoSuchTransition as exc:
            result.append(Option(target, kind, False, str(exc.message)))
        else:
            result.append(Option(target, move.kind, True))
    return result


# Tracking plan events move planned → implemented → verified; any of them may go back to planned.
TRACKING_STATUSES = ("planned", "implemented", "verified")
TRACKING_STATUS_LABELS: dict[str, Any] = {
    "planned": _("planned"),
    "implemented": _("implemented"),
    "verified": _("verified"),
}
TRACKING_STATUS_ROLES: dict[tuple[str, str], frozenset[str]] = {
    ("planned", "implemented"): frozenset({"engineer", "analyst", LEAD}),
    ("implemented", "verified"): frozenset({"analyst", LEAD}),
    ("implemented", "planned"): frozenset({"engineer", "analyst", LEAD}),
    ("verified", "planned"): frozenset({"analyst", LEAD}),
    ("verified", "implemented"): frozenset({"analyst", LEAD}),
}


def check_tracking_status(*, current: str, target: str, roles: frozenset[str]) -> None:
    """Allow a tracking event's status change or raise why not."""
    if target not in TRACKING_STATUSES:
        raise InvalidInput(
            {"status": [_("Choose a status: %(choices)s.") % {"choices": ", ".join(TRACKING_STATUSES)}]}
        )
    if target == current:
        raise InvalidInput(
            {"status": [_("The event is already %(status)s.") % {"status": TRACKING_STATUS_LABELS[target]}]}
        )
    allowed = TRACKING_STATUS_ROLES.get((current, target))
    if allowed is None:
        raise InvalidInput(
            {
                "status": [
                    _("An event goes from %(from)s to %(to)s only through the steps between.")
                    % {
                        "from": TRACKING_STATUS_LABELS.get(current, current),
                        "to": TRACKING_STATUS_LABELS[target],
                    }
                ]
            }
        )
    if not roles & allowed:
        raise RoleNotAllowed(allowed)
