"""Team settings in the web UI: the workflow page. Every member reads the team's current workflow;
leads change stage names, SLAs, owner roles, and each transition's roles and required fields, which
makes a new workflow version (requirements already under way keep theirs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.forms import BoundField
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput
from roles.forms import add_service_errors
from roles.models import Role, Team
from roles.permissions import may_manage_team
from roles.views import SignedInRequest, ensure_lead, http_errors, settings_context, settings_team

from . import engine, selectors, services
from .models import TransitionKind, Workflow
from .settings_forms import WorkflowForm


def _role_labels(roles: frozenset[str]) -> list[Any]:
    return [label for value, label in Role.choices if value in roles]


@dataclass
class StageRow:
    stage: engine.StageDef
    owner_labels: list[Any]
    fields: dict[str, BoundField] = field(default_factory=dict)


@dataclass
class TransitionRow:
    transition: engine.TransitionDef
    from_name: str
    to_name: str  # the target stage's name; for iterate, the stage the next loop opens at; "" for close
    kind_label: Any
    allowed_labels: list[Any]
    required_labels: list[Any]
    fields: dict[str, BoundField] = field(default_factory=dict)


def _rows(
    definition: engine.WorkflowDef, form: WorkflowForm | None
) -> tuple[list[StageRow], list[TransitionRow]]:
    names = {stage.slug: stage.name for stage in definition.stages}
    kinds = dict(TransitionKind.choices)
    stage_rows = [
        StageRow(
            stage=stage,
            owner_labels=_role_labels(stage.owner_roles),
            fields=form.stage_fields(stage) if form else {},
        )
        for stage in sorted(definition.stages, key=lambda s: s.order)
    ]
    transition_rows = [
        TransitionRow(
            transition=transition,
            from_name=names[transition.from_stage],
            to_name=names.get(transition.to_stage or "", ""),
            kind_label=kinds.get(transition.kind, transition.kind),
            allowed_labels=_role_labels(transition.allowed_roles),
            required_labels=[engine.FIELD_LABELS.get(name, name) for name in transition.required_fields],
            fields=form.transition_fields(transition) if form else {},
        )
        for transition in definition.transitions
    ]
    return stage_rows, transition_rows


def _render(
    request: HttpRequest,
    *,
    team: Team,
    workflow: Workflow,
    definition: engine.WorkflowDef,
    form: WorkflowForm | None,
    conflict: str = "",
    status: int = 200,
) -> HttpResponse:
    stage_rows, transition_rows = _rows(definition, form)
    context = settings_context(
        team,
        tab="workflow",
        is_lead=form is not None,
        workflow=workflow,
        form=form,
        stage_rows=stage_rows,
        transition_rows=transition_rows,
        conflict=conflict,
        failed=status >= 400,
    )
    return render(request, "settings/workflow.html", context, status=status)


@login_required
def workflow(request: SignedInRequest, team_id: int) -> HttpResponse:
    team = settings_team(request, team_id)
    current = selectors.workflow_current(team=team)
    definition = selectors.workflow_definition(workflow=current)
    if request.method != "POST":
        is_lead = may_manage_team(user=request.user, team=team)
        form = WorkflowForm(definition=definition, version=current.version) if is_lead else None
        return _render(request, team=team, workflow=current, definition=definition, form=form)

    ensure_lead(request, team, _("Only the team's leads may change its workflow."))
    form = WorkflowForm(request.POST, definition=definition, version=current.version)
    if form.is_valid():
        if form.cleaned_data["version"] != current.version:
            # Another lead saved meanwhile: show their version rather than undo it.
            conflict = _(
                "The workflow was changed meanwhile (it is version %(version)d now). Nothing was saved: "
                "check the current values below and make your change again."
            ) % {"version": current.version}
            fresh = WorkflowForm(definition=definition, version=current.version)
            return _render(
                request,
                team=team,
                workflow=current,
                definition=definition,
                form=fresh,
                conflict=conflict,
                status=409,
            )
        stages, transitions = form.changes()
        if not stages and not transitions:
            messages.info(
                request,
                _("Nothing changed; the workflow stays at version %(version)d.")
                % {"version": current.version},
            )
            return redirect("settings-workflow", team_id=team.pk)
        try:
            with http_errors():
                new = services.workflow_new_version(
                    team_id=team.pk, actor=request.user, stages=stages, transitions=transitions
                )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _(
                    "Saved as version %(version)d. Requirements already under way keep the version they started with."
                )
                % {"version": new.version},
            )
            return redirect("settings-workflow", team_id=team.pk)
    return _render(request, team=team, workflow=current, definition=definition, form=form, status=400)
