"""Writes for workflows and requirements. Keyword-only arguments, one transaction each."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from opsteam.exceptions import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    NotPermitted,
    RequirementClosed,
    RoleNotAllowed,
)
from roles import services as role_services
from roles.models import ALL_ROLES, AuditAction, Membership, Team
from roles.permissions import ensure_may_manage, roles_for
from worktime import services as calendar_services

from . import engine, reminders
from .defaults import DEFAULT_STAGES, DEFAULT_TRANSITIONS, DEFAULT_WORKFLOW_NAME
from .models import (
    Comment,
    EventKind,
    IterationLoop,
    Label,
    LoopOutcome,
    Outcome,
    Requirement,
    Stage,
    StageEvent,
    TrackingEvent,
    Transition,
    Verdict,
    Workflow,
)
from .selectors import (
    SINCE_DISAGREES,
    event_since_expected_sql,
    requirement_current_loop,
    requirement_get_for_user,
    requirement_guard_fields_for_move,
    requirement_lock_for_move,
    workflow_current,
    workflow_definition,
    workflow_stages_and_transitions,
)

logger = logging.getLogger("opsteam.events")

# Fields a requirement's create/update may set directly.
EDITABLE_FIELDS = (
    "title",
    "description",
    "hypothesis",
    "target_metric",
    "aarrr_stage",
    "priority",
    "incident_kind",
    "work_type",
    "due_date",
    "launch_date",
    "design",
    "resources_people",
    "resources_budget",
    "resources_other",
)

# Upper bounds for the long text fields (the short ones are bounded by their columns).
TEXT_LIMITS = {"description": 20_000, "hypothesis": 5_000, "design": 10_000, "resources_other": 5_000}
NOTE_LIMIT = 10_000
COMMENT_LIMIT = 10_000


# ---------------------------------------------------------------------------------------------- teams


def team_setup(*, name: str, key_prefix: str, creator: User, time_zone: str = "") -> Team:
    """Create a team, make the creator its lead, and give it the default workflow."""
    with transaction.atomic():
        team = role_services.team_create(
            name=name, key_prefix=key_prefix, creator=creator, time_zone=time_zone
        )
        workflow_create_default(team=team, actor=creator)
        # The working-hours calendar starts off (SLAs in calendar time) but ready: China's official
        # holidays and make-up workdays from last year on are loaded as editable rows.
        calendar_services.calendar_create(team=team)
        calendar_services.calendar_load_china(team=team, years=range(timezone.now().year - 1, 3000))
        # Apps above this one give new teams their starting data (the data loop's metric catalogue)
        # without this app importing them.
        for hook in settings.OPSTEAM_TEAM_SETUP_HOOKS:
            import_string(hook)(team=team)
    return team


# ------------------------------------------------------------------------------------------ workflows


def workflow_create_default(*, team: Team, actor: User | None = None) -> Workflow:
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)
        if Workflow.objects.filter(team=team).exists():
            raise InvalidInput({"workflow": [_("This team already has a workflow.")]})
        workflow = Workflow.objects.create(
            team=team, name=DEFAULT_WORKFLOW_NAME, version=1, is_current=True, created_by=actor
        )
        stages = {
            slug: Stage.objects.create(
                workflow=workflow, slug=slug, name=name, order=order, owner_roles=owners, sla_hours=sla
            )
            for order, (slug, name, owners, sla) in enumerate(DEFAULT_STAGES, start=1)
        }
        Transition.objects.bulk_create(
            Transition(
                workflow=workflow,
                from_stage=stages[from_slug],
                to_stage=stages[to_slug] if to_slug else None,
                kind=kind,
                allowed_roles=roles,
                required_fields=required,
            )
            for from_slug, to_slug, kind, roles, required in DEFAULT_TRANSITIONS
        )
    return workflow


def workflow_new_version(
    *,
    team_id: int,
    actor: User,
    stages: Mapping[str, Mapping[str, Any]] | None = None,
    transitions: Iterable[Mapping[str, Any]] | None = None,
) -> Workflow:
    """Copy the current workflow into a new version with the given changes and make it current.

    `stages` maps a stage slug to changes of name, sla_hours and owner_roles; `transitions` lists
    changes of allowed_roles / required_fields, each naming its move by `from` and `to` (a stage slug,
    or iterate / close). Requirements already under way keep their version."""
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(pk=team_id).first()
        if team is None:
            raise NotFound()
        ensure_may_manage(user=actor, team=team, message=_("Only the team's leads may change its workflow."))
        current = workflow_current(team=team)
        definition = workflow_definition(workflow=current)
        errors: dict[str, list[str]] = {}
        try:
            stage_changes = _clean_stage_changes(definition, stages or {})
        except InvalidInput as exc:
            errors.update(exc.errors)
        try:
            transition_changes = _clean_transition_changes(definition, transitions or [])
        except InvalidInput as exc:
            errors.update(exc.errors)
        if errors:
            raise InvalidInput(errors)

        Workflow.objects.filter(pk=current.pk).update(is_current=False)
        new = Workflow.objects.create(
            team=team, name=current.name, version=current.version + 1, is_current=True, created_by=actor
        )
        new_stages: dict[str, Stage] = {}
        for stage in definition.stages:
            change = stage_changes.get(stage.slug, {})
            new_stages[stage.slug] = Stage.objects.create(
                workflow=new,
                slug=stage.slug,
                name=change.get("name", stage.name),
                order=stage.order,
                owner_roles=sorted(change.get("owner_roles", stage.owner_roles)),
                sla_hours=change.get("sla_hours", stage.sla_hours),
            )
        Transition.objects.bulk_create(
            Transition(
                workflow=new,
                from_stage=new_stages[t.from_stage],
                to_stage=new_stages[t.to_stage] if t.to_stage else None,
                kind=t.kind,
                allowed_roles=sorted(
                    transition_changes.get((t.from_stage, t.target), {}).get("allowed_roles", t.allowed_roles)
                ),
                required_fields=list(
                    transition_changes.get((t.from_stage, t.target), {}).get(
                        "required_fields", t.required_fields
                    )
                ),
            )
            for t in definition.transitions
        )
    return new


def _clean_stage_changes(
    definition: engine.WorkflowDef, stages: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, dict[str, Any]] = {}
    known = {stage.slug for stage in definition.stages}
    for slug, change in stages.items():
        if slug not in known:
            errors.setdefault("stages", []).append(_("Unknown stage “%(slug)s”.") % {"slug": slug})
            continue
        item: dict[str, Any] = {}
        if "name" in change:
            name = str(change["name"] or "").strip()
            if not name or len(name) > 64:
                errors.setdefault("stages", []).append(
                    _("%(slug)s: a name of 1 to 64 characters.") % {"slug": slug}
                )
            item["name"] = name
        if "sla_hours" in change:
            sla = change["sla_hours"]
            if sla is not None and (
                not isinstance(sla, int) or isinstance(sla, bool) or not 1 <= sla <= 24 * 365
            ):
                errors.setdefault("stages", []).append(
                    _("%(slug)s: the SLA is a whole number of hours from 1 to 8760, or empty.")
                    % {"slug": slug}
                )
            item["sla_hours"] = sla
        if "owner_roles" in change:
            owners = frozenset(change["owner_roles"] or [])
            if not owners or owners - ALL_ROLES:
                errors.setdefault("stages", []).append(
                    _("%(slug)s: owner roles must be known roles.") % {"slug": slug}
                )
            item["owner_roles"] = owners
        cleaned[slug] = item
    if errors:
        raise InvalidInput(errors)
    return cleaned


def _clean_transition_changes(
    definition: engine.WorkflowDef, transitions: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    errors: list[str] = []
    cleaned: dict[tuple[str, str], dict[str, Any]] = {}
    for change in transitions:
        pair = (str(change.get("from", "")), str(change.get("to", "")))
        if definition.transition(*pair) is None:
            errors.append(
                _("There is no transition from %(from)s to %(to)s.") % {"from": pair[0], "to": pair[1]}
            )
            continue
        item: dict[str, Any] = {}
        if "allowed_roles" in change:
            allowed = frozenset(change["allowed_roles"] or [])
            if not allowed or allowed - ALL_ROLES:
                errors.append(
                    _("%(from)s → %(to)s: roles must be known roles.") % {"from": pair[0], "to": pair[1]}
                )
            item["allowed_roles"] = allowed
        if "required_fields" in change:
            required = list(change["required_fields"] or [])
            unknown = [name for name in required if name not in engine.GUARD_FIELDS]
            if unknown:
                errors.append(
                    _("Unknown required field: %(names)s.") % {"names": ", ".join(map(str, unknown))}
                )
            item["required_fields"] = required
        cleaned[pair] = item
    if errors:
        raise InvalidInput({"transitions": errors})
    return cleaned


# ---------------------------------------------------------------------------------------- requirements


def _check_member(*, actor: User, team: Team) -> frozenset[str]:
    roles = roles_for(user=actor, team=team)
    if not roles:
        if actor.is_staff:
            raise NotPermitted(_("Only members of the team may change its requirements."))
        raise NotFound()
    return roles


def _team_user_ids(team: Team, user_ids: Iterable[int]) -> set[int]:
    return set(
        Membership.objects.filter(team=team, user_id__in=list(user_ids)).values_list("user_id", flat=True)
    )


def _apply_fields(requirement: Requirement, fields: Mapping[str, Any], team: Team) -> tuple[list[str], dict]:
    """Set plain fields and check references; return the changed field names and the m2m values."""
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS) - {"assignee", "watchers", "labels"})
    if unknown:
        raise InvalidInput({name: [_("This field cannot be set.")] for name in unknown})
    changed: list[str] = []
    errors: dict[str, list[str]] = {}
    for name in EDITABLE_FIELDS:
        if name in fields:
            value = fields[name]
            if value is None and name not in ("due_date", "launch_date", "resources_budget"):
                value = ""
            if isinstance(value, str) and name != "description":
                value = value.strip()
            if isinstance(value, str) and len(value) > TEXT_LIMITS.get(name, 10**9):
                errors[name] = [_("At most %(n)d characters.") % {"n": TEXT_LIMITS[name]}]
            if name == "resources_budget":
                value = _decimal_or_none(value, errors)
            setattr(requirement, name, value)
            changed.append(name)
    m2m: dict[str, Any] = {}
    if "assignee" in fields:
        assignee = fields["assignee"]
        assignee_id = getattr(assignee, "pk", assignee)
        if assignee_id is not None and not _team_user_ids(team, [assignee_id]):
            errors["assignee"] = [_("The assignee must be a member of the team.")]
        requirement.assignee_id = assignee_id
        changed.append("assignee")
    if "watchers" in fields:
        ids = {getattr(w, "pk", w) for w in fields["watchers"] or []}
        if ids - _team_user_ids(team, ids):
            errors["watchers"] = [_("Watchers must be members of the team.")]
        m2m["watchers"] = ids
    if "labels" in fields:
        names = [str(n).strip() for n in fields["labels"] or []]
        if any(not n or len(n) > 50 for n in names):
            errors["labels"] = [_("A label is 1 to 50 characters.")]
        m2m["labels"] = sorted(set(names))
    try:
        requirement.full_clean(
            exclude=[
                "team",
                "workflow",
                "stage",
                "number",
                "key",
                "stage_entered_at",
                "created_at",
                "created_by",
            ],
            validate_unique=False,
            validate_constraints=False,
        )
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise InvalidInput(errors)
    return changed, m2m


def _decimal_or_none(value: Any, errors: dict[str, list[str]]) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        errors["resources_budget"] = [_("Enter a number.")]
        return None


def _save_m2m(requirement: Requirement, m2m: Mapping[str, Any]) -> None:
    if "watchers" in m2m:
        requirement.watchers.set(m2m["watchers"])
    if "labels" in m2m:
        labels = []
        for name in m2m["labels"]:
            label, _created = Label.objects.get_or_create(team_id=requirement.team_id, name=name)
            labels.append(label)
        requirement.labels.set(labels)


def requirement_create(
    *,
    team: Team,
    actor: User | None,
    title: str,
    at: dt.datetime | None = None,
    origin: str = "",
    note: str = "",
    **fields: Any,
) -> Requirement:
    """Open a requirement in the first stage of the team's current workflow, loop 1. Any member may
    propose. `at` backdates it (demo data and imports); by default it is now. With no actor, the
    requirement is opened by opsteam itself and `origin` names what opened it (e.g. "watch:12"); the
    creation event records both."""
    live = at is None  # backdated history (demo data, imports) notifies nobody
    at = at or timezone.now()
    if actor is not None:
        _check_member(actor=actor, team=team)
    elif not origin:
        raise InvalidInput({"origin": [_("A requirement opened by opsteam itself needs an origin.")]})
    requirement = Requirement(team=team, title=title, created_by=actor, created_at=at, stage_entered_at=at)
    _changed, m2m = _apply_fields(requirement, {"title": title, **fields}, team)
    with transaction.atomic():
        # The team row lock serialises key allocation: numbers are dense and never reused.
        locked_team = Team.objects.select_for_update().get(pk=team.pk)
        workflow = workflow_current(team=locked_team)
        first = workflow.stages.order_by("order")[0]
        last = Requirement.objects.filter(team=locked_team).aggregate(n=Max("number"))["n"] or 0
        requirement.workflow = workflow
        requirement.stage = first
        requirement.number = last + 1
        requirement.key = f"{locked_team.key_prefix}-{requirement.number}"
        reminders.set_sla(requirement, stage=first, entered_at=at)
        requirement.save()
        _save_m2m(requirement, m2m)
        loop = IterationLoop.objects.create(requirement=requirement, number=1, started_at=at)
        event = StageEvent.objects.create(
            requirement=requirement,
            loop=loop,
            from_stage="",
            to_stage=first.slug,
            kind=EventKind.CREATE,
            actor=actor,
            at=at,
            origin=origin,
            note=note,
        )
        if live and actor is not None:
            reminders.notify_stage_entered(requirement=requirement, stage=first, actor=actor)
        _log_on_commit(event, requirement.key)
    return requirement


def requirement_update(*, requirement_id: int, actor: User, **fields: Any) -> Requirement:
    """Change fields of a requirement (not its stage: that is requirement_transition)."""
    with transaction.atomic():
        requirement = requirement_get_for_user(user=actor, requirement_id=requirement_id, lock=True)
        _check_member(actor=actor, team=requirement.team)
        assignee_before = requirement.assignee_id
        changed, m2m = _apply_fields(requirement, fields, requirement.team)
        if changed:
            requirement.save(update_fields=[*changed, "updated_at"])
        _save_m2m(requirement, m2m)
        if requirement.assignee_id != assignee_before:
            reminders.notify_assigned(requirement=requirement, actor=actor)
    return requirement


def requirement_transition(
    *,
    requirement_id: int | None = None,
    key: str | None = None,
    actor: User,
    from_stage: str,
    to_stage: str,
    note: str = "",
    outcome: str = "",
    at: dt.datetime | None = None,
) -> StageEvent:
    """Move a requirement. `from_stage` is the stage the user saw; if the requirement has moved since,
    Conflict is raised and nothing changes. `to_stage` is a stage slug, or iterate / close out of a loop.
    Exactly one of two racing callers wins: the row lock serialises them and the loser sees the new stage.
    The requirement is named by its id or its key; the returned event's `requirement` is the requirement
    as it is after the move, with its team, workflow and stage."""
    if to_stage == engine.CLOSE and outcome not in Outcome.values:
        raise InvalidInput(
            {"outcome": [_("Choose an outcome: %(choices)s.") % {"choices": ", ".join(Outcome.values)}]}
        )
    if to_stage != engine.CLOSE and outcome:
        raise InvalidInput({"outcome": [_("An outcome is chosen only when closing.")]})
    if len(note) > NOTE_LIMIT:
        raise InvalidInput({"note": [_("At most %(n)d characters.") % {"n": NOTE_LIMIT}]})
    with transaction.atomic():
        requirement, roles = requirement_lock_for_move(user=actor, requirement_id=requirement_id, key=key)
        if requirement.is_closed:
            raise RequirementClosed(requirement.key)
        stage_list, transitions = workflow_stages_and_transitions(requirement=requirement)
        stages = {stage.pk: stage for stage in stage_list}
        requirement.stage = stages[requirement.stage_id]
        if requirement.stage.slug != from_stage:
            last = (
                StageEvent.objects.filter(requirement=requirement)
                .select_related("actor")
                .order_by("-at", "-id")
                .first()
            )
            raise Conflict(
                expected=from_stage,
                current=requirement.stage.slug,
                moved_by=str(last.actor) if last and last.actor else "",
                key=requirement.key,
            )
        live = at is None
        at = at or timezone.now()
        if at < requirement.stage_entered_at:
            raise InvalidInput({"at": [_("A transition cannot precede the one before it.")]})
        definition = workflow_definition(
            workflow=requirement.workflow, stages=stage_list, transitions=transitions
        )
        if not roles:
            raise RoleNotAllowed(_allowed_roles_for(definition, from_stage, to_stage))
        fields = requirement_guard_fields_for_move(
            requirement=requirement, definition=definition, current=from_stage, target=to_stage
        )
        move = engine.decide(definition, current=from_stage, target=to_stage, roles=roles, fields=fields)
        if _is_lead_override(definition, current=from_stage, target=to_stage, roles=roles, fields=fields):
            role_services.audit_record(
                team_id=requirement.team_id,
                actor=actor,
                action=AuditAction.LEAD_OVERRIDE,
                target=requirement.key,
                details={"from_stage": from_stage, "to_stage": to_stage, "note": note[:500]},
            )
        loop_id = requirement.current_loop_id  # type: ignore[attr-defined]
        event = StageEvent.objects.create(
            requirement=requirement,
            loop_id=loop_id,
            from_stage=move.from_stage,
            to_stage=move.to_stage or "",
            kind=move.kind,
            actor=actor,
            at=at,
            since=requirement.stage_entered_at,
            note=note,
        )
        if move.closes_loop:
            IterationLoop.objects.filter(pk=loop_id).update(
                closed_at=at, outcome=LoopOutcome.ITERATE if move.opens_loop else LoopOutcome.CLOSE
            )
        changed = ["updated_at"]
        if move.opens_loop:
            IterationLoop.objects.create(
                requirement=requirement, number=requirement.loop_number + 1, started_at=at
            )
            requirement.loop_number += 1
            changed.append("loop_number")
        # The team's working-hours calendar is read only when it is on (the lock's query says).
        calendar = reminders.CALENDAR_UNREAD if requirement.calendar_on else None  # type: ignore[attr-defined]
        if move.to_stage is None:
            requirement.closed_at = at
            requirement.outcome = outcome
            changed += ["closed_at", "outcome", *reminders.set_sla(requirement, stage=None, entered_at=at)]
        else:
            requirement.stage = next(stage for stage in stages.values() if stage.slug == move.to_stage)
            requirement.stage_entered_at = at
            changed += ["stage", "stage_entered_at"]
            changed += reminders.set_sla(
                requirement, stage=requirement.stage, entered_at=at, calendar=calendar
            )
        requirement.save(update_fields=changed)
        if live and move.to_stage is not None:
            reminders.notify_stage_entered(
                requirement=requirement,
                stage=requirement.stage,
                actor=actor,
                webhooks=None if requirement.webhooks_on else [],  # type: ignore[attr-defined]
            )
        _log_on_commit(event, requirement.key)
    return event


def _is_lead_override(
    definition: engine.WorkflowDef,
    *,
    current: str,
    target: str,
    roles: frozenset[str],
    fields: Mapping[str, Any],
) -> bool:
    """A lead's move that the actor's other roles would not allow: the lead acted in place of the role
    that owns the stage (skipped a stage, went back, closed early or past a missing field)."""
    if engine.LEAD not in roles:
        return False
    try:
        engine.decide(definition, current=current, target=target, roles=roles - {engine.LEAD}, fields=fields)
    except DomainError:
        return True
    return False


def _allowed_roles_for(definition: engine.WorkflowDef, from_stage: str, target: str) -> frozenset[str]:
    transition = definition.transition(from_stage, target)
    return (transition.allowed_roles if transition else frozenset()) | {engine.LEAD}


def loop_record_analysis(
    *,
    requirement_id: int,
    actor: User,
    conclusion: str,
    verdict: str,
    core_metric_moved: bool | None = None,
    behaviour_moved: bool | None = None,
    feedback_positive: bool | None = None,
    metric_name: str = "",
    metric_before: Decimal | None = None,
    metric_after: Decimal | None = None,
) -> IterationLoop:
    """Write the analysis conclusion of the requirement's current loop (analysts and leads): the text,
    the verdict, the three checks, and the target metric's values around the launch date as the caller
    read them (dataloop.services.conclusion_record reads them from the observations)."""
    errors: dict[str, list[str]] = {}
    if not (conclusion or "").strip():
        errors["conclusion"] = [_("Write the conclusion.")]
    elif len(conclusion) > TEXT_LIMITS["description"]:
        errors["conclusion"] = [_("At most %(n)d characters.") % {"n": TEXT_LIMITS["description"]}]
    if verdict not in Verdict.values:
        errors["verdict"] = [_("Choose a verdict: %(choices)s.") % {"choices": ", ".join(Verdict.values)}]
    for name, value in (
        ("core_metric_moved", core_metric_moved),
        ("behaviour_moved", behaviour_moved),
        ("feedback_positive", feedback_positive),
    ):
        if value is None:
            errors[name] = [_("Answer yes or no.")]
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        requirement = requirement_get_for_user(user=actor, requirement_id=requirement_id, lock=True)
        roles = _check_member(actor=actor, team=requirement.team)
        if not roles & {"analyst", "lead"}:
            raise RoleNotAllowed({"analyst", "lead"})
        if requirement.is_closed:
            raise RequirementClosed(requirement.key)
        loop = requirement_current_loop(requirement=requirement)
        loop.conclusion = conclusion.strip()
        loop.verdict = verdict
        loop.core_metric_moved = core_metric_moved
        loop.behaviour_moved = behaviour_moved
        loop.feedback_positive = feedback_positive
        loop.metric_name = metric_name[:100]
        loop.metric_before = metric_before
        loop.metric_after = metric_after
        loop.analyzed_by = actor
        loop.analyzed_at = timezone.now()
        loop.save(
            update_fields=[
                "conclusion",
                "verdict",
                "core_metric_moved",
                "behaviour_moved",
                "feedback_positive",
                "metric_name",
                "metric_before",
                "metric_after",
                "analyzed_by",
                "analyzed_at",
            ]
        )
    return loop


# ------------------------------------------------------------------------------------ tracking plans

TRACKING_EDITORS = frozenset({"pm", "engineer", "analyst", "lead"})
TRACKING_PROPERTY_LIMIT = 50


def _clean_tracking_fields(
    fields: Mapping[str, Any], team: Team, *, partial: bool
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(fields) - {"name", "trigger", "properties", "owner"})
    if unknown:
        errors["detail"] = [_("Unknown fields: %(names)s.") % {"names": ", ".join(unknown)}]
    if "name" in fields or not partial:
        name = str(fields.get("name") or "").strip()
        if not name:
            errors["name"] = [_("Name the event.")]
        elif len(name) > 100:
            errors["name"] = [_("At most %(n)d characters.") % {"n": 100}]
        cleaned["name"] = name
    if "trigger" in fields or not partial:
        trigger = str(fields.get("trigger") or "").strip()
        if not trigger:
            errors["trigger"] = [_("Say when the event is logged.")]
        elif len(trigger) > 300:
            errors["trigger"] = [_("At most %(n)d characters.") % {"n": 300}]
        cleaned["trigger"] = trigger
    if "properties" in fields:
        value = fields["properties"]
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.replace("\n", ",").split(",")) if part]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            errors["properties"] = [_("A list of property names.")]
        elif len(value) > TRACKING_PROPERTY_LIMIT or any(len(v) > 100 for v in value):
            errors["properties"] = [
                _("At most %(n)d properties of 100 characters each.") % {"n": TRACKING_PROPERTY_LIMIT}
            ]
        else:
            cleaned["properties"] = [v.strip() for v in value if v.strip()]
    if "owner" in fields:
        owner = fields["owner"]
        owner_id = getattr(owner, "pk", owner)
        if owner_id in (None, ""):
            cleaned["owner_id"] = None
        elif not isinstance(owner_id, int) or not _team_user_ids(team, [owner_id]):
            errors["owner"] = [_("The owner must be a member of the team.")]
        else:
            cleaned["owner_id"] = owner_id
    return cleaned, errors


def _tracking_event_locked(
    *, event_id: int, actor: User
) -> tuple[TrackingEvent, Requirement, frozenset[str]]:
    """Lock the event's requirement (so plan edits and the instrument → analyze move serialise), then
    the event; only the plan of an open requirement's current loop may change."""
    found = TrackingEvent.objects.filter(pk=event_id).values_list("loop__requirement_id", flat=True).first()
    if found is None:
        raise NotFound()
    requirement = requirement_get_for_user(user=actor, requirement_id=found, lock=True)
    roles = _check_member(actor=actor, team=requirement.team)
    event = TrackingEvent.objects.select_related("loop").get(pk=event_id)
    if requirement.is_closed:
        raise RequirementClosed(requirement.key)
    if event.loop.number != requirement.loop_number:
        raise InvalidInput({"detail": [_("Only the current loop's tracking plan can change.")]})
    return event, requirement, roles


