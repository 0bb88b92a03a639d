"""The workflow form of the team settings: every stage's name, SLA and owner roles, and every
transition's allowed roles and required fields, in one form that makes one new workflow version."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from roles.models import Role

from . import engine

FIELD_CHOICES = list(engine.FIELD_LABELS.items())
SLA_MAX_HOURS = 24 * 365


def stage_field(slug: str, name: str) -> str:
    # Slugs hold letters, digits, "-" and "_", never ".", so the names cannot run into each other.
    return f"stage.{slug}.{name}"


def transition_field(transition: engine.TransitionDef, name: str) -> str:
    return f"move.{transition.from_stage}.{transition.target}.{name}"


class WorkflowForm(forms.Form):
    """Built from the definition it edits. `version` is the version the lead saw: saving over a newer
    one would silently undo another lead's change."""

    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, definition: engine.WorkflowDef, version: int, **kwargs: Any) -> None:
        kwargs["initial"] = {"version": version}
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.stages = sorted(definition.stages, key=lambda s: s.order)
        for stage in self.stages:
            self.fields[stage_field(stage.slug, "name")] = forms.CharField(
                label=_("Name"), max_length=64, initial=stage.name
            )
            self.fields[stage_field(stage.slug, "sla_hours")] = forms.IntegerField(
                label=_("SLA in hours"),
                required=False,
                min_value=1,
                max_value=SLA_MAX_HOURS,
                initial=stage.sla_hours,
                widget=forms.NumberInput(attrs={"inputmode": "numeric", "class": "sla-input"}),
            )
            self.fields[stage_field(stage.slug, "owner_roles")] = forms.MultipleChoiceField(
                label=_("Owner roles"),
                choices=Role.choices,
                initial=sorted(stage.owner_roles),
                widget=forms.CheckboxSelectMultiple,
                error_messages={"required": _("Choose at least one owner role.")},
            )
        for transition in definition.transitions:
            self.fields[transition_field(transition, "allowed_roles")] = forms.MultipleChoiceField(
                label=_("Roles allowed"),
                choices=Role.choices,
                initial=sorted(transition.allowed_roles),
                widget=forms.CheckboxSelectMultiple,
                error_messages={"required": _("Choose at least one role.")},
            )
            self.fields[transition_field(transition, "required_fields")] = forms.MultipleChoiceField(
                label=_("Required before the move"),
                choices=FIELD_CHOICES,
                initial=list(transition.required_fields),
                widget=forms.CheckboxSelectMultiple,
                required=False,
            )

    def stage_fields(self, stage: engine.StageDef) -> dict[str, forms.BoundField]:
        return {name: self[stage_field(stage.slug, name)] for name in ("name", "sla_hours", "owner_roles")}

    def transition_fields(self, transition: engine.TransitionDef) -> dict[str, forms.BoundField]:
        return {
            name: self[transition_field(transition, name)] for name in ("allowed_roles", "required_fields")
        }

    def changes(self) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
        """What differs from the definition, as `workflow_new_version` takes it; nothing when the lead
        changed nothing. Call after is_valid()."""
        data = self.cleaned_data
        stages: dict[str, dict[str, Any]] = {}
        for stage in self.stages:
            change: dict[str, Any] = {}
            name = data[stage_field(stage.slug, "name")].strip()
            if name != stage.name:
                change["name"] = name
            sla_hours = data[stage_field(stage.slug, "sla_hours")]
            if sla_hours != stage.sla_hours:
                change["sla_hours"] = sla_hours
            owner_roles = data[stage_field(stage.slug, "owner_roles")]
            if frozenset(owner_roles) != stage.owner_roles:
                change["owner_roles"] = owner_roles
            if change:
                stages[stage.slug] = change
        transitions: list[dict[str, Any]] = []
        for transition in self.definition.transitions:
            move: dict[str, Any] = {}
            allowed_roles = data[transition_field(transition, "allowed_roles")]
            if frozenset(allowed_roles) != transition.allowed_roles:
                move["allowed_roles"] = allowed_roles
            required_fields = data[transition_field(transition, "required_fields")]
            if frozenset(required_fields) != frozenset(transition.required_fields):
                move["required_fields"] = required_fields
            if move:
                transitions.append({"from": transition.from_stage, "to": transition.target, **move})
        return stages, transitions