def tracking_event_add(*, requirement_id: int, actor: User, **fields: Any) -> TrackingEvent:
    """Add an event to the tracking plan of the requirement's current loop (PM, engineer, analyst, lead)."""
    with transaction.atomic():
        requirement = requirement_get_for_user(user=actor, requirement_id=requirement_id, lock=True)
        roles = _check_member(actor=actor, team=requirement.team)
        if not roles & TRACKING_EDITORS:
            raise RoleNotAllowed(TRACKING_EDITORS)
        if requirement.is_closed:
            raise RequirementClosed(requirement.key)
        cleaned, errors = _clean_tracking_fields(fields, requirement.team, partial=False)
        loop = IterationLoop.objects.get(requirement=requirement, number=requirement.loop_number)
        if "name" not in errors and TrackingEvent.objects.filter(loop=loop, name=cleaned["name"]).exists():
            errors["name"] = [_("The plan already has an event of this name.")]
        if errors:
            raise InvalidInput(errors)
        return TrackingEvent.objects.create(loop=loop, **cleaned)


def tracking_event_update(*, event_id: int, actor: User, **fields: Any) -> TrackingEvent:
    with transaction.atomic():
        event, _requirement, roles = _tracking_event_locked(event_id=event_id, actor=actor)
        if not roles & TRACKING_EDITORS:
            raise RoleNotAllowed(TRACKING_EDITORS)
        cleaned, errors = _clean_tracking_fields(fields, _requirement.team, partial=True)
        if (
            "name" in cleaned
            and "name" not in errors
            and TrackingEvent.objects.filter(loop=event.loop, name=cleaned["name"])
            .exclude(pk=event.pk)
            .exists()
        ):
            errors["name"] = [_("The plan already has an event of this name.")]
        if errors:
            raise InvalidInput(errors)
        for name, value in cleaned.items():
            setattr(event, name, value)
        if cleaned:
            event.save(update_fields=list(cleaned))
    return event


def tracking_event_set_status(*, event_id: int, actor: User, status: str) -> TrackingEvent:
    """Move an event along planned → implemented → verified (or back to planned), as its role allows."""
    with transaction.atomic():
        event, _requirement, roles = _tracking_event_locked(event_id=event_id, actor=actor)
        engine.check_tracking_status(current=event.status, target=status, roles=roles)
        event.status = status
        event.status_changed_by = actor
        event.status_changed_at = timezone.now()
        event.save(update_fields=["status", "status_changed_by", "status_changed_at"])
    return event


def tracking_event_delete(*, event_id: int, actor: User) -> None:
    with transaction.atomic():
        event, _requirement, roles = _tracking_event_locked(event_id=event_id, actor=actor)
        if not roles & TRACKING_EDITORS:
            raise RoleNotAllowed(TRACKING_EDITORS)
        event.delete()


def _log_on_commit(event: StageEvent, key: str) -> None:
    """Log the event once it is committed, from the values in hand: no query after the commit."""
    line = (key, event.from_stage or "-", event.to_stage or event.kind, event.kind, event.actor)
    transaction.on_commit(lambda: logger.info("%s %s → %s (%s) by %s", *line))


def comment_create(*, requirement_id: int, actor: User, body: str) -> Comment:
    body = (body or "").strip()
    _check_comment_body(body)
    with transaction.atomic():
        requirement = requirement_get_for_user(user=actor, requirement_id=requirement_id)
        _check_member(actor=actor, team=requirement.team)
        comment = Comment.objects.create(requirement=requirement, author=actor, body=body)
        reminders.notify_mentions(comment=comment, requirement=requirement, actor=actor)
    return comment


def comment_update(*, comment_id: int, actor: User, body: str) -> Comment:
    """Authors edit their own comments."""
    body = (body or "").strip()
    _check_comment_body(body)
    with transaction.atomic():
        comment = Comment.objects.select_for_update().filter(pk=comment_id).first()
        if comment is None:
            raise NotFound()
        requirement_get_for_user(user=actor, requirement_id=comment.requirement_id)
        if comment.author_id != actor.pk:
            raise NotPermitted(_("Only its author may edit a comment."))
        comment.body = body
        comment.edited_at = timezone.now()
        comment.save(update_fields=["body", "edited_at"])
    return comment


def _check_comment_body(body: str) -> None:
    if not body:
        raise InvalidInput({"body": [_("Write something.")]})
    if len(body) > COMMENT_LIMIT:
        raise InvalidInput({"body": [_("At most %(n)d characters.") % {"n": COMMENT_LIMIT}]})


def event_since_repair() -> int:
    """Set each stage event's `since` to the time of its requirement's event before it where it says
    otherwise (a log written by other means than opsteam's writers, e.g. rows copied in by hand). `since`
    is part of the log row: the only change ever made to a written event, and only back to what the log's
    own times say. Returns how many events were corrected."""
    table = connection.ops.quote_name(StageEvent._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} SET since = x.expected FROM ({event_since_expected_sql()}) x
            WHERE x.id = {table}.id AND {SINCE_DISAGREES}"""  # noqa: S608 — table names, no input
        )
        return max(cursor.rowcount, 0)
